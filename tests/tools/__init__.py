"""Tools and MCP: fan-out, the tool runner's promises, slots, remote calls, MCP servers."""
