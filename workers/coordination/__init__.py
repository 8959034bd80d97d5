"""Coordination of a capped chord: its steps, the canvas, publishing, the watchdog."""
