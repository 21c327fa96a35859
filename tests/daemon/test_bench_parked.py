"""The cloning of bench/parked.py: clones of a parked job are jobs a daemon files and runs as
it would the template (an overdue one runs to its end at start; the others stay parked)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .conftest import ROOT, Daemon, fm, wait_for

sys.path.insert(0, str(ROOT / "bench"))

from _clone import TEMPLATE_UNTIL, clone_many, rfc3339, template  # noqa: E402


def test_clones_resume_and_finish(env, tmp_path):
    from flowmetal.journal.jsonl import JsonlStore
    home = Path(env["FM_HOME"])
    script = tmp_path / "nap.fm"
    script.write_text(f"sleep --until {rfc3339(TEMPLATE_UNTIL)}\necho done\n")
    d = Daemon(home, env).start()
    try:
        job = fm("run", "-d", script, env=env).stdout.strip()
        store = JsonlStore(home)
        wait_for(lambda: (store.last(job) or {}).get("kind") == "job.parked"
                 and store.holder(job) is None, what="the template to park")
    finally:
        d.stop()
    now = int(time.time())
    ids = clone_many(store, template(store, job), job, 1, [now - 5] + [TEMPLATE_UNTIL] * 19)
    assert len({len(i) for i in [job, *ids]}) == 1
    d = Daemon(home, env).start()
    try:
        wait_for(lambda: (store.last(ids[0]) or {}).get("kind") == "job.finished",
                 what="the overdue clone to finish")
        assert fm("log", ids[0], "--output", env=env).stdout == "done\n"
        ps = {j["id"]: j for j in map(json.loads, fm("ps", "--json", env=env).stdout.splitlines())}
        assert all(ps[i]["state"] == "sleeping" and ps[i]["pid"] is None for i in ids[1:]), ps
        assert store.last(ids[0])["status"] == 0
    finally:
        d.stop()
    assert sorted(i for i, _ in store.wakes()) == sorted([job, *ids[1:]])
