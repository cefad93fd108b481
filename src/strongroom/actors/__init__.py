"""Behaviours (pure) and the runtimes (actor shells) that host them."""
