"""The user code the test workers register: tools, strategies, reducers, agent functions."""
