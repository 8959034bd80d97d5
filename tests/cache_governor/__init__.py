"""The cache governor: logic, rules, refusals, the cache servers, the cache simulator."""
