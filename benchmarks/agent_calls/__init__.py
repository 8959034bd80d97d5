"""An agent's calls: tool fan-out, learned tool plans on dependent tools, the cache governor."""
