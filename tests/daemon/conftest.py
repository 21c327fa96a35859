"""A real daemon process on 127.0.0.1 (an ephemeral port) over a private state directory."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fm(*args, env, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowmetal", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)


class Daemon:
    def __init__(self, home: Path, env: dict):
        self.home = home
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Daemon":
        self.proc = subprocess.Popen([sys.executable, "-m", "flowmetal", "daemon", "run"],
                                     env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            info = self.info()
            if info and info.get("pid") == self.proc.pid:
                return self
            assert self.proc.poll() is None, self.proc.communicate()
            time.sleep(0.02)
        raise AssertionError("the daemon did not start")

    def info(self) -> dict | None:
        try:
            return json.loads((self.home / "daemon.json").read_text())
        except (OSError, ValueError):
            return None

    @property
    def url(self) -> str:
        return self.info()["url"]

    @property
    def token(self) -> str:
        return (self.home / "daemon.token").read_text().strip()

    def request(self, method: str, path: str, body: bytes | None = None, *, auth=True,
                headers=None, timeout=30) -> tuple[int, dict | str]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(60)
        return self.proc.returncode if self.proc else 0


@pytest.fixture
def env(tmp_path) -> dict:
    home = tmp_path / "home"
    cfg = tmp_path / "config.toml"
    cfg.write_text('[daemon]\nlisten = "127.0.0.1:0"\n')
    e = dict(os.environ, FM_HOME=str(home), FM_CONFIG=str(cfg), PYTHONPATH=str(ROOT))
    e.pop("FM_CRASH_AT", None)
    e.pop("FM_HAND_OVER", None)
    return e


@pytest.fixture(autouse=True)
def no_daemon_left(request):
    """After each test: no daemon of its state directory may be left running (a foreground
    job that awaits starts one; a test that forgets to stop it fails here)."""
    env = request.getfixturevalue("env") if "env" in request.fixturenames else None
    yield
    if env is None:
        return
    home = Path(env["FM_HOME"])
    from flowmetal.daemon import files
    info = files.running(home) if home.exists() else None
    if info:
        os.kill(info["pid"], signal.SIGTERM)
        pytest.fail(f"a daemon was left running for {home}", pytrace=False)


@pytest.fixture
def daemon(env):
    d = Daemon(Path(env["FM_HOME"]), env).start()
    yield d
    d.stop()
    if d.proc.poll() is None:
        d.kill()


def wait_for(pred, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def held_job(env, tmp_path):
    """A job held by a foreground `fm` process sleeping for the test (no daemon runs it, so a
    daemon killed and restarted meanwhile leaves it alone); its id."""
    script = tmp_path / "held.fm"
    script.write_text("sleep 600\n")
    proc = subprocess.Popen([sys.executable, "-m", "flowmetal", str(script)],
                            env=dict(env, FM_HAND_OVER="0"),   # no daemon watches it
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        store = wait_for(lambda: _store_of(env), what="the state directory")
        job = wait_for(lambda: [j for j in store.ids() if j.startswith("held-")],
                       what="the job")[0]
        wait_for(lambda: store.holder(job), what="its holder")
        yield job
    finally:
        proc.kill()
        proc.wait(30)


def _store_of(env):
    from flowmetal.journal.jsonl import JsonlStore
    home = Path(env["FM_HOME"])
    return JsonlStore(home) if (home / "jobs").is_dir() else None


def post(url: str, path: str, body: bytes, token: str | None = None,
         conn: http.client.HTTPConnection | None = None) -> tuple[int, dict]:
    """One POST over a (kept-alive) connection; (status, JSON answer)."""
    if conn is None:
        u = urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")
