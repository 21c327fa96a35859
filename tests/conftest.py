"""Suite-wide set-up: the signals the tests send reach the fm processes they start.

A suite started in the background (`./bin/test &`, `nohup`, some CI runners) inherits SIGINT
and SIGQUIT (and under nohup SIGHUP) ignored, and every child would too: fm keeps an ignored
signal ignored, as bash does, so the tests of Ctrl-C and hang-ups would fail for a reason that
has nothing to do with fm. Put them back to their defaults for this process and its children.
"""
from __future__ import annotations

import signal


def pytest_configure(config):
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT
                          else signal.default_int_handler)
