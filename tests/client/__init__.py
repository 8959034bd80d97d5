"""The client and the CLI: submit, status, watch, errors, closing, input they refuse."""
