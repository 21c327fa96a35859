"""The job store interface: what the runner, the CLI and (later) the daemon need from storage.

A store holds jobs. Each job has an append-only sequence of records (docs/journal.md), a lease
that one process at a time holds to run it (G7), an inbox of deliveries (callbacks, events)
and an entry in an index of wake-up times. `JsonlStore` (journal/jsonl.py, files in the state
directory) is the embedded implementation; docs/store.md is the contract a second one (a
database) is written against, and tests/journal/test_jobstore.py runs against every one.
"""
from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator

from ..errors import JobNotFoundError

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_SUFFIX_LEN = 6
_NAME_MAX = 32
JOB_ID_RE = re.compile(r"[a-z0-9_-]{1,%d}-[a-z0-9]{%d}\Z" % (_NAME_MAX, _ID_SUFFIX_LEN))
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22,86}\Z")
"""A callback token: `secrets.token_urlsafe` text of 128 to 512 bits."""


def new_token(nbytes: int = 24) -> str:
    """A fresh callback token (192 bits by default) that does not start with `-`, so that
    `fm complete TOKEN` never reads it as an option."""
    import secrets
    while (token := secrets.token_urlsafe(nbytes)).startswith("-"):
        pass
    return token


def callback_token(target: str) -> str | None:
    """The token of a callback given as its URL (`<base>/callbacks/<token>`, a query allowed)
    or as the token itself; None when `target` holds none."""
    token = target.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return token if TOKEN_RE.match(token) else None


EVENT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
"""An event name (`await --event NAME`, `fm send JOB NAME`)."""


def event_key(name: str, n: int) -> str:
    """The inbox key of event `name` number n: `event:<name>:<n, 12 digits>` (text order is
    number order)."""
    return f"event:{name}:{n:012d}"

LARGE = 64 * 1024
"""A string value longer than this (in characters) in an appended record is stored once, as
content named by its hash, and put back in place when the record is read: a store's record
rows stay small whatever a program printed or a variable holds (docs/store.md)."""


def sanitize_name(name: str) -> str:
    """A job name from a file stem or --name: lowercase [a-z0-9_-], at most 32 chars, never
    empty."""
    name = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:_NAME_MAX].strip("-")
    return name or "job"


def random_suffix(n: int = _ID_SUFFIX_LEN) -> str:
    """n characters of [a-z0-9] from the OS CSPRNG (the source `secrets` uses; importing
    secrets would pull in hashlib and cost start-up time)."""
    out = []
    while len(out) < n:
        for b in os.urandom(n * 2):
            if b < 252:  # 252 = 7 * 36: rejecting the rest keeps every character equally likely
                out.append(_ID_ALPHABET[b % 36])
                if len(out) == n:
                    break
    return "".join(out)


def new_job_id(name: str) -> str:
    """A fresh job id `<sanitised name>-<6 random chars>` (not yet checked against a store)."""
    return f"{sanitize_name(name)}-{random_suffix()}"


