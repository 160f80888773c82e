"""The version of hs, recorded in every store and results file."""
__version__ = "0.1.0"
