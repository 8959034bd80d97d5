"""Model providers and structured output: wire formats, replies, endpoints, typed work."""
