"""shrink: train a transformer teacher and compare compressed variants of it."""

__version__ = "0.1.0"
