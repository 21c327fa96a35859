"""SIGTERM ends a foreground fm whose machine is busy computing (no effect for a long time:
a loop of builtins, a slow regex) at once, and the job stays resumable."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

BUSY = {
    "loop": "echo start\nwhile true; do :; done\n",
    "regex": "echo start\n[[ $(printf 'a%.0s' {1..40})b =~ (a+)+$ ]] && echo m\n",
}


@pytest.mark.parametrize("kind", sorted(BUSY))
def test_sigterm_ends_a_busy_machine(tmp_path, kind):
    script = tmp_path / "busy.fm"
    script.write_text(BUSY[kind])
    env = {"FM_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "FM_HAND_OVER": "0"}
    p = subprocess.Popen([sys.executable, "-m", "flowmetal", str(script)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        assert p.stdout.readline() == "start\n"
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)     # it ends in well under a second
    finally:
        p.kill()
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "terminated; job busy-" in err and "can be resumed" in err, err


def test_ctrl_c_cancels_a_busy_loop_and_runs_its_finally(tmp_path):
    script = tmp_path / "busy.fm"
    script.write_text("try { echo start; while :; do :; done; } finally { echo cleanup; }\n")
    env = {"FM_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "FM_HAND_OVER": "0"}
    p = subprocess.Popen([sys.executable, "-m", "flowmetal", str(script)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        assert p.stdout.readline() == "start\n"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)    # at the next tick: well under a second
    finally:
        p.kill()
    assert (p.returncode, out) == (130, "cleanup\n"), err
