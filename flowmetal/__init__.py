"""Flowmetal: a bash-like shell whose scripts are durable."""
__version__ = "0.1.0"
