"""Pipe input is never lost (issue 13 item 1): fm against bash for every input source and kind
of reader inside a `while read` loop, the pipelines that lost data or never ended, endless
producers, and a streaming loop killed and resumed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .helpers import ROOT, only_job, watchdogs
from .test_real import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bash, /proc")

LINES = "1 2 3 4 5 6 7"

SOURCES = {
    # how the loop's input is given: (text before the loop, loop head, loop tail)
    "pipe-builtin": ("", f"printf '%s\\n' {LINES} | while read -r a; do", "done"),
    "pipe-program": ("", "seq 7 | while read -r a; do", "done"),
    "pipe-group": ("", "seq 20 | head -n 7 | while read -r a; do", "done"),
    "file": ("seq 7 > in.txt\n", "while read -r a; do", "done < in.txt"),
    "heredoc": ("", "while read -r a; do", "done <<EOF\n" + "\n".join(LINES.split()) + "\nEOF"),
    "herestring": ("", "while read -r a; do", "done <<< $'" + "\\n".join(LINES.split()) + "'"),
}

READERS = {
    # what the loop body runs besides printing the loop's line
    "builtin": "if read -r b; then echo \"b=$b\"; fi",
    "function": "rd",
    "external-reader": "sh -c 'read -r l; echo \"ext:$l\"'",
    "external-non-reader": "/usr/bin/test \"$a\" -gt 0 && echo \"n=$a\"",
}

PRELUDE = 'rd() { if read -r x; then echo "fn:$x"; fi; }\n'


def run_fm(script: str, cwd, home, timeout=60, env=None) -> subprocess.CompletedProcess:
    (cwd / "t.fm").write_text(script)
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env.update(FM_HOME=str(home), FM_CONFIG=os.devnull, PYTHONPATH=str(ROOT), LC_ALL="C.UTF-8")
    env.update(extra)
    return subprocess.run([sys.executable, "-m", "flowmetal", "t.fm"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def run_bash(script: str, cwd) -> subprocess.CompletedProcess:
    (cwd / "t.sh").write_text(script)
    return subprocess.run(["bash", "t.sh"], cwd=cwd, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=dict(os.environ,
                                                                         LC_ALL="C.UTF-8"))


def same_as_bash(script: str, tmp_path, home) -> subprocess.CompletedProcess:
    (tmp_path / "fm").mkdir()
    (tmp_path / "bash").mkdir()
    fm = run_fm(script, tmp_path / "fm", home)
    sh = run_bash(script, tmp_path / "bash")
    assert (fm.stdout, fm.returncode) == (sh.stdout, sh.returncode), fm.stderr
    return fm


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_a_loop_and_what_runs_inside_it_share_the_input_as_in_bash(source, reader, tmp_path,
                                                                    home):
    before, head, tail = SOURCES[source]
    script = (PRELUDE + before + head + "\n  echo \"a=$a\"\n  " + READERS[reader] + "\n"
              + tail + "\necho \"end $?\"\n")
    fm = same_as_bash(script, tmp_path, home)
    if reader == "external-non-reader":      # the bug: the program threw the rest away
        assert fm.stdout.count("n=") == 7


@pytest.mark.parametrize("script", [
    "seq 5 | while read n; do /usr/bin/test $n -gt 0 && echo $n; done | wc -l\n",
    "printf '%s\\n' a b c | sort -r | while read -r x; do /bin/echo \"got-$x\"; done\n",
    "yes | head -n 2 | while read y; do echo $y; done\necho \"${PIPESTATUS[@]}\"\n",
    "seq 5 | { read h; echo \"h=$h\"; cat; }\n",
    "{ echo b; echo a; } | sort | ( cat; echo end )\n",
    "seq 3 | while read a; do echo \"a=$a\"; head -n1; done\necho \"${PIPESTATUS[@]}\"\n",
    "seq 100000 | while read n; do [ $n = 3 ] && echo $n && break; done\n"
    "echo \"${PIPESTATUS[@]}\"\n",
    "f() { seq 100000 | while read n; do [ $n = 4 ] && echo $n && return 3; done; }\n"
    "f || echo \"status $?\"\n",
    "seq 3 > in.txt\nwhile read -r l; do echo \"[$l]\"; head -n1 >/dev/null; done < in.txt\n",
    "printf 'é1\\né2\\né3\\n' | while read -r l; do echo \"[$l]\"; sh -c 'read -r x; echo \"<$x>\"'; done\n",
], ids=["test-in-loop", "sort-then-loop", "yes-head-loop", "group-reads-then-cat",
        "subshell-cat", "head-on-a-stream", "break-out-of-a-stream", "return-out-of-a-stream",
        "head-on-a-file", "multibyte"])
def test_pipelines_that_lost_input_or_never_ended(script, tmp_path, home):
    same_as_bash(script, tmp_path, home)


def test_an_endless_producer_streams_and_the_loop_ends_promptly(tmp_path, home):
    script = ("n=0\n"
              "sh -c 'while :; do echo x; sleep 0.01; done' | while read -r l; do\n"
              "  n=$((n+1)); [ $n -ge 5 ] && break\n"
              "done\n"
              "echo \"got $n: ${PIPESTATUS[@]}\"\n"
              "yes | while read -r y; do break; done\n"
              "echo \"yes: ${PIPESTATUS[@]}\"\n")
    t0 = time.monotonic()
    r = run_fm(script, tmp_path, home, timeout=60)
    assert (r.returncode, r.stdout) == (0, "got 5: 141 0\nyes: 141 0\n"), r.stderr
    assert time.monotonic() - t0 < 30
    # nothing of the producers is left running
    assert not [p for p in _processes_with(f"FM_STEP_KEY={only_job(home)[0]}-")]


def test_a_slow_producer_is_read_as_it_writes(tmp_path, home):
    """The loop sees the first line while the producer still runs (it waits for a file that
    only the loop creates)."""
    script = ("sh -c 'echo first; while [ ! -e go ]; do sleep 0.02; done; echo second' |\n"
              "while read -r l; do echo \"got $l\"; touch go; done\n")
    r = run_fm(script, tmp_path, home)
    assert (r.returncode, r.stdout) == (0, "got first\ngot second\n"), r.stderr


PRODUCER = ("sh -c 'i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo $i; sleep 0.05; done' |\n"
            "while read -r n; do\n"
            "  echo \"$n\" >> seen.txt\n"
            "done\n"
            "echo \"done ${PIPESTATUS[@]}\"\n")


def test_a_streaming_loop_killed_and_resumed_sees_every_line_once(tmp_path, home):
    (tmp_path / "t.fm").write_text(PRODUCER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env.update(FM_HOME=str(home), FM_CONFIG=os.devnull, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "flowmetal", "t.fm"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen = tmp_path / "seen.txt"
    wait_for(lambda: seen.exists() and len(seen.read_text().split()) >= 10, timeout=60)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert 10 <= len(seen.read_text().split()) < 40
    job_id, _ = only_job(home)
    r = subprocess.run([sys.executable, "-m", "flowmetal", "resume", job_id], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout) == (0, "done 0 0\n"), r.stderr
    assert seen.read_text().split() == [str(n) for n in range(1, 41)]
    log = subprocess.run([sys.executable, "-m", "flowmetal", "log", job_id], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60).stdout
    assert "gone (started before a crash)" in log and "skip" in log


def _processes_with(needle: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def test_a_streams_environment_is_redacted_in_fm_log(tmp_path, home):
    """The start request of a stream lives in the state (to start it again after a crash):
    `fm log --json` hides its secrets as it does an exec's."""
    script = "seq 200 | while read -r n; do echo \"$n\" >> out.txt; done\n"
    r = run_fm(script, tmp_path, home, env={"API_TOKEN": "hunter2"})
    assert r.returncode == 0, r.stderr
    job_id, journal = only_job(home)
    assert "hunter2" in journal.read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env.update(FM_HOME=str(home), FM_CONFIG=os.devnull, PYTHONPATH=str(ROOT))
    log = subprocess.run([sys.executable, "-m", "flowmetal", "log", "--json", job_id],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert '"q"' in log.stdout and "hunter2" not in log.stdout


def test_a_resumed_stream_stops_the_producer_its_crashed_runner_left(tmp_path, home):
    """Only the runner is killed: its producer lives on (sleeping). The resumed job starts the
    producer again, and stops the old one first: `late` is written once, by the new one."""
    (tmp_path / "t.fm").write_text(
        "sh -c 'echo 1; echo 2; sleep 3; echo late >> side.txt; echo 3' |\n"
        "while read -r n; do echo \"$n\" >> seen.txt; done\n"
        "echo \"done ${PIPESTATUS[@]}\"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env.update(FM_HOME=str(home), FM_CONFIG=os.devnull, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "flowmetal", "t.fm"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen = tmp_path / "seen.txt"
    wait_for(lambda: seen.exists() and seen.read_text().split() == ["1", "2"], timeout=60)
    for pid in watchdogs(home):                 # (else it would stop the producer at once)
        os.kill(pid, signal.SIGKILL)
    os.kill(proc.pid, signal.SIGKILL)           # the runner alone: the producer survives
    proc.communicate(timeout=30)
    job_id, _ = only_job(home)
    assert _processes_with(f"FM_STEP_KEY={job_id}-")
    r = subprocess.run([sys.executable, "-m", "flowmetal", "resume", job_id], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout) == (0, "done 0 0\n"), r.stderr
    time.sleep(3.5)         # an old producer still alive would have written by now
    assert seen.read_text().split() == ["1", "2", "3"]
    assert (tmp_path / "side.txt").read_text().split() == ["late"]
