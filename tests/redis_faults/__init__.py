"""A full, slow or restarted Redis: outages of writes, refused scripts and reads."""
