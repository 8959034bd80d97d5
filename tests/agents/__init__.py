"""The agent loop and agent functions: turns, promises, framework agents, the scripted model."""
