"""Runtimes host the pure behaviours as actors; behaviour code imports none of them."""
