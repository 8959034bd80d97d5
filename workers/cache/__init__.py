"""The cache governor's request path: prompt IR, planner, per-surface translators, and the
provider wrapper that applies them."""
