"""Recovery from dead workers and lost steps: leases, liveness, the watchdog, checkpoints."""
