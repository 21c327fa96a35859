"""Deliveries to a job: the callbacks it registers, and the callbacks and events it awaits.

* `callback` (perform_callback): a token of 192 bits from `secrets`, bound to the job in the
  store durably before the URL exists anywhere else; the URL is under `[daemon] public_url`,
  else under the running daemon's address (a daemon is started when none runs: someone has to
  answer the URL).
* `await` is a waiting effect. The runner's scheduler parks it and completes it with the first
  delivery in the job's inbox that `match` finds, or when its `until` (or the deadline of an
  enclosing `timeout`) passes; the runner journals the result, synced, and
  only then takes the delivery out of the inbox (G3: docs/daemon.md). `perform_await` does the
  same for callers that perform one effect at a time.

Request fields: callback `{"job", "name"?, "method"?}`; await `{"job", "key"}` (a callback's
token) or `{"job", "event"}` (an event name), with `until` (epoch seconds) for `--timeout`.
Results: callback `{"token", "url"}` or `{"error"}`; await `{"key", "delivery"}`,
`{"expired": true}` when its own `until` passed, or `{"timeout": true}` when the deadline of
an enclosing `timeout` did (the machine then fails that `timeout`). `delivery` is what the
daemon stored (docs/daemon.md): a callback's `method`, `query`, `headers`, `body`; an
event's `data`.
"""
from __future__ import annotations

import math

POLL = 0.05
"""Seconds between two looks at the inbox while an await waits."""


def perform_callback(req: dict, term, token=None) -> dict:
    """Register a one-shot callback for the job: its token and URL."""
    from ..errors import FlowmetalError
    from ..journal import open_store
    from ..journal.jobstore import new_token
    try:
        base = callback_base()
        tok = new_token()
        open_store().bind(tok, req["job"], req.get("method"))
    except (FlowmetalError, OSError, ValueError) as e:
        return {"error": f"callback: {e}"}
    return {"token": tok, "url": f"{base}/callbacks/{tok}"}


def callback_base() -> str:
    """Where callback URLs live: `[daemon] public_url`, else the running daemon's URL (one is
    started if none runs). Raises FlowmetalError (a bad config, a daemon that cannot start)."""
    from ..daemon import main
    from ..runner.config import load_config
    from ..statedir import state_dir
    public = load_config().daemon.public_url
    info = main.start(state_dir())
    return (public or info["url"]).rstrip("/")


def match(req: dict, mail: dict, claimed: set) -> tuple[str, dict] | None:
    """The delivery an await request takes from `mail` ({key: data}), skipping keys already
    `claimed` by another await of this runner: its callback's token, or the event of its name
    with the smallest number (events are consumed in the order they were sent)."""
    key = req.get("key")
    if key is not None:
        return (key, mail[key]) if key in mail and key not in claimed else None
    prefix = f"event:{req.get('event')}:"
    keys = [k for k in mail if k.startswith(prefix) and k not in claimed]
    if not keys:
        return None
    first = min(keys)          # the number has 12 digits: text order is number order
    return first, mail[first]


def due(req: dict) -> float:
    """When an await (or a sleep) ends by itself: its `until`, or the deadline of an enclosing
    `timeout` if that is sooner; infinity when neither is set."""
    times = [t for t in (req.get("until"), req.get("deadline")) if t is not None]
    return float(min(times)) if times else math.inf


def perform_await(req: dict, term, token=None) -> dict:
    """Wait for the delivery an await request matches, until its time runs out or `token` is
    set (then `{"timeout": true}` as a cancelled sleep). The caller takes the delivery out of
    the inbox once it has stored the result."""
    import time

    from ..journal import open_store
    from .clock import get_clock
    store, clock, end = open_store(), get_clock(), due(req)
    while True:
        got = match(req, store.mail(req["job"]), set())
        if got is not None:
            return {"key": got[0], "delivery": got[1]}
        if token is not None and token.is_set():
            return {"timeout": True}
        now = clock.now()
        if now >= end:
            # the deadline of an enclosing `timeout` is the machine's business: {"timeout"}
            cut = req.get("deadline") is not None and now >= req["deadline"]
            return {"timeout": True} if cut else {"expired": True}
        time.sleep(POLL)
