"""Run state in Redis: the only code that names a run's keys, and the scripts that change them."""
