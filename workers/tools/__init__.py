"""Tools on workers: the registry, one model turn's calls under a policy, remote calls."""
