"""Secrets in history: `fm log` and `fm log --json` show the values of variables named like
secrets (`[journal] redact`) as ***, in job.started's env, exec requests' env / env+ and
snapshots' variables; the journal itself keeps them (resume needs them)."""
from __future__ import annotations

import json

from flowmetal.runner.config import Config
from flowmetal.runner.history import REDACTED, Redactor

from .helpers import journal_of, real_fm

DEFAULT = Redactor(Config().journal.redact)


def test_names_match_the_default_patterns_in_any_case():
    for name in ("GITHUB_TOKEN", "token", "aws_secret_access_key", "DB_PASSWORD", "ApiKey",
                 "GOOGLE_APPLICATION_CREDENTIALS", "KEYS"):
        assert DEFAULT.secret(name), name
    for name in ("PATH", "HOME", "TOKE", "PASS", "USER", "FM_STEP_KEY"):
        assert not DEFAULT.secret(name), name


def test_job_started_env_and_exec_env_are_hidden():
    start = {"seq": 0, "kind": "job.started", "env": {"PATH": "/bin", "MY_TOKEN": "t0p"},
             "argv": ["fm"]}
    shown = DEFAULT.record(start)
    assert shown["env"] == {"PATH": "/bin", "MY_TOKEN": REDACTED}
    assert start["env"]["MY_TOKEN"] == "t0p"        # the record itself is untouched
    req = {"op": "exec", "cwd": "/", "stages": [
        {"argv": ["curl"], "env+": {"API_KEY": "k", "X": "1"}, "env-": ["OLD_SECRET"]},
        {"argv": ["sort"], "env": {"Secret_Sauce": "s", "LANG": "C"}}]}
    shown = DEFAULT.record({"seq": 3, "kind": "effect.started", "step": 1, "req": req})
    assert shown["req"]["stages"][0]["env+"] == {"API_KEY": REDACTED, "X": "1"}
    assert shown["req"]["stages"][0]["env-"] == ["OLD_SECRET"]     # names are not secret
    assert shown["req"]["stages"][1]["env"] == {"Secret_Sauce": REDACTED, "LANG": "C"}
    write = {"seq": 4, "kind": "effect.started", "req": {"op": "write", "data": "x"}}
    assert DEFAULT.record(write) is write


def test_snapshot_variables_are_hidden_in_both_state_layouts():
    scopes = [{"PATH": {"s": "/bin", "x": 1}, "DB_PASSWORD": {"s": "pw", "x": 1},
               "API_KEYS": {"a": ["k1", None, "k3"]}, "SECRETS": {"A": {"a": "1"}},
               "TOKEN": {}}]
    old = {"seq": 1, "kind": "snapshot", "state": {"format": 1, "scopes": scopes},
           "pending": [{"step": 1, "req": {"op": "exec", "stages": [
               {"argv": ["x"], "env+": {"TOKEN": "t"}}]}}]}
    new = {"seq": 1, "kind": "snapshot",
           "state": {"format": 2, "branches": {"0": {"scopes": scopes}}}}
    for rec, got in ((old, lambda r: r["state"]["scopes"]),
                     (new, lambda r: r["state"]["branches"]["0"]["scopes"])):
        scope = got(DEFAULT.record(rec))[0]
        assert scope["PATH"] == {"s": "/bin", "x": 1}
        assert scope["DB_PASSWORD"] == {"s": REDACTED, "x": 1}
        assert scope["API_KEYS"] == {"a": [REDACTED, None, REDACTED]}
        assert scope["SECRETS"] == {"A": {"a": REDACTED}}
        assert scope["TOKEN"] == {}
    assert DEFAULT.record(old)["pending"][0]["req"]["stages"][0]["env+"] == {"TOKEN": REDACTED}
    assert scopes[0]["DB_PASSWORD"]["s"] == "pw"


def test_no_patterns_show_everything():
    rec = {"seq": 0, "kind": "job.started", "env": {"TOKEN": "t"}}
    assert Redactor(()).record(rec) is rec


def test_fm_log_hides_secrets_the_journal_keeps(tmp_path):
    work, home = tmp_path / "w", tmp_path / "h"
    work.mkdir()
    # Values that come from the environment: what the script's text says is not hidden.
    script = ("DEPLOY_PASSWORD=$SRC_TOKEN /bin/sh -c 'test \"$DEPLOY_PASSWORD\" = \"$SRC_TOKEN\"'\n"
              "export AWS_SECRET=$(printf '%s' abc 123); /bin/true\n"
              "echo \"[$GITHUB_TOKEN]\"\n")
    (work / "s.fm").write_text(script)
    env = {"GITHUB_TOKEN": "ghp_zzz", "SRC_TOKEN": "hunter2", "PLAIN": "shown"}
    run = real_fm("s.fm", cwd=work, home=home, env=env)
    assert run.returncode == 0, run.stderr
    job, recs = journal_of(home)
    stored = "\n".join(json.dumps(r) for r in recs)
    for value in ("hunter2", "abc123", "ghp_zzz"):
        assert value in stored                      # resume needs them
    log = real_fm("log", "--json", job, cwd=work, home=home)
    assert log.returncode == 0, log.stderr
    shown = [json.loads(line) for line in log.stdout.splitlines()]
    assert len(shown) == len(recs)
    assert shown[0]["env"]["GITHUB_TOKEN"] == REDACTED and shown[0]["env"]["PLAIN"] == "shown"
    text = log.stdout
    assert "hunter2" not in text and "abc123" not in text
    # what the job printed (`echo`'s write, its result) is output, not a variable: shown
    assert all("ghp_zzz" not in json.dumps(r) for r in shown
               if r["kind"] in ("job.started", "snapshot"))
    assert "ghp_zzz" in text
    plain = real_fm("log", job, cwd=work, home=home)
    assert plain.returncode == 0 and "hunter2" not in plain.stdout and "ghp_zzz" not in plain.stdout
    cfg = tmp_path / "fm.toml"
    cfg.write_text("[journal]\nredact = ['PLAIN']\n")
    custom = real_fm("log", "--json", job, cwd=work, home=home, env={"FM_CONFIG": str(cfg)})
    first = json.loads(custom.stdout.splitlines()[0])
    assert first["env"]["PLAIN"] == REDACTED and first["env"]["GITHUB_TOKEN"] == "ghp_zzz"
