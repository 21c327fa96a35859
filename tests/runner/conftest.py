"""Fixtures for the runner tests (defined in helpers.py, shared with tests/test_cli.py)."""
from .helpers import home, work  # noqa: F401
