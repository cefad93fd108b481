"""MTF: the binary protocol and its TCP gateway."""
