"""One member's execution: its claim and lease, lanes, cancellation, events and records."""
