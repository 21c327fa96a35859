"""Durable time: the clock, sleep, random, deadlines, the fake clock and the TTY status line."""
import os
import pty
import re
import time

import pytest

from flowmetal.connectors import Term, perform
from flowmetal.connectors.clock import Clock, FakeClock, get_clock

from .conftest import EchoTerm

DAY = 86400.0


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A virtual clock in a file, starting at a fixed time."""
    path = tmp_path / "clock"
    path.write_text("1800000000.0")
    monkeypatch.setenv("FM_FAKE_CLOCK", str(path))
    return path


@pytest.fixture(autouse=True)
def real_clock_by_default(monkeypatch):
    monkeypatch.delenv("FM_FAKE_CLOCK", raising=False)


# -- the clock itself --------------------------------------------------------------------------

def test_real_clock_reads_and_waits():
    clock = get_clock()
    assert type(clock) is Clock and not clock.fake
    assert abs(clock.now() - time.time()) < 1
    t0 = time.monotonic()
    assert clock.sleep_until(time.time() + 0.2) is False
    assert 0.19 <= time.monotonic() - t0 < 2.0  # cut at 0.2 s, not 30 (10x margin)
    t0 = time.monotonic()
    assert clock.sleep_until(time.time() - 10) is False  # already past: at once
    assert time.monotonic() - t0 < 5.0   # not a wait of 10 s (a busy machine may stall)


def test_real_sleep_cut_by_deadline():
    t0 = time.monotonic()
    assert Clock().sleep_until(time.time() + 30, deadline=time.time() + 0.2) is True
    assert 0.19 <= time.monotonic() - t0 < 2.0  # cut at 0.2 s, not 30 (10x margin)
    # a deadline after `until` does not cut anything
    assert Clock().sleep_until(time.time() + 0.05, deadline=time.time() + 30) is False


def test_real_sleep_ticks_at_once_and_every_second(monkeypatch):
    monkeypatch.setattr("flowmetal.connectors.clock.TICK", 0.1)
    ticks = []
    end = time.time() + 0.35
    Clock().sleep_until(end, on_tick=lambda now, e: ticks.append((now, e)))
    assert 3 <= len(ticks) <= 5
    assert all(e == end for _, e in ticks)
    assert ticks[0][0] < end - 0.3  # the first one right away


def test_fake_clock_starts_at_real_time(tmp_path, monkeypatch):
    path = tmp_path / "clock"
    monkeypatch.setenv("FM_FAKE_CLOCK", str(path))
    clock = get_clock()
    assert isinstance(clock, FakeClock) and clock.fake
    now = clock.now()
    assert abs(now - time.time()) < 1
    assert float(path.read_text()) == now  # written, so the next reading agrees
    assert clock.now() == now
    path.write_text("")  # empty: starts again at the real time
    assert abs(clock.now() - time.time()) < 1


def test_fake_sleep_of_three_days_is_instant(fake):
    t0 = time.monotonic()
    res = perform({"op": "sleep", "until": 1800000000.0 + 3 * DAY, "why": "sleep 3d"}, Term())
    assert time.monotonic() - t0 < 5  # three days of fake time, no real waiting
    assert res == {"now": 1800000000.0 + 3 * DAY}
    assert float(fake.read_text()) == 1800000000.0 + 3 * DAY
    # sleeping until a time already past does not move the clock back
    assert perform({"op": "sleep", "until": 1800000000.0, "why": "x"}, Term()) == \
        {"now": 1800000000.0 + 3 * DAY}


def test_fake_sleep_cut_by_deadline_advances_only_to_it(fake):
    res = perform({"op": "sleep", "until": 1800000000.0 + DAY, "why": "sleep 1d",
                   "deadline": 1800000000.0 + 60}, Term())
    assert res == {"now": 1800000060.0, "timeout": True}
    assert float(fake.read_text()) == 1800000060.0


# -- ops ---------------------------------------------------------------------------------------

def test_clock_op(fake):
    assert perform({"op": "clock"}, Term()) == {"now": 1800000000.0}
    res = perform({"op": "clock", "format": "%Y-%m-%d"}, Term())
    assert res["text"] == time.strftime("%Y-%m-%d", time.localtime(1800000000))
    res = perform({"op": "clock", "format": ""}, Term())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", res["text"])
    # text from bytes that are not UTF-8 (lone surrogates) passes through
    assert perform({"op": "clock", "format": "\udcff%Y\udc80é"}, Term())["text"] == \
        "\udcff" + time.strftime("%Y", time.localtime(1800000000)) + "\udc80é"


def test_clock_rfc3339_uses_the_local_offset(fake, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert perform({"op": "clock", "format": ""}, Term())["text"] == "2027-01-15T08:00:00+00:00"
        monkeypatch.setenv("TZ", "America/New_York")
        time.tzset()
        assert perform({"op": "clock", "format": ""}, Term())["text"] == "2027-01-15T03:00:00-05:00"
        assert perform({"op": "clock", "format": "%H:%M %z"}, Term())["text"] == "03:00 -0500"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_clock_in_the_zone_of_tz(fake, monkeypatch):
    # 1800000000 = 2027-01-15T08:00:00Z; the process's own zone must not matter
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        def text(fmt, tz):
            return perform({"op": "clock", "format": fmt, "tz": tz}, Term())["text"]
        assert text("", "UTC") == "2027-01-15T08:00:00+00:00"
        assert text("", "Asia/Tokyo") == "2027-01-15T17:00:00+09:00"
        assert text("%H:%M %Z %z", "Europe/Paris") == "09:00 CET +0100"
        assert text("%H %Z", ":Europe/Paris") == "09 CET"
        # %s is the epoch in every zone (glibc's would go back through the process's zone)
        assert text("%s|%%s|%%%s", "Asia/Tokyo") == "1800000000|%s|%1800000000"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("tz, want", [
    ("UTC0", "08:00 UTC +0000"), ("JST-9", "17:00 JST +0900"), ("<+03>-3", "11:00 +03 +0300"),
    ("CET-1CEST,M3.5.0,M10.5.0/3", "09:00 CET +0100"),
    ("EST5EDT", "03:00 EST -0500"),                     # a tz database name, not a rule
    ("", "08:00 UTC +0000"), (":", "08:00 UTC +0000"),  # empty is UTC, as in glibc
    ("no/such/zone", "08:00 UTC +0000"), ("garbage", "08:00 UTC +0000"),
    ("../etc", "08:00 UTC +0000"), ("a\0b", "08:00 UTC +0000"), ("\udcff", "08:00 UTC +0000"),
])
def test_clock_tz_values(fake, tz, want):
    res = perform({"op": "clock", "format": "%H:%M %Z %z", "tz": tz}, Term())
    assert res["text"] == want


def test_clock_tz_from_a_zone_file(fake, tmp_path):
    zone = "/usr/share/zoneinfo/Asia/Tokyo"
    if not os.path.exists(zone):
        pytest.skip("no tz database")
    res = perform({"op": "clock", "format": "%H %Z", "tz": ":" + zone}, Term())
    assert res["text"] == "17 JST"
    (tmp_path / "bad").write_text("not a zone file")
    res = perform({"op": "clock", "format": "%H %Z", "tz": str(tmp_path / "bad")}, Term())
    assert res["text"] == "08 UTC"


def test_clock_summer_time_follows_the_moment(fake):
    # a POSIX rule and a tz database name agree on both sides of the change
    for tz in ("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Paris"):
        res = perform({"op": "clock", "times": [["%H %Z", 1790000000], ["%H %Z", None]],
                       "tz": tz}, Term())
        assert res["texts"] == ["16 CEST", "09 CET"]


def test_clock_times_for_printf(fake):
    res = perform({"op": "clock", "tz": "UTC",
                   "times": [["%Y", 0], ["%s", None], ["%F %T", -1], ["%Y", 10 ** 20]]},
                  Term())
    # a time out of range prints nothing, as in bash
    assert res == {"now": 1800000000.0,
                   "texts": ["1970", "1800000000", "1969-12-31 23:59:59", ""]}
    # without tz: the process's local time, as for `format`
    res = perform({"op": "clock", "times": [["%H:%M", 0]]}, Term())
    assert res["texts"] == [time.strftime("%H:%M", time.localtime(0))]


def test_random_ranges():
    draws = [perform({"op": "random"}, Term()) for _ in range(300)]
    assert all(set(d) == {"int", "float"} for d in draws)
    assert all(isinstance(d["int"], int) and 0 <= d["int"] <= 32767 for d in draws)
    assert all(isinstance(d["float"], float) and 0.0 <= d["float"] < 1.0 for d in draws)
    assert len({d["int"] for d in draws}) > 250
    assert max(d["int"] for d in draws) > 16384 > min(d["int"] for d in draws)


# -- deadlines ---------------------------------------------------------------------------------

def test_passed_deadline_performs_nothing(tmp_path, env):
    marker = tmp_path / "ran"
    req = {"op": "exec", "cwd": str(tmp_path), "deadline": time.time() - 1,
           "stages": [{"argv": ["touch", str(marker)], "env": env}]}
    assert perform(req, Term()) == {"timeout": True}
    assert not marker.exists()
    assert perform({"op": "write", "target": {"kind": "file", "path": "f", "mode": "w"},
                    "cwd": str(tmp_path), "data": "x", "deadline": time.time()}, Term()) \
        == {"timeout": True}
    assert not (tmp_path / "f").exists()
    assert perform({"op": "clock", "deadline": time.time() - 1}, Term()) == {"timeout": True}


def test_future_deadline_is_ignored_by_quick_ops(tmp_path):
    res = perform({"op": "clock", "deadline": time.time() + 60}, Term())
    assert set(res) == {"now"}


def test_deadline_against_the_fake_clock(fake, tmp_path, env):
    req = {"op": "exec", "cwd": str(tmp_path), "deadline": 1800000000.0,
           "stages": [{"argv": ["touch", "ran"], "env": env}]}
    assert perform(req, Term()) == {"timeout": True}
    req["deadline"] = 1800000001.0
    assert perform(req, Term()) == {"status": [0]}
    assert (tmp_path / "ran").exists()


def test_exec_stopped_at_its_deadline(term, env, tmp_path):
    pidfile = tmp_path / "pid"
    deadline = time.time() + 0.5
    req = {"op": "exec", "cwd": str(tmp_path), "deadline": deadline,
           "stages": [{"argv": ["sh", "-c", f"echo $$ > {pidfile}; exec /bin/sleep 30"],
                       "env": env}]}
    res = perform(req, term)
    late = time.time() - deadline
    assert res == {"status": [143], "stopped": True, "timeout": True}
    assert -0.01 <= late < 1.0      # ~0.1 s (the poll); 10x that for a loaded machine
    assert gone(int(pidfile.read_text()))


def test_exec_finishing_before_its_deadline_is_untouched(term, env, tmp_path):
    req = {"op": "exec", "cwd": str(tmp_path), "deadline": time.time() + 30,
           "stages": [{"argv": ["echo", "hi"], "env": env}]}
    assert perform(req, term) == {"status": [0], "out": "hi\n"}


def test_real_sleep_cut_by_deadline_op():
    t0 = time.monotonic()
    res = perform({"op": "sleep", "until": time.time() + 30, "why": "sleep 30s",
                   "deadline": time.time() + 0.2}, Term())
    assert res["timeout"] is True and 0.19 <= time.monotonic() - t0 < 2.0
    assert abs(res["now"] - time.time()) < 1


# -- the status line ---------------------------------------------------------------------------

def _read_all(fd):
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return data.decode()
        if not chunk:
            return data.decode()
        data += chunk


def test_status_line_on_a_tty():
    master, slave = pty.openpty()
    try:
        term = Term(stdout_fd=slave, stderr_fd=slave, stdin_fd=None)
        until = time.time() + 0.3
        res = perform({"op": "sleep", "until": until, "why": "sleep 1s"}, term)
        assert "timeout" not in res
        shown = _read_all(master)
    finally:
        os.close(master)
        os.close(slave)
    when = time.strftime("%H:%M:%S", time.localtime(until))
    assert shown.startswith(f"\rfm: sleep 1s: waiting until {when} (1s left)\x1b[K")
    assert shown.endswith("\r\x1b[K")
    assert "\n" not in shown


def test_no_status_line_off_a_tty_or_detached():
    term = EchoTerm()
    try:
        perform({"op": "sleep", "until": time.time() + 0.1, "why": "sleep 1s"}, term)
        assert term.echoed() == ("", "")
    finally:
        term.close()
    master, slave = pty.openpty()
    try:
        perform({"op": "sleep", "until": time.time() + 0.1, "why": "sleep 1s"},
                Term(stdout_fd=slave, stderr_fd=slave, stdin_fd=None, echo=False))
        assert _read_all(master) == ""
    finally:
        os.close(master)
        os.close(slave)


def test_status_line_cleared_on_ctrl_c(monkeypatch):
    master, slave = pty.openpty()

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("flowmetal.connectors.clock.time.sleep", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            perform({"op": "sleep", "until": time.time() + 60, "why": "sleep 1m"},
                    Term(stdout_fd=slave, stderr_fd=slave, stdin_fd=None))
        shown = _read_all(master)
    finally:
        os.close(master)
        os.close(slave)
    assert "(1m left)" in shown and shown.endswith("\r\x1b[K")
