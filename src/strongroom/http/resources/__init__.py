"""Thin REST resources, one module per domain."""
