"""An error inside a function (or a sourced file) shows its call chain; a failure under
`retry` or `timeout` points at the command that failed, not at the `retry` line; retry's bad
options are usage errors. Real scripts run by the real `fm`; `fm log --output` shows the same
diagnostic from the journal."""
from __future__ import annotations

from runner.helpers import home, only_job, real_fm, work  # noqa: F401

DEPLOY = """\
deploy() {
  false
}
main() { deploy; }
main
"""


def _fails(work, home, name: str, text: str, status: int) -> list:
    """Run script `name` (written with `text`); it must fail with `status`: its stderr lines."""
    (work / name).write_text(text)
    p = real_fm(name, cwd=work, home=home)
    assert p.returncode == status, p.stderr
    return p.stderr.splitlines()


def test_an_error_in_a_function_shows_the_call_chain(work, home):
    (work / "deploy.fm").write_text(DEPLOY)
    p = real_fm("deploy.fm", cwd=work, home=home)
    assert p.returncode == 1
    assert p.stderr == (
        "fm: deploy.fm:2:3: error: `false` exited with status 1\n"
        "    2 |   false\n"
        "      |   ^~~~~\n"
        "    in deploy (deploy.fm:2), called from main (deploy.fm:4), called from deploy.fm:5\n")
    job, _ = only_job(home)
    log = real_fm("log", "--output", job, cwd=work, home=home)
    assert log.stderr == p.stderr


def test_an_error_at_the_top_shows_no_chain(work, home):
    (work / "top.fm").write_text("echo a\nfalse\n")
    p = real_fm("top.fm", cwd=work, home=home)
    assert p.returncode == 1 and " in " not in p.stderr and p.stderr.count("\n") == 3


def test_an_error_in_a_sourced_file(work, home):
    (work / "lib.fm").write_text("helper() {\n  ls /nonexistent-chain-test\n}\nfalse_at_top=1\n")
    assert _fails(work, home, "m.fm", "source lib.fm\nrun() { helper; }\nrun\n", 2)[-4:] == [
        "fm: lib.fm:2:3: error: `ls /nonexistent-chain-test` exited with status 2",
        "    2 |   ls /nonexistent-chain-test",
        "      |   ^~",
        "    in helper (lib.fm:2), called from run (m.fm:2), called from m.fm:3"]
    (work / "lib2.fm").write_text("echo a\nfalse\n")
    (work / "m2.fm").write_text("x=1\nsource lib2.fm\n")
    p = real_fm("m2.fm", cwd=work, home=home)
    assert p.stderr.splitlines()[-1] == "    in source (lib2.fm:2), called from m2.fm:2"


RETRY = """\
deploy_step() {
  echo trying
  sh -c 'exit 7'
}
main() {
  retry -n 3 --delay 0 deploy_step
}
main
"""


def test_retry_points_at_the_failing_command(work, home):
    assert _fails(work, home, "r.fm", RETRY, 7)[-4:] == [
        "fm: r.fm:3:3: error: `retry -n 3 --delay 0 deploy_step` failed after 3 attempts: "
        "`sh -c 'exit 7'` exited with status 7",
        "    3 |   sh -c 'exit 7'",
        "      |   ^~",
        "    in deploy_step (r.fm:3), called from main (r.fm:6), called from r.fm:8"]


def test_retry_of_a_program_points_at_the_retry_line(work, home):
    p = real_fm("-c", "retry -n2 --delay=0 -- sh -c 'exit 3'", cwd=work, home=home)
    assert p.returncode == 3
    assert p.stderr.splitlines()[-3:] == [
        "fm: -c:1:1: error: `retry -n2 --delay=0 -- sh -c 'exit 3'` failed after 2 attempts: "
        "`sh -c exit 3` exited with status 3",
        "    1 | retry -n2 --delay=0 -- sh -c 'exit 3'",
        "      | ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"]


def test_timeout_points_at_the_command_it_stopped(work, home):
    script = "step() {\n  sleep 0.1\n  command sleep 30\n}\ntimeout 1 step\n"
    assert _fails(work, home, "t.fm", script, 124)[-4:] == [
        "fm: t.fm:3:3: error: `timeout 1 step` timed out after 1s",
        "    3 |   command sleep 30",
        "      |   ^~~~~~~~~~~~~~~~",
        "    in step (t.fm:3), called from t.fm:5"]


def test_retry_usage_errors(work, home):
    for script, says in [
            ('retry 2 sh -c "exit 3"', "1:7: error: retry: `2` is not a command: give the "
                                       "attempts as `retry -n 2 CMD`"),
            ("retry -x true", "1:7: error: retry: unknown option `-x`"),
            ("retry --delay", "1:7: error: retry: --delay needs a value"),
            ("retry -n 0 true", "1:1: error: retry: bad value `0` for -n")]:
        p = real_fm("-c", script, cwd=work, home=home)
        assert p.returncode == 2, (script, p.stderr)
        assert p.stderr.startswith(f"fm: -c:{says}"), p.stderr
        assert "command not found" not in p.stderr


def test_fm_check_refuses_retry_misuse(work, home):
    (work / "bad.fm").write_text("echo start\nretry 3 make deploy\n")
    p = real_fm("check", "bad.fm", cwd=work, home=home)
    assert p.returncode == 2
    assert p.stderr.startswith("fm: bad.fm:2:7: error: retry: `3` is not a command: give the "
                               "attempts as `retry -n 3 CMD`")
    (work / "good.fm").write_text("retry -n 2 --delay 0 { echo hi; false; } || echo \"gave up $?\"\n")
    assert real_fm("check", "good.fm", cwd=work, home=home).returncode == 0
    p = real_fm("good.fm", cwd=work, home=home)
    assert p.returncode == 0 and p.stdout == "hi\nhi\ngave up 1\n", p.stderr
