"""The daemon's intake log: a delivery is acknowledged once one fdatasync of a shared log holds
it (group commit, many deliveries per sync) and the writer has put it in the job's inbox without
an fsync of its own; the inboxes are synced once for many before the log is dropped.

    <home>/intake.jsonl      the log being written: {"job", "key", "data"} per line
    <home>/intake.jsonl.old  the previous log, dropped once its deliveries are durable in inboxes

HTTP threads call `callback` or `event`: under one lock the key is decided (a callback token
already used → False; an event gets the next number of its name), the line joins the open
batch, and the thread waits until that batch is synced and moved. The writer thread takes
every line that arrived meanwhile as its next batch (no timer, no added wait when idle),
writes and syncs it, then moves it: `store.deliver(sync=False)` per line (an append to the
job's inbox file), answers the batch's threads (the delivery is durable in the log and
visible in the inbox) and pokes the jobs. One thread, not a writer and a mover: a move costs
less than the hand-off between two threads did. When the log is rotated (SEGMENT_BYTES, or
idle for IDLE_ROTATE seconds), the writer makes the moved deliveries durable
(`store.sync_deliveries`) and deletes the old log. `recover` moves what a crashed
daemon left in the logs before the daemon answers anything: `deliver` refuses a key that is
already there, so moving a line twice is harmless.

FM_DAEMON_CRASH_AT=N (tests only) makes the daemon SIGKILL itself at its N-th crash point (a
log write, a log sync, a move, a checkpoint, a rotation); at a clean stop the daemon logs how
many points it passed; with FM_CRASH_POWER=1 it first loses what it had not synced (the log's
tail, inbox files written without fsync). FM_DAEMON_INTAKE_SEGMENT=BYTES (tests only) rotates
the log sooner.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time

from ..errors import FlowmetalError, JobNotFoundError, JournalError
from ..journal._fs import fsync_dir, fsync_fd
from ..journal.jobstore import event_key
from . import files

LOG, OLD = "intake.jsonl", "intake.jsonl.old"
SEGMENT_BYTES = 4 * 1024 * 1024
"""The log is rotated (and the previous one dropped once moved and synced) past this size."""
IDLE_ROTATE = 5.0
"""Seconds without deliveries after which a non-empty log is rotated too."""
LOG_EVERY = 1.0
"""Seconds between two `in its inbox` lines of one job while its deliveries keep coming."""
EVENT = "event:"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class IntakeError(FlowmetalError):
    """The intake cannot take deliveries (the daemon is stopping, or its log failed)."""


class _Batch:
    """Lines that one write and one fdatasync make durable together."""

    def __init__(self):
        self.lines: list[bytes] = []
        self.entries: list[dict] = []
        self.done = threading.Event()
        self.error: str | None = None


class _Seen:
    """A job's used callback tokens and last event number per name (from its inbox, then
    from the intake)."""

    def __init__(self, keys: list[str]):
        self.tokens = {k for k in keys if not k.startswith(EVENT)}
        self.last: dict[str, int] = {}
        for k in keys:
            if k.startswith(EVENT):
                name, _, n = k[len(EVENT):].rpartition(":")
                if n.isdigit():
                    self.last[name] = max(self.last.get(name, 0), int(n))


class Intake:
    """The intake log of one daemon, its writer thread."""

    def __init__(self, home, store, log, poke):
        self.home, self.store, self.log, self.poke = home, store, log, poke
        self.cond = threading.Condition()   # the writer waits on it for lines
        self.batch = _Batch()
        self.seen: dict[str, _Seen] = {}
        self.fd: int | None = None
        self.size = 0
        self.synced = 0                 # bytes of the log known durable (FM_CRASH_POWER)
        self.syncs = self.lines = 0     # log syncs and the lines they made durable
        self.old_pending = False
        self.failed_moves = 0
        self.broken: str | None = None
        self.stopping = False
        self.crash = CrashPoints(self._power_cut)
        raw = os.environ.get("FM_DAEMON_INTAKE_SEGMENT", "")     # tests: rotate sooner
        self.segment_bytes = int(raw) if raw.isdigit() else SEGMENT_BYTES
        self.threads: list[threading.Thread] = []
        self.unlogged: dict[str, list[str]] = {}    # job -> keys moved, not logged yet
        self.logged_at: dict[str, float] = {}

    # ---- what the HTTP threads call ----

    def callback(self, job: str, token: str, data: dict) -> bool:
        """Deliver a callback; True once durable, False when the token was used before."""
        seen = self._seen(job)
        with self.cond:
            if token in seen.tokens:
                return False
            seen.tokens.add(token)
            batch, entry = self._add(job, token, data, json.dumps(data))
        self._wait(batch)
        return not entry.get("taken")      # a direct write reached the inbox first

    def event(self, job: str, name: str, data: dict) -> int:
        """Deliver an event; its number once durable."""
        seen = self._seen(job)
        raw = json.dumps(data)
        with self.cond:
            n = seen.last[name] = seen.last.get(name, 0) + 1
            batch, entry = self._add(job, event_key(name, n), data, raw)
        self._wait(batch)
        return int(entry["key"].rpartition(":")[2])    # renumbered if a direct write took n

    def _seen(self, job: str) -> _Seen:
        seen = self.seen.get(job)
        if seen is None:
            # Listed outside the lock; no line of this job is in the log yet, so the listing
            # is complete. A racing thread's listing is as good: the first one kept wins.
            fresh = _Seen(self.store.keys(job))
            with self.cond:
                seen = self.seen.setdefault(job, fresh)
        return seen

    def _add(self, job: str, key: str, data: dict, raw: str) -> tuple[_Batch, dict]:
        if self.broken or self.stopping:
            raise IntakeError(self.broken or "the daemon is stopping")
        line = b'{"job": %s, "key": %s, "data": %s}\n' % (
            json.dumps(job).encode(), json.dumps(key).encode(), raw.encode())
        entry = {"job": job, "key": key, "data": data}
        self.batch.lines.append(line)
        self.batch.entries.append(entry)
        self.cond.notify()
        return self.batch, entry

    @staticmethod
    def _wait(batch: _Batch) -> None:
        batch.done.wait()
        if batch.error:
            raise IntakeError(batch.error)

    # ---- start, recovery, stop ----

    def recover(self) -> set[str]:
        """Move what the logs hold into the inboxes, make it durable, start an empty log;
        the jobs that got something."""
        entries = _read_log(self.home / OLD, self.log) + _read_log(self.home / LOG, self.log)
        moved = [e["job"] for e in entries if self._move(e, recovering=True)]
        if entries:
            self.log.info("intake: %d deliveries in the log at start, %d of them moved now",
                          len(entries), len(moved))
            self.store.sync_deliveries()
            self.crash.point()
        if self.failed_moves:
            raise IntakeError(f"{self.failed_moves} deliveries of {self.home / LOG} could not "
                              "be moved to their inboxes (see daemon.log)")
        for name in (OLD, LOG):
            _unlink(self.home / name)
        self.fd = _create_log(self.home / LOG)
        self.seen.clear()
        return set(moved)

    def start(self) -> None:
        t = threading.Thread(target=self._write_loop, name="intake-writer", daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        """Take no more; commit and move what was taken; drop the logs when all is durable."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        for t in self.threads:
            t.join()
        if self.fd is not None:
            os.close(self.fd)
        self.log.info("intake: %d deliveries in %d log syncs", self.lines, self.syncs)
        if self.crash.at is not None:
            self.log.info("intake: %d crash points passed", self.crash.count)
        if self.broken or self.failed_moves:
            return                      # the next start recovers from the logs
        self.store.sync_deliveries()
        for name in (OLD, LOG):
            _unlink(self.home / name)

    # ---- the writer ----

    def _write_loop(self) -> None:
        batch = None
        try:
            while (batch := self._next_batch()) is not None:
                if batch.entries:
                    self._commit(batch)
                if not self.broken and (self.size >= self.segment_bytes or
                                        (not batch.entries and self.size)):
                    self._rotate()
                if self.unlogged and not self.batch.entries:
                    self._log_moves(None)   # idle: what was not logged yet
        except Exception:   # a bug: nobody may wait forever for an acknowledgement
            self.log.exception("intake: the writer failed")
            self._fail("the intake writer failed")
            if batch is not None and not batch.done.is_set():
                batch.error = self.broken
                batch.done.set()

    def _next_batch(self) -> _Batch | None:
        """The open batch once it has lines (a new one opens); an empty one after IDLE_ROTATE
        seconds with nothing; None once stopping and all is written."""
        with self.cond:
            while not self.batch.entries and not self.stopping:
                idle = IDLE_ROTATE if self.size and not self.old_pending else None
                if not self.cond.wait(idle):
                    return _Batch()
            if not self.batch.entries or self.broken:
                return None
            batch, self.batch = self.batch, _Batch()
            return batch

    def _commit(self, batch: _Batch) -> None:
        data = b"".join(batch.lines)
        try:
            _write_all(self.fd, data)
            self.crash.point()
            fsync_fd(self.fd)
            self.crash.point()
        except OSError as e:
            # After a failed fsync the kernel may have dropped the pages: nothing more is
            # acknowledged by this daemon; a restart recovers what the log holds.
            self._fail(f"the intake log failed: {e.strerror or e}")
            batch.error = self.broken
            batch.done.set()
            return
        self.size += len(data)
        self.synced = self.size
        self.syncs += 1
        self.lines += len(batch.lines)
        try:
            self._move_all(batch)
        except Exception:   # a bug: logged; the lines stay in the log for the next start
            self.failed_moves += 1
            self.log.exception("intake: moving deliveries failed")
        finally:            # durable in the log, moved or not: acknowledged
            batch.done.set()

    def _rotate(self) -> None:
        with self.cond:
            if self.old_pending:
                return
            self.old_pending = True
        try:
            os.rename(self.home / LOG, self.home / OLD)
            self.crash.point()
            fd, self.fd = self.fd, _create_log(self.home / LOG)
            os.close(fd)
        except OSError as e:
            self._fail(f"cannot rotate the intake log: {e.strerror or e}")
            return
        self.size = self.synced = 0
        self._checkpoint()                  # every line of the old log is moved

    def _fail(self, why: str) -> None:
        self.log.error("intake: %s; deliveries get 503 until a restart", why)
        with self.cond:
            self.broken = why
            failed, self.batch = self.batch, _Batch()
        failed.error = why
        failed.done.set()

    # ---- moving to the inboxes ----

    def _move_all(self, batch: _Batch) -> None:
        moved: dict[str, list[str]] = {}
        for e in batch.entries:
            if self._move(e, recovering=False):
                moved.setdefault(e["job"], []).append(e["key"])
        batch.done.set()                    # in the inboxes: answered before the pokes
        for job, keys in moved.items():
            self.unlogged.setdefault(job, []).extend(keys)
            try:
                self.poke(job)
            except JobNotFoundError:
                pass
        self._log_moves(time.monotonic())

    def _log_moves(self, now: float | None) -> None:
        """`job …: in its inbox: …`, one line per job and LOG_EVERY seconds at most while
        deliveries keep coming (a line per delivery would cost as much as the delivery), and
        the rest when the writer has nothing to do (`now` None)."""
        for job in list(self.unlogged):
            if now is None or now - self.logged_at.get(job, 0.0) >= LOG_EVERY:
                self.log.info("job %s: in its inbox: %s", job, _summary(self.unlogged.pop(job)))
                if now is not None:
                    self.logged_at[job] = now
        if now is None:
            self.logged_at.clear()

    def _move(self, entry: dict, *, recovering: bool) -> bool:
        """Put one line's delivery in its job's inbox; False when it was there already (or
        its job is gone)."""
        job, key = entry["job"], entry["key"]
        data = entry["data"]
        try:
            while not self.store.deliver(job, key, data, sync=False):
                if not key.startswith(EVENT) or (recovering and not self._foreign(job, key,
                                                                                  data)):
                    if not recovering:
                        self.log.warning("job %s: a callback was delivered directly while "
                                         "the daemon took another; the inbox keeps the first",
                                         job)
                        entry["taken"] = True
                    return False
                key = entry["key"] = self._renumber(job, key)
        except JobNotFoundError:
            self.log.warning("job %s: deleted; its delivery %s is dropped", job, key)
            return False
        except (OSError, JournalError) as e:
            self.failed_moves += 1
            self.log.error("job %s: cannot move delivery %s to its inbox: %s", job, key, e)
            return False
        self.crash.point()
        return True

    def _foreign(self, job: str, key: str, data: dict) -> bool:
        """Whether the inbox holds other data under `key` (a direct write took the number)
        rather than this line's own earlier move (same data, or taken since)."""
        try:
            mail = self.store.mail(job)
        except JournalError:        # a damaged inbox file: the key is used all the same
            return False
        return key in mail and mail[key] != data

    def _renumber(self, job: str, key: str) -> str:
        name = key[len(EVENT):].rpartition(":")[0]
        fresh = _Seen(self.store.keys(job))
        with self.cond:
            seen = self.seen.setdefault(job, fresh)
            n = seen.last[name] = max(seen.last.get(name, 0), fresh.last.get(name, 0)) + 1
        self.log.warning("job %s: event %s was taken by a direct write; delivered as #%d",
                         job, key, n)
        return event_key(name, n)

    def _power_cut(self) -> None:
        """Tests only: lose the log's unsynced tail and the inbox files not yet synced."""
        if self.fd is not None:
            os.ftruncate(self.fd, self.synced)
        self.store.crash_hook_deliveries()

    def _checkpoint(self) -> None:
        """Every line of the rotated log is moved: make the inboxes durable, drop the log."""
        if self.failed_moves:
            self.log.error("intake: keeping %s (deliveries could not be moved); the next "
                           "start retries", OLD)
            return
        try:
            self.store.sync_deliveries()
            self.crash.point()
            _unlink(self.home / OLD)
        except OSError as e:
            self.log.error("intake: checkpoint failed (%s); the next start retries", e)
            return
        with self.cond:
            self.old_pending = False
            self.cond.notify_all()     # the writer may rotate again when idle


