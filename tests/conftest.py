"""Suite-wide set-up: the signals the tests send reach the fm processes they start.

A suite started in the background (`./bin/test &`, `nohup`, some CI runners) inherits SIGINT
and SIGQUIT (and under nohup SIGHUP) ignored, and every child would too: fm keeps an ignored
signal ignored, as bash does, so the tests of Ctrl-C and hang-ups would fail for a reason that
has nothing to do with fm. Put them back to their defaults for this process and its children.

And a foreground job that waits long is handed to the daemon (started if none runs), which
would then go on with jobs that tests kill on purpose: FM_HAND_OVER=0 for every test, except
those of the hand-over (tests/daemon), which take it out of their environment.
"""
from __future__ import annotations

import os
import signal

os.environ["FM_HAND_OVER"] = "0"
os.environ["FM_LINGER"] = "0"       # the daemon's runners park an await at once (tests that
                                    # look at lingering set it themselves)


def pytest_configure(config):
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT
                          else signal.default_int_handler)


def pytest_sessionfinish(session, exitstatus):
    """No daemon started under this session's temporary directories may outlive it: each one
    left is stopped and fails the run (a test that lets a job start one must stop it). Under
    pytest-xdist the controller looks, once every worker is done: the workers' temporary
    directories are inside its own."""
    if hasattr(session.config, "workerinput"):
        return
    import os
    base = str(session.config._tmp_path_factory.getbasetemp())
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{pid}/environ", "rb") as f:
                home = next((e[8:].decode() for e in f.read().split(b"\0")
                             if e.startswith(b"FM_HOME=")), "")
        except OSError:
            continue
        if cmd[-3:-1] == [b"daemon", b"run"] and home.startswith(base):
            os.kill(int(pid), signal.SIGTERM)
            left.append(home)
    if left:
        print(f"\nfm daemons left running by tests (stopped now): {', '.join(sorted(left))}")
        session.exitstatus = 1
