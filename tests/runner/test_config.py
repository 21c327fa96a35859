"""The config file: defaults, valid settings, and errors that name the file and the key."""
from __future__ import annotations

import pytest

from flowmetal import records
from flowmetal.errors import ConfigError
from flowmetal.runner import config as cfg
from flowmetal.runner.config import Config, load_config, parse_config


def test_missing_default_file_gives_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("FM_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing"))
    c = load_config()
    assert c == Config()
    assert c.journal.fsync == "always" and c.retry.attempts == 5 and c.daemon.listen == "127.0.0.1:7468"


def test_fm_config_names_the_file(tmp_path, monkeypatch):
    p = tmp_path / "fm.toml"
    p.write_text('[journal]\nfsync = "never"\n')
    monkeypatch.setenv("FM_CONFIG", str(p))
    c = load_config()
    assert c.journal.fsync == "never" and c.path == str(p)


def test_an_explicit_missing_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FM_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        load_config()


def test_every_setting():
    c = parse_config("""
[daemon]
listen = "0.0.0.0:8000"
public_url = "https://fm.example.com/"
[http]
timeout = "1m30s"
[retry]
attempts = 3
delay = 0.5
backoff = 1.5
max_delay = "10m"
[journal]
fsync = "always"
[shell]
prompt = "fm> "
""", "c.toml")
    assert c.daemon.listen == "0.0.0.0:8000"
    assert c.daemon.public_url == "https://fm.example.com"
    assert c.http.timeout == 90.0
    assert (c.retry.attempts, c.retry.delay, c.retry.backoff, c.retry.max_delay) == (3, 0.5, 1.5, 600)
    assert c.journal.fsync == "always" and c.shell.prompt == "fm> "


@pytest.mark.parametrize("text, where", [
    ("[nope]\nx = 1\n", "unknown section `nope`"),
    ("[daemon]\nlisten_on = 'x'\n", "unknown key `daemon.listen_on`"),
    ("daemon = 3\n", "`daemon` must be a table"),
    ("[daemon]\nlisten = 'localhost'\n", "`daemon.listen`"),
    ("[daemon]\nlisten = 'h:99999'\n", "`daemon.listen`"),
    ("[daemon]\npublic_url = 'ftp://x'\n", "`daemon.public_url`"),
    ("[http]\ntimeout = 'soon'\n", "`http.timeout`"),
    ("[http]\ntimeout = 0\n", "`http.timeout`"),
    ("[http]\ntimeout = true\n", "`http.timeout`"),
    ("[retry]\nattempts = 0\n", "`retry.attempts`"),
    ("[retry]\nattempts = 2.5\n", "`retry.attempts`"),
    ("[retry]\nbackoff = 0.5\n", "`retry.backoff`"),
    ("[retry]\ndelay = -1\n", "`retry.delay`"),
    ("[retry]\nmax_delay = '5 minutes'\n", "`retry.max_delay`"),
    ("[journal]\nfsync = true\n", "`journal.fsync`"),
    ("[journal]\nfsync = 'sometimes'\n", "`journal.fsync`"),
    ("[journal]\nredact = '*TOKEN*'\n", "`journal.redact`"),
    ("[journal]\nredact = ['*TOKEN*', 3]\n", "`journal.redact`"),
    ("[journal]\nredact = ['']\n", "`journal.redact`"),
    ("[journal]\nredact_more = []\n", "unknown key `journal.redact_more`"),
    ("[shell]\nprompt = 3\n", "`shell.prompt`"),
    ("[daemon\n", "invalid TOML"),
])
def test_errors_name_file_and_key(text, where):
    with pytest.raises(ConfigError) as e:
        parse_config(text, "/etc/fm.toml")
    assert e.value.message.startswith("/etc/fm.toml: ")
    assert where in e.value.message
    assert "\n" not in e.value.message
    assert e.value.status == 2


def test_redact_patterns_default_and_set():
    assert Config().journal.redact == ("*TOKEN*", "*SECRET*", "*PASSWORD*", "*KEY*",
                                       "*CREDENTIAL*")
    c = parse_config("[journal]\nredact = ['DB_*', '*PASS*']\n", "c.toml")
    assert c.journal.redact == ("DB_*", "*PASS*")
    assert parse_config("[journal]\nredact = []\n", "c.toml").journal.redact == ()


def test_not_utf8():
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_config(b"\xff\xfe", "c.toml")


@pytest.mark.parametrize("text, seconds", [
    ("250ms", 0.25), ("30s", 30), ("5m", 300), ("2h", 7200), ("3d", 259200), ("1w", 604800),
    ("1h30m", 5400), ("10", 10), ("1.5", 1.5),
])
def test_durations(text, seconds):
    assert cfg.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5 m", "5x", "-3s", "1h 30m", "nan", "inf", "s5"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        cfg.parse_duration(text)


def test_records_are_frozen_and_documented():
    for cls in (cfg.Config, cfg.DaemonConfig, cfg.HttpConfig, cfg.RetryConfig, cfg.JournalConfig,
                cfg.ShellConfig):
        assert cls.__doc__
        with pytest.raises(AttributeError):
            setattr(cls(), records.fields(cls)[0], None)
    # Every field has a docstring right below it in the source.
    import inspect
    src = inspect.getsource(cfg)
    for cls in (cfg.DaemonConfig, cfg.HttpConfig, cfg.RetryConfig, cfg.JournalConfig, cfg.ShellConfig,
                cfg.Config):
        for name in records.fields(cls):
            assert f'    {name}: ' in src
            after = src.split(f'    {name}: ', 1)[1].split("\n", 2)[1]
            assert after.strip().startswith('"""'), (cls.__name__, name)


def test_fm_config_shows_each_setting_and_where_it_came_from(tmp_path):
    import json
    import os
    import subprocess
    import sys
    path = tmp_path / "c.toml"
    path.write_text('[daemon]\nlisten = "127.0.0.1:9999"\n[retry]\ndelay = "1m30s"\n')
    env = dict(os.environ, FM_CONFIG=str(path), FM_HOME=str(tmp_path / "home"))

    def fm(*args):
        return subprocess.run([sys.executable, "-m", "flowmetal", "config", *args], env=env,
                              capture_output=True, text=True, timeout=60)
    lines = fm().stdout.splitlines()
    assert lines[0] == f"# {path}"
    assert 'daemon.listen = "127.0.0.1:9999"' in lines and "retry.delay = 90.0" in lines
    assert "retry.attempts = 5    # default" in lines and "shell.prompt = (none)    # default" in lines
    rows = {r["name"]: r for r in map(json.loads, fm("--json").stdout.splitlines())}
    assert rows["daemon.listen"] == {"name": "daemon.listen", "value": "127.0.0.1:9999",
                                     "from": str(path)}
    assert rows["journal.fsync"]["from"] == "default" and len(rows) == len(cfg.settings(Config()))
    path.write_text("[daemon]\nlisten = 5\n")
    bad = fm()
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == (f"fm: {path}: bad value for `daemon.listen`: expected "
                                  '"HOST:PORT", got 5')
