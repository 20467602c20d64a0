"""Spacecraft Digest: new articles of one category, summarised and mailed as one digest."""

__version__ = "0.1.0"
