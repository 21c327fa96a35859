"""Job storage: the JobStore interface (jobstore.py) and its embedded implementation, JSON-lines
journals in the state directory (jsonl.py; the format is in docs/journal.md)."""
from __future__ import annotations

from .codec import FORMAT, TERMINAL_KINDS
from .jobstore import JobStore, Lease
from .lock import JobLock
from .reader import follow, read_first, read_last, read_records
from .store import Journal

__all__ = ["FORMAT", "TERMINAL_KINDS", "JobLock", "JobStore", "Journal", "Lease", "follow",
           "open_store", "read_first", "read_last", "read_records"]


def open_store(home=None) -> JobStore:
    """The user's job store: JSON-lines journals under `home` (default: the state directory)."""
    from .jsonl import JsonlStore
    return JsonlStore(home)
