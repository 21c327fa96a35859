"""The machine reads nothing of the world itself: `~user`, printf's `%(...)T` and the job's time
zone reach it only as effect requests (and their journaled results)."""
from __future__ import annotations

import pwd
import time

import pytest

from flowmetal.machine import Machine, initial_state


def world(req):
    """A fake world: root lives in /r, nobody else exists; it is 1000 s past the epoch."""
    op = req["op"]
    if op == "home":
        return {"home": "/r" if req["user"] == "root" else None}
    if op == "clock":
        res = {"now": 1000.5}
        if "format" in req:
            res["text"] = f"<{req['format']}@{req.get('tz')}>"
        if "times" in req:
            res["texts"] = [f"<{f}@{1000 if at is None else at}@{req.get('tz')}>"
                            for f, at in req["times"]]
        return res
    if op == "exec":
        return {"status": [0] * len(req["stages"])}
    return {"sleep": {"now": 1000.0}}.get(op, {})


def run(text, env=None):
    """Run a script against `world`: (its requests, what it wrote to stdout, its status)."""
    state = initial_state(job="j-000000", argv=["t.fm"], env=env or {"PATH": "/bin"},
                          cwd="/tmp", filename="t.fm", pid=1)
    m = Machine(state, text)
    reqs, out = [], ""
    pending = m.start()
    while pending:
        p = pending.pop(0)
        req = p["req"]
        reqs.append(req)
        if req["op"] == "write" and req["target"] == {"kind": "term", "fd": 1}:
            out += req["data"]
        pending += m.feed(p["step"], world(req))
    return reqs, out, m.done()["status"]


@pytest.fixture(autouse=True)
def no_world(monkeypatch):
    """The machine must not read the clock, the zone or the user database itself."""
    def forbidden(*args):
        raise AssertionError("the machine read the world")
    for name in ("time", "localtime", "gmtime", "strftime"):
        monkeypatch.setattr(time, name, forbidden)
    monkeypatch.setattr(pwd, "getpwnam", forbidden)


def effects(reqs):
    return [r for r in reqs if r["op"] != "write"]


def test_tilde_user_is_looked_up_once_per_user_before_its_command():
    reqs, out, status = run("echo ~root ~nobody-fm ~root/x ~ ~+\n",
                            env={"HOME": "/h", "PWD": "/tmp"})
    assert status == 0 and out == "/r ~nobody-fm /r/x /h /tmp\n"
    assert effects(reqs) == [{"op": "home", "user": "root"}, {"op": "home", "user": "nobody-fm"}]


@pytest.mark.parametrize("script, want", [
    ("x=~root/a:~root/b; echo $x\n", "/r/a:/r/b\n"),
    ("a=(~root); echo ${a[0]}\n", "/r\n"),
    ("case /r in ~root) echo case;; esac\n", "case\n"),
    ("[[ /r == ~root ]] && echo cond\n", "cond\n"),
    ("for d in ~root; do echo $d; done\n", "/r\n"),
    ("echo $(echo ~root)\n", "/r\n"),
    ("echo ${x:-~root}\n", "/r\n"),
    ("f() { echo ~root; }; f\n", "/r\n"),
])
def test_tilde_user_in_every_context(script, want):
    reqs, out, status = run(script)
    assert (status, out) == (0, want)
    assert {"op": "home", "user": "root"} in reqs


def test_tilde_user_in_redirect_targets_of_programs_and_pipelines():
    reqs, _, _ = run("cat < ~root/in > ~nobody-fm | cat 2> ~root/err\n")
    homes = [r["user"] for r in reqs if r["op"] == "home"]
    assert homes == ["root", "nobody-fm", "root"]       # once per user in each stage
    stages = next(r for r in reqs if r["op"] == "exec")["stages"]
    assert stages[0]["fds"]["0"]["path"] == "/r/in"
    assert stages[0]["fds"]["1"]["path"] == "/tmp/~nobody-fm"     # unknown: kept literally
    assert stages[1]["fds"]["2"]["path"] == "/r/err"


def test_printf_time_conversions_are_one_clock_effect():
    reqs, out, status = run("printf '%(%Y)T|%(%s)T|%s\\n' 0 -1 x\n")
    assert status == 0 and out == "<%Y@0@None>|<%s@1000@None>|x\n"
    assert effects(reqs) == [{"op": "clock", "times": [["%Y", 0], ["%s", None]]}]


def test_printf_without_time_conversions_makes_no_effect():
    reqs, out, _ = run("printf '%s-%d\\n' a 1\n")
    assert effects(reqs) == [] and out == "a-1\n"


def test_printf_time_in_a_variable():
    reqs, out, _ = run("printf -v t '%(%H)T' 3600; echo $t\n")
    assert out == "<%H@3600@None>\n"


def test_clock_requests_carry_the_exported_tz_only():
    cases = [
        ("now +%Z\n", None),                      # no TZ: the request is as it always was
        ("TZ=Asia/Tokyo now +%Z\n", "Asia/Tokyo"),            # a prefix assignment exports
        ("TZ=UTC0; now +%Z\n", None),                         # not exported
        ("export TZ=Europe/Paris; now\n", "Europe/Paris"),
        ("TZ=UTC printf '%(%Z)T' 0\n", "UTC"),
    ]
    for script, tz in cases:
        reqs, _, _ = run(script)
        clock = [r for r in reqs if r["op"] == "clock"]
        assert len(clock) == 1, script
        assert clock[0].get("tz") == tz and ("tz" in clock[0]) == (tz is not None), script


def test_tz_from_the_job_environment():
    reqs, out, _ = run("now +%H\nTZ= now +%H\n", env={"TZ": "Asia/Tokyo"})
    assert out == "<%H@Asia/Tokyo>\n<%H@>\n"


def test_sleep_until_asks_for_the_offset_in_the_job_zone():
    reqs, _, _ = run("TZ=Asia/Tokyo sleep --until 10:00\n")
    assert reqs[0] == {"op": "clock", "format": "%z", "tz": "Asia/Tokyo"}
