"""The agent runtime: the loop of model turns, its checkpointed state, the plans it applies."""
