"""The exec effect: real pipelines of real programs."""
import os
import signal
import sys
import threading
import time

import pytest

from flowmetal.connectors import perform, process
from flowmetal.connectors.process import run_pipeline

from .conftest import EchoTerm

PIPE = {"kind": "pipe"}
CAPTURE = {"kind": "capture"}


def stage(argv, env, **fds):
    """A stage; fds given as f0=..., f1=..., f3=... keyword targets."""
    return {"argv": argv, "env": env, "fds": {k[1:]: t for k, t in fds.items()}}


def run(term, cwd, *stages):
    return perform({"op": "exec", "cwd": str(cwd), "stages": list(stages)}, term)


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- single commands ---------------------------------------------------------------------------

def test_output_is_echoed_and_returned(term, env, tmp_path):
    res = run(term, tmp_path, stage(["sh", "-c", "echo out; echo err >&2; exit 3"], env))
    assert res == {"status": [3], "out": "out\n", "err": "err\n"}
    assert term.echoed() == ("out\n", "err\n")


def test_detached_term_does_not_echo_but_still_returns(env, tmp_path):
    term = EchoTerm(echo=False)
    try:
        res = run(term, tmp_path, stage(["echo", "hi"], env))
        assert res["out"] == "hi\n"
        assert term.echoed() == ("", "")
    finally:
        term.close()


def test_missing_std_fds_default_to_the_term(term, env, tmp_path):
    res = run(term, tmp_path, {"argv": ["echo", "hi"], "env": env})
    assert res == {"status": [0], "out": "hi\n"}


def test_env_and_cwd(term, env, tmp_path):
    res = run(term, tmp_path, stage(["sh", "-c", 'echo "$GREETING"; pwd'],
                                    {**env, "GREETING": "hello world"}, f1=CAPTURE))
    assert res["capture"] == f"hello world\n{tmp_path}\n"


