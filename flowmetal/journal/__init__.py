"""Job journals (jobs/<id>/journal.jsonl) and the job lock; the format is in docs/journal.md."""
from .codec import FORMAT, TERMINAL_KINDS
from .lock import JobLock
from .reader import follow, read_first, read_last, read_records
from .store import Journal

__all__ = ["FORMAT", "TERMINAL_KINDS", "JobLock", "Journal", "follow", "read_first", "read_last",
           "read_records"]
