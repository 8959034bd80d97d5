"""What the docs site generates at build time (the settings table, the CLI's options) and
the runnable examples its pages hold; `mkdocs.yml` loads `docs_gen/hooks.py`."""
