"""Simulation: load scenarios through every edge (`run`), and deterministic simulation
testing of the behaviours with faults (`dst`)."""
