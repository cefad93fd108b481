"""The benchmarks: scripts (`python bench/matching.py`, ...), all run by `python -m bench`."""
