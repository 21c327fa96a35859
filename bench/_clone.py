"""Cloning a parked job, for the parked-job benchmarks (bench/parked.py): many parked jobs
without running a runner for each (~0.3 s of CPU apiece).

A template job is run detached until a daemon runner parks it; its records are then copied
into new jobs through the store, with the template's id replaced by the new one everywhere
(the machine state's `job`, requests' `job`, step keys) and, for timers, its wake-up time
replaced too (the RFC 3339 text in argv and state, the epoch number in the sleep request and
in `job.parked`), so a clone is the job a runner would have parked at that time.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

TEMPLATE_UNTIL = 1893456000      # 2030-01-01T00:00:00Z: what a timer template sleeps until
_HEAD_KEYS = ("seq", "ts", "kind", "crc", "format", "id")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def template(store, job_id: str) -> list[str]:
    """The template's records as JSON texts (record 0 without its header keys; the others
    as `{"kind", "fields"}`), ready for text substitution."""
    out = []
    for rec in store.records(job_id):
        fields = {k: v for k, v in rec.items() if k not in _HEAD_KEYS}
        out.append(json.dumps({"kind": rec["kind"], "fields": fields}))
    if json.loads(out[-1])["kind"] != "job.parked":
        raise RuntimeError(f"template {job_id} is not parked")
    return out


def clone_id(template_id: str, n: int) -> str:
    """The n-th clone's id: the template's name, a 6-character base-36 suffix from n."""
    suffix = ""
    for _ in range(6):
        n, d = divmod(n, 36)
        suffix = _ALPHABET[d] + suffix
    return f"{template_id.rsplit('-', 1)[0]}-{suffix}"


def clone(store, texts: list[str], old_id: str, new_id: str, until: int | None = None) -> None:
    """One clone `new_id` of the template (its texts); a timer template wakes at `until`."""
    subs = [(old_id, new_id)]
    if until is not None:
        subs += [(rfc3339(TEMPLATE_UNTIL), rfc3339(until)),
                 (repr(float(TEMPLATE_UNTIL)), repr(float(until)))]
    recs = []
    for text in texts:
        for a, b in subs:
            text = text.replace(a, b)
        recs.append(json.loads(text))
    lease = store.create(new_id, recs[0]["fields"], fsync=False)
    try:
        for rec in recs[1:]:
            lease.append(rec["kind"], rec["fields"], sync=False)
        lease.set_wake(recs[-1]["fields"].get("until"))
    finally:
        lease.release()


def clone_many(store, texts, old_id: str, start: int, untils: list) -> list[str]:
    """Clones numbered start.. (ids clone_id(old_id, n)), one per entry of `untils` (None
    for an await template); their ids. Prints the rate."""
    t0 = time.perf_counter()
    ids = []
    for i, until in enumerate(untils):
        new_id = clone_id(old_id, start + i)
        clone(store, texts, old_id, new_id, until)
        ids.append(new_id)
    dt = time.perf_counter() - t0
    print(f"  cloned {len(ids)} jobs in {dt:.1f} s ({len(ids) / max(dt, 1e-9):.0f}/s)",
          flush=True)
    return ids
