"""CIRCMAN5.0 edge twin."""

__version__ = "0.1.0"
