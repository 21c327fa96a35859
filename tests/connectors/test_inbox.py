"""Awaits in the runner's scheduler: matched against the inbox, in order, never twice; their
own timeouts; the spinner on a terminal (connectors/inbox.py, runner/scheduler.py)."""
from __future__ import annotations

import os
import pty
import threading
import time

from flowmetal.connectors import Term
from flowmetal.connectors.inbox import match
from flowmetal.runner.scheduler import CancelToken, Scheduler

TOKEN = "T" * 32


def _ev(name: str, n: int) -> str:
    return f"event:{name}:{n:012d}"


def test_match_takes_the_callback_or_the_first_event_not_claimed():
    mail = {TOKEN: {"body": "b"}, _ev("go", 2): {"data": "two"}, _ev("go", 10): {"data": "ten"},
            _ev("go", 1): {"data": "one"}, _ev("gone", 1): {"data": "other name"}}
    assert match({"key": TOKEN}, mail, set()) == (TOKEN, {"body": "b"})
    assert match({"key": TOKEN}, mail, {TOKEN}) is None
    assert match({"key": "U" * 32}, mail, set()) is None
    assert match({"event": "go"}, mail, set()) == (_ev("go", 1), {"data": "one"})
    assert match({"event": "go"}, mail, {_ev("go", 1)}) == (_ev("go", 2), {"data": "two"})
    assert match({"event": "go"}, mail, {_ev("go", 1), _ev("go", 2)})[0] == _ev("go", 10)
    assert match({"event": "nothing"}, mail, set()) is None


def test_two_awaits_of_one_name_get_two_events_in_order():
    mail = {_ev("go", 1): {"data": "a"}, _ev("go", 2): {"data": "b"}}
    sched = Scheduler(Term(echo=False), CancelToken(), inbox=lambda: dict(mail))
    sched.submit(1, {"op": "await", "job": "j-000000", "event": "go"})
    sched.submit(2, {"op": "await", "job": "j-000000", "event": "go"})
    got = [sched.next(), sched.next()]
    assert got == [(1, {"key": _ev("go", 1), "delivery": {"data": "a"}}),
                   (2, {"key": _ev("go", 2), "delivery": {"data": "b"}})]
    assert sched.outstanding() == 0


def test_an_await_expires_at_its_until_and_a_deadline_is_a_timeout():
    sched = Scheduler(Term(echo=False), CancelToken(), inbox=dict)
    now = time.time()
    sched.submit(1, {"op": "await", "job": "j-000000", "event": "x", "until": now + 0.2})
    assert sched.next() == (1, {"expired": True})
    sched.submit(2, {"op": "await", "job": "j-000000", "event": "x", "until": now + 60,
                     "deadline": now + 0.2})
    assert sched.next() == (2, {"timeout": True})


def test_parked_reports_the_waits_unless_a_delivery_is_there():
    mail: dict = {}
    sched = Scheduler(Term(echo=False), CancelToken(), inbox=lambda: mail)
    sched.submit(1, {"op": "await", "job": "j-000000", "event": "go"})
    sched.submit(2, {"op": "sleep", "until": time.time() + 3600})
    due, awaits = sched.parked()
    assert due == sched.timers[0][0] and awaits == [{"op": "await", "job": "j-000000",
                                                     "event": "go"}]
    mail[_ev("go", 1)] = {"data": "now"}
    assert sched.parked() is None                   # the job has something to see
    sched.submit(3, {"op": "exec", "stages": []})
    assert sched.parked() is None                   # work to do


def _drain(fd: int) -> str:
    """All a pty's master has to read: Linux moves the slave's writes over asynchronously, so
    read until nothing more comes for a moment, not just once."""
    import select
    out = b""
    while select.select([fd], [], [], 0.5)[0]:
        out += os.read(fd, 65536)
    return out.decode()


def test_an_await_on_a_terminal_shows_a_spinner_until_its_delivery():
    master, slave = pty.openpty()
    mail: dict = {}
    try:
        term = Term(stdout_fd=slave, stderr_fd=slave, stdin_fd=None)
        sched = Scheduler(term, CancelToken(), inbox=lambda: dict(mail))
        sched.submit(7, {"op": "await", "job": "j-000000", "key": TOKEN,
                         "why": "await http://127.0.0.1:7468/callbacks/x"})
        threading.Timer(0.8, mail.update, [{TOKEN: {"method": "POST", "body": "ok"}}]).start()
        assert sched.next() == (7, {"key": TOKEN, "delivery": {"method": "POST", "body": "ok"}})
        shown = _drain(master)
    finally:
        os.close(master)
        os.close(slave)
    # drawn at once, then turned (|/-\\) four times a second: how often depends on the load
    assert shown.startswith("\rfm: await http://127.0.0.1:7468/callbacks/x: waiting / (0s)\x1b[K")
    assert shown.endswith("\r\x1b[K")               # and is erased at the end