class CrashPoints:
    """FM_DAEMON_CRASH_AT=N: SIGKILL this process at its N-th crash point (tests only); with
    FM_CRASH_POWER=1, `power_cut` first loses what was not synced, as a power cut would."""

    def __init__(self, power_cut):
        raw = os.environ.get("FM_DAEMON_CRASH_AT", "")
        self.at = int(raw) if raw.isdigit() else None
        self.power_cut = power_cut if os.environ.get("FM_CRASH_POWER") == "1" else None
        self.count = 0
        self.lock = threading.Lock()

    def point(self) -> None:
        if self.at is None:
            return
        with self.lock:
            self.count += 1
            hit = self.count == self.at
        if hit:
            if self.power_cut:
                self.power_cut()
            os.kill(os.getpid(), signal.SIGKILL)


def _summary(keys: list[str], most: int = 4) -> str:
    """`callback, event go #3, event go #4 and 9 more` for the daemon's log."""
    def one(key: str) -> str:
        if not key.startswith(EVENT):
            return "callback"
        name, _, n = key[len(EVENT):].rpartition(":")
        return f"event {name} #{int(n)}"
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return ", ".join(map(one, keys[:most])) + more


# ---- the log file ----

def _create_log(path) -> int:
    """A new, empty log (0600, not through a link), durable in its directory."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                 | _NOFOLLOW, 0o600)
    fsync_dir(path.parent)
    return fd


def _read_log(path, log) -> list[dict]:
    """The complete lines of a log; a torn last line (never acknowledged) is left out."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise IntakeError(f"{path}: {e.strerror}; refusing to use it") from None
    try:
        files._check_regular(path, os.fstat(fd))
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    out = []
    for i, line in enumerate(b"".join(chunks).split(b"\n")[:-1], 1):
        try:
            e = json.loads(line)
            if isinstance(e.get("job"), str) and isinstance(e.get("key"), str) and \
                    isinstance(e.get("data"), dict):
                out.append(e)
                continue
        except (ValueError, AttributeError):
            pass
        log.error("intake: %s:%d: not a delivery; skipped", path, i)
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
