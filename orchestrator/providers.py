"""Names of the model providers the workers implement.

The client validates ``ModelConfig.provider`` against this set before dispatching anything; the
workers' provider registry must implement exactly these names (a test checks it).
"""

KNOWN_PROVIDERS: frozenset[str] = frozenset({"scripted", "openai", "openai_responses", "anthropic"})
