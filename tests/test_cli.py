"""The `fm` command line: usage errors, check, help, ps/log/rm/attach output, internal errors,
start-up imports. Jobs run with the fake machine (tests/runner/fake_machine.py) until the real
one is wired in; scripts that never reach the machine run through `python -m flowmetal`."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowmetal import cli

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import fake_machine  # noqa: E402
from runner.helpers import ROOT, fakefm, fakefm_popen, home, only_job, records, work  # noqa: E402,F401


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(sys.modules, "flowmetal.machine", fake_machine)


def fm(*args, cwd=None, input=None, env=None, timeout=30) -> subprocess.CompletedProcess:
    """`python -m flowmetal ARGS` in a child process."""
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, env=e,
                          input=input, capture_output=True, text=True, timeout=timeout)


# ---- usage errors: exit 2, one line, no traceback ----

USAGE_ERRORS = [
    ["--bogus"], ["-x"], ["-c"], ["--"], ["ps", "--bogus"], ["ps", "extra"], ["log"],
    ["log", "nomatch"], ["log", "x", "--json", "--output"], ["run"], ["run", "-d", "x.fm"],
    ["run", "--name"], ["nonexistent.fm"], ["/"], ["resume"], ["resume", "nomatch"], ["rm"],
    ["rm", "nomatch"], ["attach", "nomatch"], ["help", "nope"], ["daemon"], ["daemon", "bogus"],
    ["check"], ["send", "j", "e"], ["cancel", "j"], ["kill", "j"], ["complete", "t"],
    ["completions", "tcsh"], ["prune", "--older-than", "soon"], ["prune", "extra"],
]


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=" ".join)
def test_usage_errors_are_one_line_and_exit_2(argv, home, capsys):
    assert cli.run_cli(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("fm: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and "usage:" not in err


def test_usage_errors_in_a_real_process(home, tmp_path):
    for argv in (["--bogus"], ["ps", "--bogus"], ["nonexistent.fm"], ["log", "zzz"]):
        p = fm(*argv, cwd=tmp_path)
        assert p.returncode == 2, (argv, p.stderr)
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("fm: ") and p.stdout == ""


def test_messages(home, capsys):
    cli.run_cli(["log", "xyz"])
    assert capsys.readouterr().err == "fm: no job matches `xyz`\n"
    cli.run_cli(["run", "-d", "x.fm"])
    assert capsys.readouterr().err == "fm: x.fm: No such file or directory\n"
    cli.run_cli(["ps", "--bogus"])
    assert capsys.readouterr().err == "fm: ps: unrecognized arguments: --bogus (see `fm help ps`)\n"
    cli.run_cli(["nonexistent.fm"])
    assert capsys.readouterr().err == "fm: nonexistent.fm: No such file or directory\n"


def test_no_arguments_on_a_tty(home):
    import pty
    master, slave = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "flowmetal"], stdin=slave, capture_output=True,
                           text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=30)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 2
    assert p.stderr == "fm: the interactive shell is not built yet\n"


# ---- check ----

def test_check_ok_is_silent(tmp_path):
    (tmp_path / "a.fm").write_text("echo hi\nfor x in a b; do echo $x; done\n")
    p = fm("check", "a.fm", cwd=tmp_path)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_check_reports_every_bad_file(tmp_path, capsys):
    os.chdir(tmp_path)
    (tmp_path / "ok.fm").write_text("echo ok\n")
    (tmp_path / "bad.fm").write_text("echo ok\necho )\n")
    assert cli.run_cli(["check", "ok.fm", "bad.fm", "missing.fm"]) == 2
    err = capsys.readouterr().err
    assert "fm: bad.fm:2:6: error:" in err
    assert "    2 | echo )\n      |      ^" in err
    assert "fm: missing.fm: No such file or directory" in err
    assert "Traceback" not in err


def test_a_syntax_error_runs_nothing_and_creates_no_job(home, tmp_path):
    (tmp_path / "bad.fm").write_text("echo printed\nif true; then\n")
    p = fm("bad.fm", cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    assert "bad.fm:" in p.stderr and "error" in p.stderr and "Traceback" not in p.stderr
    assert not (home / "jobs").exists() or not list((home / "jobs").iterdir())
    p = fm("-c", "echo )", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("fm: -c:1:6: error:")


# ---- help ----

def test_version(capsys):
    assert cli.run_cli(["--version"]) == 0
    assert re.fullmatch(r"fm \d+\.\d+\.\d+\n", capsys.readouterr().out)


def test_every_command_is_documented(capsys):
    assert cli.run_cli(["help"]) == 0
    overview = capsys.readouterr().out
    for name, (fn, _) in cli.COMMANDS.items():
        assert fn.__doc__ and fn.__doc__.strip(), name
        summary = fn.__doc__.strip().split("\n")[0]
        assert summary.endswith(".") and f"{name}  " in overview and summary in overview
        assert cli.run_cli(["help", name]) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: fm {name}") and summary in text
    docs = (ROOT / "docs" / "cli.md").read_text()
    for name in cli.COMMANDS:
        assert f"fm {name}" in docs, f"docs/cli.md does not document `fm {name}`"


def test_help_flag_of_a_command(tmp_path):
    p = fm("ps", "--help", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("usage: fm ps")
    p = fm("--help", cwd=tmp_path)
    assert p.returncode == 0 and "fm -c 'SCRIPT'" in p.stdout


# ---- running, ps, log, rm (fake machine) ----

def test_run_and_ps(fake, home, work, capfd, monkeypatch):
    monkeypatch.chdir(work)
    assert cli.run_cli(["count.fm", "2"]) == 0
    assert cli.run_cli(["run", "--name", "Nightly Build", "count.fm", "1", "0", "fail"]) == 3
    assert cli.run_cli(["-c", "echo hi", "1"]) == 0
    out, err = capfd.readouterr()
    assert out == "step 1\nstep 2\nbye\n" "step 1\nbye\n" "step 1\nbye\n"
    assert "`thing` exited with status 3" in err
    assert cli.run_cli(["ps"]) == 0
    out = capfd.readouterr().out
    assert re.fullmatch(r"ID +NAME +STATE +SINCE \([+-]\d{4}\) +STEPS +WAITING ON",
                        out.splitlines()[0])
    assert len(out.splitlines()) == 1  # all finished
    # filters: a finished state lists finished jobs without -a; names are globs
    assert cli.run_cli(["ps", "--json", "--state", "failed"]) == 0
    assert [json.loads(l)["name"] for l in capfd.readouterr().out.splitlines()] == \
        ["Nightly Build"]
    assert cli.run_cli(["ps", "--json", "-a", "--state", "done,failed", "--name", "c*"]) == 0
    assert [json.loads(l)["name"] for l in capfd.readouterr().out.splitlines()] == ["count", "c"]
    assert cli.run_cli(["ps", "--state", "asleep"]) == 2
    assert "ps --state: no state asleep" in capfd.readouterr().err
    assert cli.run_cli(["ps", "-a", "--json"]) == 0
    rows = [json.loads(l) for l in capfd.readouterr().out.splitlines()]
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"count", "Nightly Build", "c"}
    assert by_name["count"]["state"] == "done" and by_name["count"]["steps"] == 3
    assert by_name["Nightly Build"]["state"] == "failed" and by_name["Nightly Build"]["status"] == 3
    assert by_name["Nightly Build"]["id"].startswith("nightly-build-")
    assert by_name["c"]["id"].startswith("c-")
    for r in rows:
        assert {"id", "name", "state", "since", "waiting_on", "steps"} <= set(r)
        assert r["waiting_on"] is None and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", r["since"])
    c_job = by_name["c"]["id"]
    first = records(home / "jobs" / c_job / "journal.jsonl")[0]
    assert first["argv"] == ["fm", "1"] and first["filename"] == "-c" and first["source"] == "echo hi"
    assert cli.run_cli(["ps", "-a"]) == 0
    human = capfd.readouterr().out
    assert "failed (3)" in human and c_job in human


def test_log_views(fake, home, work, capfd, monkeypatch):
    monkeypatch.chdir(work)
    cli.run_cli(["count.fm", "2", "0", "fail"])
    capfd.readouterr()
    job_id, path = only_job(home)
    assert cli.run_cli(["log", job_id[:7], "--json"]) == 0
    # as stored, but for the values of secret-named variables (this process's environment)
    from flowmetal.runner.config import Config
    from flowmetal.runner.history import Redactor
    redact = Redactor(Config().journal.redact).record
    assert capfd.readouterr().out == "".join(
        json.dumps(redact(json.loads(line)), separators=(",", ":")) + "\n"
        for line in path.read_text().splitlines())
    assert cli.run_cli(["log", job_id, "--no-output"]) == 0
    lines = capfd.readouterr().out.splitlines()
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3}\s+job\.started  count\.fm 2 0 fail", lines[0])
    assert "exec  sh -c " in lines[2] and lines[2].endswith("-> 0 stdout 7 chars")
    assert re.search(r"\s3  write  stdout 4 bytes$", lines[4])
    assert cli.run_cli(["log", job_id]) == 0        # each step's output under it
    shown = capfd.readouterr().out.splitlines()
    assert shown[2:4] == [lines[2], " " * 23 + "out| step 1"]
    assert shown[-3:] == [lines[-2], " " * 23 + "out| bye", lines[-1]]
    assert re.search(r"\s3  job\.failed  status 3: `thing` exited with status 3$", lines[-1])
    assert cli.run_cli(["log", job_id, "--output"]) == 0
    out, err = capfd.readouterr()
    assert out == "step 1\nstep 2\nbye\n"
    assert err.startswith("fm: count.fm:1:1: error: `thing` exited with status 3\n    1 | echo fake")


def test_log_shows_an_interrupted_effect(fake, home, work, capsys):
    fakefm("count.fm", 2, cwd=work, env={"FM_CRASH_AT": "4"})
    job_id, _ = only_job(home)
    assert cli.run_cli(["log", job_id]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "exec  sh -c" in last and last.endswith("-> (interrupted)")
    assert cli.run_cli(["ps", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["state"] == "orphaned" and row["id"] == job_id


def test_log_follow_and_attach_end_with_the_job(home, work):
    proc = fakefm_popen("count.fm", 3, 0.3, cwd=work)
    deadline = time.time() + 20
    def ids():     # a job directory is made under a dot-name, then renamed into place
        jobs = home / "jobs"
        return [p.name for p in jobs.iterdir() if not p.name.startswith(".")] \
            if jobs.exists() else []
    while not ids():
        assert time.time() < deadline
        time.sleep(0.01)
    job_id = ids()[0]
    ps = fakefm("ps", "--json", cwd=work)
    assert json.loads(ps.stdout)["state"] == "running"
    attach = fakefm_popen("attach", job_id, cwd=work)
    follow = fakefm("log", "-f", job_id, cwd=work)
    assert follow.returncode == 0
    assert follow.stdout.splitlines()[-1].endswith("job.finished  status 0")
    out, err = attach.communicate(timeout=20)
    assert (attach.returncode, out) == (0, "step 1\nstep 2\nstep 3\nbye\n"), err
    proc.communicate(timeout=20)


def test_rm(fake, home, work, capsys, monkeypatch):
    monkeypatch.chdir(work)
    cli.run_cli(["count.fm", "1"])
    done, _ = only_job(home)
    fakefm("count.fm", 2, cwd=work, env={"FM_CRASH_AT": "3"})
    orphan = next(d.name for d in (home / "jobs").iterdir() if d.name != done)
    capsys.readouterr()
    assert cli.run_cli(["rm", done, orphan]) == 1
    assert capsys.readouterr().err == (f"fm: job {orphan} has not finished (orphaned); "
                                       f"`fm resume {orphan}` continues it\n")
    assert (home / "jobs" / orphan).exists() and (home / "jobs" / done).exists()
    assert cli.run_cli(["rm", "nomatch", done]) == 2  # resolved first: nothing deleted
    assert (home / "jobs" / done).exists()
    assert cli.run_cli(["rm", done]) == 0
    assert not (home / "jobs" / done).exists()


def test_stdin_script(home, work):
    p = fakefm(cwd=work, input="echo from stdin\n")
    assert p.returncode == 0, p.stderr
    job_id, path = only_job(home)
    first = records(path)[0]
    assert job_id.startswith("stdin-") and first["source"] == "echo from stdin\n"
    assert first["argv"] == ["fm"] and first["filename"] == "stdin"


def test_config_errors_stop_a_run(fake, home, work, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(work)
    bad = tmp_path / "bad.toml"
    bad.write_text("[journal]\nfsync = 1\n")
    monkeypatch.setenv("FM_CONFIG", str(bad))
    assert cli.run_cli(["count.fm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fm: {bad}: bad value for `journal.fsync`") and err.count("\n") == 1


# ---- internal errors ----

def test_an_internal_error_is_one_line_with_a_saved_traceback(home, monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("boom")
    monkeypatch.setitem(cli.COMMANDS, "ps", (boom, ()))
    assert cli.run_cli(["ps"]) == cli.INTERNAL_ERROR_STATUS
    err = capsys.readouterr().err
    m = re.fullmatch(r"fm: internal error: boom \(please report; traceback saved to (\S+)\)\n", err)
    assert m, err
    saved = Path(m.group(1))
    assert saved.parent == home and "Traceback" in saved.read_text() and "RuntimeError" in saved.read_text()


def test_an_internal_error_in_a_job_saves_its_traceback_in_the_job(fake, home, work, monkeypatch,
                                                                    capfd):
    monkeypatch.chdir(work)

    def broken(self, res=None):
        raise ValueError("machine bug")
    monkeypatch.setattr(fake_machine.Machine, "start", broken)
    assert cli.run_cli(["count.fm"]) == cli.INTERNAL_ERROR_STATUS
    err = capfd.readouterr().err
    job_id, _ = only_job(home)
    assert f"/jobs/{job_id}/internal-error-" in err and err.count("\n") == 1


# ---- start-up ----

def test_fm_c_true_imports_no_heavy_modules(home, tmp_path):
    if (ROOT / "flowmetal" / "machine" / "READY").exists():
        argv = [sys.executable, "-X", "importtime", "-m", "flowmetal", "-c", "true"]
    else:
        argv = [sys.executable, "-X", "importtime", str(ROOT / "tests" / "runner" / "fakefm.py"),
                "-c", "true", "0"]
    p = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}
    for heavy in ("prompt_toolkit", "pygments", "requests", "argparse", "flowmetal.shell"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in imported), heavy
