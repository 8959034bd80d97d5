"""The docs hold: examples run, generated pages are whole, the README's run path is real."""