def test_path_is_searched_in_the_stage_env(term, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "mytool"
    tool.write_text("#!/bin/sh\necho mytool ran\n")
    tool.chmod(0o755)
    res = run(term, tmp_path, stage(["mytool"], {"PATH": f"{bindir}:/usr/bin:/bin"}, f1=CAPTURE))
    assert res == {"status": [0], "capture": "mytool ran\n"}
    res = run(term, tmp_path, stage(["mytool"], {"PATH": "/usr/bin:/bin"}))
    assert res == {"status": [127], "errors": {"0": "command not found"}}


def test_relative_program_path_is_resolved_against_cwd(term, env, tmp_path):
    (tmp_path / "s").write_text("#!/bin/sh\necho relative\n")
    (tmp_path / "s").chmod(0o755)
    assert run(term, tmp_path, stage(["./s"], env, f1=CAPTURE))["capture"] == "relative\n"


def test_script_without_shebang_runs_with_sh(term, env, tmp_path):
    (tmp_path / "plain").write_text("echo plain \"$1\"\n")
    (tmp_path / "plain").chmod(0o755)
    res = run(term, tmp_path, stage(["./plain", "arg"], env, f1=CAPTURE))
    assert res == {"status": [0], "capture": "plain arg\n"}


def test_exit_status_of_a_signalled_child_is_128_plus_n(term, env, tmp_path):
    res = run(term, tmp_path, stage(["sh", "-c", "kill -TERM $$"], env))
    assert res["status"] == [143]


# -- failures to run -----------------------------------------------------------------------------

def test_command_not_found(term, env, tmp_path):
    res = run(term, tmp_path, stage(["no-such-command-fm"], env))
    assert res == {"status": [127], "errors": {"0": "command not found"}}


def test_missing_explicit_path(term, env, tmp_path):
    res = run(term, tmp_path, stage(["./nope"], env))
    assert res == {"status": [127], "errors": {"0": "no such file or directory"}}


def test_directory_and_non_executable(term, env, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("echo hi\n")
    assert run(term, tmp_path, stage(["./d"], env)) == {
        "status": [126], "errors": {"0": "is a directory"}}
    assert run(term, tmp_path, stage([str(tmp_path / "f")], env)) == {
        "status": [126], "errors": {"0": "permission denied"}}


@pytest.mark.skipif(os.geteuid() == 0, reason="root may execute anything")
def test_non_executable_found_on_path_is_permission_denied(term, tmp_path):
    (tmp_path / "tool").write_text("echo\n")
    res = run(term, tmp_path, stage(["tool"], {"PATH": str(tmp_path)}))
    assert res == {"status": [126], "errors": {"0": "permission denied"}}


def test_bad_interpreter(term, env, tmp_path):
    (tmp_path / "s").write_text("#!/no/such/interp\n")
    (tmp_path / "s").chmod(0o755)
    res = run(term, tmp_path, stage(["./s"], env))
    assert res["status"] == [126]
    assert "bad interpreter" in res["errors"]["0"]


def test_missing_redirect_dir_skips_only_that_stage(term, env, tmp_path):
    res = run(term, tmp_path,
              stage(["echo", "a"], env, f1=PIPE),
              stage(["cat"], env, f0=PIPE,
                    f1={"kind": "file", "path": "nodir/x", "mode": "w", "id": 0,
                        "display": "nodir/x"}),
              stage(["echo", "third"], env, f1=CAPTURE))
    assert res["status"][1:] == [1, 0]
    assert res["status"][0] in (0, 141)  # its reader never started
    assert res["errors"] == {"1": "cannot open nodir/x: No such file or directory"}
    assert res["capture"] == "third\n"


def test_missing_cwd(term, env, tmp_path):
    res = run(term, tmp_path / "gone", stage(["true"], env))
    assert res["status"] == [1]
    assert "cannot enter" in res["errors"]["0"]


def test_nul_byte_in_argument_is_a_result_not_an_exception(term, env, tmp_path):
    res = run(term, tmp_path, stage(["echo", "a\0b"], env))
    assert res["status"] == [126]


def test_malformed_requests_raise(term, env, tmp_path):
    with pytest.raises(ValueError):
        perform({"op": "nope"}, term)
    with pytest.raises(ValueError):
        run(term, tmp_path, stage(["true"], env, f1={"kind": "bogus"}))
    with pytest.raises(ValueError):
        run(term, tmp_path, stage(["true"], env, f0=PIPE))


# -- pipelines ---------------------------------------------------------------------------------

def test_three_stage_pipeline(term, env, tmp_path):
    res = run(term, tmp_path,
              stage(["printf", "pear\\napple\\npear\\nfig\\npear\\n"], env, f1=PIPE),
              stage(["sort"], env, f0=PIPE, f1=PIPE),
              stage(["uniq", "-c"], env, f0=PIPE))
    assert res["status"] == [0, 0, 0]
    assert [line.split() for line in res["out"].splitlines()] == [
        ["1", "apple"], ["1", "fig"], ["3", "pear"]]
    assert term.echoed()[0] == res["out"]


def test_pipe_both_stdout_and_stderr(term, env, tmp_path):
    res = run(term, tmp_path,
              stage(["sh", "-c", "echo out; echo err >&2"], env, f1=PIPE, f2=PIPE),
              stage(["cat"], env, f0=PIPE, f1=CAPTURE))
    assert res == {"status": [0, 0], "capture": "out\nerr\n"}


def test_stderr_of_every_stage_shares_the_job_stderr(term, env, tmp_path):
    res = run(term, tmp_path,
              stage(["sh", "-c", "echo one >&2; echo data"], env, f1=PIPE),
              stage(["sh", "-c", "sleep 0.05; cat; echo two >&2"], env, f0=PIPE))
    assert res == {"status": [0, 0], "out": "data\n", "err": "one\ntwo\n"}


def test_sigpipe_is_141_and_fast(term, env, tmp_path):
    start = time.monotonic()
    res = run(term, tmp_path, stage(["yes"], env, f1=PIPE), stage(["head", "-1"], env, f0=PIPE))
    assert res == {"status": [141, 0], "out": "y\n"}
    assert time.monotonic() - start < 2


def test_stage_whose_stdin_is_not_the_pipe_gets_eof_upstream(term, env, tmp_path):
    res = run(term, tmp_path, stage(["yes"], env, f1=PIPE),
              stage(["echo", "x"], env, f0={"kind": "data", "data": ""}))
    assert res == {"status": [141, 0], "out": "x\n"}


# -- stdin ---------------------------------------------------------------------------------------

def test_ten_megabytes_of_data_through_cat(term, env, tmp_path):
    data = "".join(f"{i:09d}\n" for i in range(1_000_000))
    assert len(data) == 10_000_000
    res = run(term, tmp_path, stage(["cat"], env, f0={"kind": "data", "data": data}, f1=CAPTURE))
    assert res["status"] == [0]
    assert res["capture"] == data


def test_data_to_a_reader_that_exits_early(term, env, tmp_path):
    res = run(term, tmp_path, stage(["head", "-c", "3"], env,
                                    f0={"kind": "data", "data": "x" * 5_000_000}, f1=CAPTURE))
    assert res == {"status": [0], "capture": "xxx"}


def test_term_stdin_is_inherited(env, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("from stdin\n")
    fd = os.open(src, os.O_RDONLY)
    term = EchoTerm(stdin_fd=fd)
    try:
        res = run(term, tmp_path, stage(["cat"], env, f1=CAPTURE))
        assert res["capture"] == "from stdin\n"
    finally:
        os.close(fd)
        term.close()


def test_no_stdin_reads_as_empty(term, env, tmp_path):
    term.stdin_fd = None
    assert run(term, tmp_path, stage(["cat"], env, f1=CAPTURE)) == {"status": [0]}


def test_non_utf8_output_survives(term, env, tmp_path):
    res = run(term, tmp_path, stage(["printf", "\\377ok"], env, f1=CAPTURE))
    assert res["capture"].encode("utf-8", "surrogateescape") == b"\xffok"


# -- files and fds -------------------------------------------------------------------------------

def test_same_id_shares_one_open_file(term, env, tmp_path):
    f = {"kind": "file", "path": "log", "mode": "w", "id": 7}
    res = run(term, tmp_path, stage(["sh", "-c", "echo out; echo err >&2; echo out2"], env,
                                    f1=f, f2=dict(f)))
    assert res == {"status": [0]}
    assert (tmp_path / "log").read_text() == "out\nerr\nout2\n"


def test_append_and_input_redirects(term, env, tmp_path):
    (tmp_path / "log").write_text("old\n")
    res = run(term, tmp_path,
              stage(["echo", "new"], env, f1={"kind": "file", "path": "log", "mode": "a", "id": 0}))
    assert res == {"status": [0]}
    res = run(term, tmp_path,
              stage(["cat"], env, f0={"kind": "file", "path": str(tmp_path / "log"), "mode": "r",
                                      "id": 0}, f1=CAPTURE))
    assert res["capture"] == "old\nnew\n"


def test_read_write_redirect_does_not_truncate(term, env, tmp_path):
    (tmp_path / "f").write_text("abcdef")
    run(term, tmp_path, stage(["printf", "XY"], env,
                              f1={"kind": "file", "path": "f", "mode": "rw", "id": 0}))
    assert (tmp_path / "f").read_text() == "XYcdef"


def test_closed_stdout(term, env, tmp_path):
    res = run(term, tmp_path, stage(["sh", "-c", "echo hi || echo failed >&2"], env,
                                    f1={"kind": "closed"}))
    assert res["err"].endswith("failed\n")


def test_closed_stdin(term, env, tmp_path):
    res = run(term, tmp_path, stage(["sh", "-c", "read x || echo no-stdin"], env,
                                    f0={"kind": "closed"}, f1=CAPTURE, f2=CAPTURE))
    assert "no-stdin" in res["capture"]


def test_extra_fds(term, env, tmp_path):
    res = run(term, tmp_path, stage(
        ["sh", "-c", "echo to3 >&3; cat <&4; echo to5 >&5"], env,
        f3={"kind": "file", "path": "three", "mode": "w", "id": 1},
        f4={"kind": "data", "data": "four\n"},
        f5=CAPTURE, f1=CAPTURE))
    assert res == {"status": [0], "capture": "four\nto5\n"}
    assert (tmp_path / "three").read_text() == "to3\n"


def test_extra_fds_from_a_thread(term, env, tmp_path):
    results = []
    t = threading.Thread(target=lambda: results.append(run(
        term, tmp_path, stage(["sh", "-c", "echo x >&3"], env, f3=CAPTURE))))
    t.start()
    t.join(10)
    assert results == [{"status": [0], "capture": "x\n"}]


def test_no_fd_leaks_into_children(term, env, tmp_path):
    leaky = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(leaky, True)
    try:
        for fds in ({}, {"f4": {"kind": "data", "data": ""}}):  # Popen path, fork path
            res = run(term, tmp_path, stage(["ls", "/proc/self/fd"], env, f1=CAPTURE, **fds))
            opened = set(map(int, res["capture"].split()))
            extra = {4} if fds else set()
            # ls itself opens one fd to read the directory.
            assert len(opened - {0, 1, 2} - extra) <= 1, opened
            assert leaky not in opened or leaky in extra | {3}
    finally:
        os.close(leaky)


def test_children_get_default_sigint_even_if_fm_ignores_it(term, env, tmp_path):
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        res = run(term, tmp_path, stage(["sh", "-c", "kill -INT $$; echo survived"], env))
    finally:
        signal.signal(signal.SIGINT, old)
    assert res["status"] == [130]


def _ignored_and_blocked(term, env, tmp_path, **fds):
    res = run(term, tmp_path, stage(["cat", "/proc/self/status"], env, f1=CAPTURE, **fds))
    fields = dict(line.split(":\t", 1) for line in res["capture"].splitlines() if ":\t" in line)
    return int(fields["SigIgn"], 16), int(fields["SigBlk"], 16)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("fds", [{}, {"f3": {"kind": "data", "data": ""}}], ids=["popen", "fork"])
def test_children_start_with_default_signals(term, env, tmp_path, fds):
    bit = lambda sig: 1 << (sig - 1)
    watched = bit(signal.SIGPIPE) | bit(signal.SIGINT)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ignored, blocked = _ignored_and_blocked(term, env, tmp_path, **fds)
    finally:
        signal.signal(signal.SIGINT, old)
    assert ignored & watched == 0  # fm ignores SIGPIPE (Python does) and here SIGINT too
    assert blocked == 0


# -- descendants, stopping ------------------------------------------------------------------------

def test_background_descendant_does_not_hold_the_pipeline(term, env, tmp_path):
    start = time.monotonic()
    res = run(term, tmp_path, stage(["sh", "-c", "(sleep 5; echo late) & echo now"], env))
    assert time.monotonic() - start < 2.5
    assert res == {"status": [0], "out": "now\n"}
    deadline = time.monotonic() + 15     # `sleep 5` began before; a loaded machine is slow
    echoed = ""
    while "late" not in echoed and time.monotonic() < deadline:
        time.sleep(0.05)
        echoed += term.echoed()[0]
    assert echoed == "now\nlate\n"  # still reaches the terminal, as under bash


def test_capture_waits_for_eof_like_bash(term, env, tmp_path):
    res = run(term, tmp_path, stage(["sh", "-c", "(sleep 0.2; echo late) & echo now"], env,
                                    f1=CAPTURE))
    assert res == {"status": [0], "capture": "now\nlate\n"}


def test_should_stop_terminates_quickly_and_leaves_no_child(term, env, tmp_path):
    pids = []
    start = time.monotonic()
    req = {"op": "exec", "cwd": str(tmp_path),
           "stages": [stage(["sleep", "30"], env, f1=PIPE), stage(["cat"], env, f0=PIPE)]}
    res = run_pipeline(req, term, on_start=pids.extend,
                       should_stop=lambda: time.monotonic() - start > 0.05)
    assert time.monotonic() - start < 4   # SIGTERM at once, not SIGKILL after 2 s
    assert res["stopped"] is True
    # The stages are signalled one after the other: on a loaded machine `cat` may see the
    # EOF of the killed `sleep` and end by itself (0) before its own SIGTERM comes.
    assert res["status"][0] == 143 and res["status"][1] in (0, 143)
    assert all(gone(pid) for pid in pids)


def test_should_stop_kills_a_child_ignoring_sigterm(term, env, tmp_path, monkeypatch):
    monkeypatch.setattr(process, "KILL_GRACE", 0.2)
    start = time.monotonic()
    req = {"op": "exec", "cwd": str(tmp_path),
           "stages": [stage(["sh", "-c", "trap '' TERM; exec sleep 30"], env)]}
    res = run_pipeline(req, term, should_stop=lambda: time.monotonic() - start > 0.1)
    assert time.monotonic() - start < 1.5
    assert res["status"] == [137] and res["stopped"]


def test_should_stop_false_changes_nothing(term, env, tmp_path):
    req = {"op": "exec", "cwd": str(tmp_path), "stages": [stage(["echo", "hi"], env)]}
    assert run_pipeline(req, term, should_stop=lambda: False) == {"status": [0], "out": "hi\n"}


def test_files_only_pipeline_with_should_stop_is_not_slowed_down(term, env, tmp_path):
    req = {"op": "exec", "cwd": str(tmp_path), "stages": [stage(
        ["true"], env, f1={"kind": "file", "path": "o", "mode": "w", "id": 0},
        f2={"kind": "file", "path": "o", "mode": "w", "id": 0})]}
    start = time.monotonic()
    for _ in range(10):
        assert run_pipeline(req, term, should_stop=lambda: False) == {"status": [0]}
    assert time.monotonic() - start < 5


def test_exception_in_on_start_leaves_no_child(term, env, tmp_path):
    pids = []

    def boom(started):
        pids.extend(started)
        raise KeyboardInterrupt

    req = {"op": "exec", "cwd": str(tmp_path), "stages": [stage(["sleep", "30"], env)]}
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(req, term, on_start=boom)
    assert pids and all(gone(pid) for pid in pids)


def test_closed_terminal_does_not_crash(env, tmp_path):
    term = EchoTerm()
    os.close(term._out_r)  # the reader went away: writes now fail with EPIPE
    try:
        res = run(term, tmp_path, stage(["echo", "still journaled"], env))
        assert res == {"status": [0], "out": "still journaled\n"}
    finally:
        os.close(term._err_r)
        os.close(term.stdout_fd)
        os.close(term.stderr_fd)


def test_without_pidfds(term, env, tmp_path, monkeypatch):
    """Old kernels and some seccomp profiles refuse pidfd_open: exits are then polled for."""
    monkeypatch.setattr(process, "_pidfd_ok", False)
    res = run(term, tmp_path, stage(["yes"], env, f1=PIPE), stage(["head", "-1"], env, f0=PIPE))
    assert res == {"status": [141, 0], "out": "y\n"}
    start = time.monotonic()
    res = run(term, tmp_path, stage(["sh", "-c", "sleep 1 & echo now"], env))
    assert res == {"status": [0], "out": "now\n"} and time.monotonic() - start < 1
    req = {"op": "exec", "cwd": str(tmp_path), "stages": [stage(["sleep", "30"], env)]}
    start = time.monotonic()
    res = run_pipeline(req, term, should_stop=lambda: True)
    assert res["status"] == [143] and time.monotonic() - start < 4


def test_term_target_can_name_the_stream(term, env, tmp_path):
    res = run(term, tmp_path, stage(["sh", "-c", "echo a; echo b >&3"], env,
                                    f1={"kind": "term", "fd": 2}, f3={"kind": "term", "fd": 2}))
    assert res == {"status": [0], "err": "a\nb\n"}


def test_interrupt_while_running_leaves_no_child(term, env, tmp_path):
    pids = []

    def interrupt():
        raise KeyboardInterrupt  # what Ctrl-C does to the thread waiting in the loop

    req = {"op": "exec", "cwd": str(tmp_path), "stages": [stage(["sleep", "30"], env)]}
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(req, term, on_start=pids.extend, should_stop=interrupt)
    assert pids and all(gone(pid) for pid in pids)