class Lease(ABC):
    """A job held by this process: the only handle through which its records are appended.

    Records get consecutive `seq` numbers from 0 (`job.started`). `append(..., sync=False)` may
    keep a record in memory or an OS buffer; it becomes durable at the next `sync()` or synced
    append (the durability point). A store whose lease is lost (its holder died) lets another
    process take the job; the dead holder's unsynced records may be lost, synced ones never."""

    job_id: str
    discarded: int = 0
    """Bytes (or records) of a torn tail that taking the lease cut off; 0 when there was none."""

    @abstractmethod
    def append(self, kind: str, fields: dict, *, sync: bool = True) -> int:
        """Append one record; durable on return when `sync` (and the store syncs). Its seq."""

    @abstractmethod
    def sync(self) -> None:
        """Make every record appended so far durable."""

    @abstractmethod
    def size(self) -> int:
        """The journal's size in bytes as stored (the runner paces snapshots by it)."""

    @abstractmethod
    def first(self) -> dict:
        """Record 0, `job.started`."""

    @abstractmethod
    def tail(self) -> tuple[dict | None, list[dict]]:
        """(the last snapshot or None, every record after it; all records when there is no
        snapshot). Reads nothing before that snapshot (G5)."""

    @abstractmethod
    def records(self) -> Iterator[dict]:
        """Every record from `job.started` on (a replay across fm versions needs them all)."""

    @abstractmethod
    def where(self, seq: int) -> str:
        """Where record `seq` is stored, for messages: `…/journal.jsonl:12`."""

    @abstractmethod
    def inbox(self) -> dict[str, dict]:
        """The deliveries waiting for this job, by key (see JobStore.deliver)."""

    @abstractmethod
    def take(self, key: str) -> None:
        """Remove a delivery from the inbox once a synced record holds it (never before). The
        key stays used: a later `deliver` of it returns False (a callback is answered once)."""

    @abstractmethod
    def set_wake(self, when: float | None) -> None:
        """Put the job in the wake-up index at epoch seconds `when`, or take it out (None)."""

    @abstractmethod
    def release(self) -> None:
        """Give the job up (it stays as it is). Releasing twice is harmless."""

    def crash_hook(self) -> None:
        """Tests only (FM_CRASH_POWER): lose what was not synced, as a power cut would."""
        raise NotImplementedError(f"{type(self).__name__} cannot simulate a power cut")

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class JobStore(ABC):
    """Every job of one user (or one shared database). Reading never needs the lease."""

    location: str
    """Where the store is, for messages (a directory, a URL without its password)."""

    # ---- jobs and leases ----

    @abstractmethod
    def create(self, job_id: str, fields: dict, *, fsync: bool = True) -> Lease:
        """A new job (FileExistsError when the id is taken: draw another with new_job_id),
        already leased to this process, so no one ever sees it without a holder; its record 0
        is `job.started` with `fields` plus `id` and `format`; durable when it returns."""

    @abstractmethod
    def lease(self, job_id: str, *, fsync: bool = True) -> Lease:
        """Take the job's lease, recovering its journal (a torn tail is cut off: G6).
        JobLockedError names the holder when a live process has it; JournalError for damage."""

    @abstractmethod
    def holder(self, job_id: str) -> int | None:
        """The pid of the live process holding the job's lease (-1: unknown pid), else None."""

    @abstractmethod
    def wait_free(self, job_id: str) -> None:
        """Block until no live process holds the job's lease; at once when none does (the
        daemon watches a foreground runner this way, to go on with a job whose runner died)."""

    @abstractmethod
    def delete(self, job_id: str) -> None:
        """Delete a job that no process holds (records, inbox, content, wake-up entry) at once
        and for every reader; JobLockedError when a live process holds it."""

    # ---- reading ----

    @abstractmethod
    def ids(self) -> list[str]:
        """Every job id, sorted."""

    @abstractmethod
    def exists(self, job_id: str) -> bool:
        """Whether a job with exactly this id exists."""

    @abstractmethod
    def head(self, job_id: str) -> dict:
        """Record 0 (`job.started`) of a job, cheaply."""

    @abstractmethod
    def last(self, job_id: str) -> dict | None:
        """The job's last complete record, cheaply (not the whole history); None if none."""

    @abstractmethod
    def tail(self, job_id: str) -> tuple[dict | None, list[dict]]:
        """As Lease.tail, without the lease (a live runner may be appending)."""

    @abstractmethod
    def records(self, job_id: str) -> Iterator[dict]:
        """Every record of the job, validated (for `fm log`)."""

    @abstractmethod
    def follow(self, job_id: str, start_seq: int = 0) -> Iterator[dict]:
        """Records with seq >= start_seq as they are appended; ends after a terminal one."""

    @abstractmethod
    def where(self, job_id: str) -> str:
        """Where the job's records are, for messages."""

    # ---- deliveries and timers (the daemon's side) ----

    @abstractmethod
    def deliver(self, job_id: str, key: str, data: dict, *, sync: bool = True) -> bool:
        """Put a delivery in the job's inbox under `key` (a callback token, `event:<name>:<n>`),
        durably, before returning True; False (nothing changed) when `key` was delivered
        before: the first delivery wins. With `sync=False` it is visible at once but durable
        only after `sync_deliveries()` (the daemon's intake log holds it meanwhile)."""

    @abstractmethod
    def sync_deliveries(self) -> None:
        """Make every delivery this process made with `sync=False` durable."""

    def crash_hook_deliveries(self) -> None:
        """Tests only (FM_CRASH_POWER): lose the `sync=False` deliveries not yet synced, as a
        power cut could."""
        raise NotImplementedError(f"{type(self).__name__} cannot simulate a power cut")

    @abstractmethod
    def keys(self, job_id: str) -> list[str]:
        """Every key ever delivered to the job, taken ones included, sorted (the daemon seeds
        its first-wins and event numbering from it)."""

    @abstractmethod
    def mail(self, job_id: str) -> dict[str, dict]:
        """The deliveries waiting for the job, by key, without its lease (Lease.inbox reads the
        same; the daemon looks here to know whether a parked job has something to see)."""

    @abstractmethod
    def send(self, job_id: str, name: str, data: dict) -> int:
        """Queue event `name` for the job: delivered durably under key `event:<name>:<n>`, n
        counting 1, 2, … per name in the order sends complete (concurrent senders included);
        returns n. JobNotFoundError for a job that does not exist."""

    @abstractmethod
    def bind(self, token: str, job_id: str, method: str | None = None) -> None:
        """Record durably that callback `token` belongs to the job (before its URL is shown),
        and the one HTTP method it answers (`callback --method`; None: any)."""

    @abstractmethod
    def binding(self, token: str) -> tuple[str, str | None] | None:
        """(the job a callback token belongs to, the method it answers or None); None for a
        token never bound (or malformed)."""

    def bound(self, token: str) -> str | None:
        """The job a callback token belongs to; None for a token never bound (or malformed)."""
        got = self.binding(token)
        return None if got is None else got[0]

    @abstractmethod
    def due(self, now: float) -> list[tuple[str, float]]:
        """(job id, wake time) of every job in the wake-up index due at `now`, earliest first."""

    @abstractmethod
    def wakes(self) -> list[tuple[str, float]]:
        """Every entry of the wake-up index, earliest first."""

    # ---- derived operations (the same for every store) ----

    def find(self, prefix: str) -> str:
        """The job whose id is `prefix` or uniquely starts with it; else JobNotFoundError."""
        if prefix and JOB_ID_RE.match(prefix) and self.exists(prefix):
            return prefix
        matches = [i for i in self.ids() if prefix and i.startswith(prefix)]
        if not matches:
            raise JobNotFoundError(f"no job matches `{prefix}`")
        if len(matches) > 1:
            shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
            raise JobNotFoundError(f"`{prefix}` matches {len(matches)} jobs: {shown}; "
                                   "give more of the id")
        return matches[0]
