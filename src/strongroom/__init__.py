"""strongroom: a reactive, actor-based trading and custody system."""

__version__ = "0.1.0"
