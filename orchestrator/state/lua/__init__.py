"""The run state's Lua scripts, shipped as package data, loaded by
``orchestrator.state.scripts``."""
