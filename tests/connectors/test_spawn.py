"""The exec effect's posix_spawn path: a stage run in fm's own directory with plain fds is
started with os.posix_spawn, and must behave exactly as the Popen path does."""
import os
import signal

import pytest

from flowmetal.connectors import process

from .test_exec import CAPTURE, _ignored_and_blocked, run, stage

pytestmark = pytest.mark.skipif(not process._posix_spawn_usable,
                                reason="needs os.posix_spawn and /proc/self/fd")


@pytest.fixture
def here(tmp_path, monkeypatch):
    """The test's directory, made fm's own: the condition for posix_spawn."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_plain_stage_in_fms_directory_takes_the_posix_spawn_path(here):
    assert process._posix_spawn_ok(str(here), {0: 0, 1: 7, 2: 8})
    assert not process._posix_spawn_ok(str(here / "elsewhere"), {0: 0, 1: 7, 2: 8})
    assert not process._posix_spawn_ok(str(here), {0: 0, 1: 2, 2: 8})  # 2 -> 1 and 8 -> 2


def test_output_status_env_and_directory(term, env, here):
    res = run(term, here, stage(["sh", "-c", 'echo "$GREETING"; pwd; echo e >&2; exit 3'],
                                dict(env, GREETING="hi")))
    assert res == {"status": [3], "out": f"hi\n{here}\n", "err": "e\n"}
    assert term.echoed() == (f"hi\n{here}\n", "e\n")


def test_no_inherited_fd_reaches_the_child(term, env, here, monkeypatch):
    leaky = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(leaky, True)
    # As if fm had inherited it: open before the process's first posix_spawn.
    monkeypatch.setattr(process, "_strays_closed_on_exec", [False])
    try:
        res = run(term, here, stage(["ls", "/proc/self/fd"], env, f1=CAPTURE))
        opened = set(map(int, res["capture"].split()))
        assert leaky not in opened or leaky == 3    # ls's own directory fd may get number 3
        assert len(opened - {0, 1, 2}) <= 1, opened
        os.fstat(leaky)                             # still open in fm
    finally:
        os.close(leaky)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_children_start_with_default_signals(term, env, here):
    ignored, blocked = _ignored_and_blocked(term, env, here)
    assert ignored & (1 << (signal.SIGPIPE - 1)) == 0   # Python ignores it; the child must not
    assert blocked == 0


def test_sigpipe_kills_the_child(term, env, here):
    res = run(term, here, stage(["sh", "-c", "kill -PIPE $$; echo survived"], env))
    assert res["status"] == [141]


def test_failures_to_run(term, env, here):
    (here / "plain").write_text('echo plain "$1"\n')
    (here / "plain").chmod(0o755)
    (here / "s").write_text("#!/no/such/interp\n")
    (here / "s").chmod(0o755)
    assert run(term, here, stage(["./plain", "x"], env, f1=CAPTURE)) == {
        "status": [0], "capture": "plain x\n"}
    res = run(term, here, stage(["./s"], env))
    assert res["status"] == [126] and "bad interpreter" in res["errors"]["0"]
    assert run(term, here, stage(["no-such-command-fm"], env)) == {
        "status": [127], "errors": {"0": "command not found"}}

