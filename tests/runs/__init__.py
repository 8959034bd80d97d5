"""Runs and their kinds: map-reduce, branches, single agents, reduces, child runs, events."""
