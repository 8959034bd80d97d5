"""Worker processes: start, warm-up, supervision, and how members reach them."""
