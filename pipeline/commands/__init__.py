"""One module per command family; each command reads parameters and calls library functions."""
