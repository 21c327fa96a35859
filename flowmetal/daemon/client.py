"""The CLI's side of the daemon: `fm daemon`, `fm run -d`, `fm send`, `fm complete`.

Deliveries from the CLI go through the running daemon (POST over HTTP), so event numbers and
the first callback delivery are decided in one place; with no daemon they go straight into the
job's inbox through the store, and the daemon is told to look (started first when the job is
parked), so a parked job wakes at once. Durable before the command returns, either way.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..errors import UsageError
from ..journal.jobstore import EVENT_RE, callback_token
from . import files, main
from .files import DaemonError


def daemon_action(action: str, home: Path, config) -> int:
    if action == "run":
        return main.serve(home, config)
    if action == "start":
        was = files.running(home)
        info = main.start(home)
        what = "already running" if was else "started"
        print(f"fm: daemon {what} (pid {info['pid']}, {info['url']})", file=sys.stderr)
        return 0
    if action == "stop":
        info = main.stop(home)
        print("fm: daemon stopped" if info else "fm: no daemon was running", file=sys.stderr)
        return 0
    info = files.running(home)           # status
    if not info:
        print(f"no daemon runs for {home}")
        return 3
    up = time.time() - float(info.get("started", time.time()))
    print(f"daemon running: pid {info['pid']}, {info['url']}, up {_ago(up)}, "
          f"fm {info.get('version', '?')}")
    return 0


def run_detached(script, home: Path, config, env: dict, cwd: str) -> str:
    """Create the job here (a syntax error is reported before anything exists) and have the
    daemon run it; its id."""
    from ..journal import open_store
    from ..runner.run import create_job
    job_id = create_job(script, env=env, cwd=cwd, config=config, store=open_store(home))
    _poke(home, job_id, start=True)
    return job_id


def send(home: Path, job: str, event: str, data: str) -> int:
    from ..journal import open_store
    if not EVENT_RE.match(event):
        raise UsageError(f"send: bad event name `{event}` (1-64 of A-Z a-z 0-9 _ . -)")
    store = open_store(home)
    job_id = store.find(job)
    answer = _deliver(home, f"/jobs/{job_id}/events/{event}", data, "send",
                      token=files.token(home))
    if answer is not None:
        n = answer["n"]
    else:
        n = store.send(job_id, event, {"data": data})
        _poke(home, job_id, start=store.holder(job_id) is None)
    print(f"fm: event {event} #{n} queued for job {job_id}", file=sys.stderr)
    return 0


def complete(home: Path, target: str, data: str) -> int:
    from ..journal import open_store
    token = callback_token(target)
    if token is None:
        raise UsageError(f"complete: `{target[:80]}` is not a callback URL or token")
    store = open_store(home)
    job_id = store.bound(token)
    if job_id is None or not store.exists(job_id):
        raise UsageError("complete: no such callback")
    via = {"x-fm-via": "fm complete"}
    if _deliver(home, f"/callbacks/{token}", data, "complete", headers=via) is None:
        delivery = {"method": "POST", "query": {}, "headers": via, "body": data}
        if not store.deliver(job_id, token, delivery):
            raise UsageError(f"complete: {FIRST_WINS}")
        _poke(home, job_id, start=store.holder(job_id) is None)
    print(f"fm: callback delivered to job {job_id}", file=sys.stderr)
    return 0


def watch(job_id: str, home: Path | None = None) -> None:
    """Have the daemon (started if none runs) watch a job this process runs, to go on with
    it if this process dies first (Supervisor.watch)."""
    from ..statedir import state_dir
    home = home or state_dir()
    request(main.start(home), "POST", f"/jobs/{job_id}/watch", token=files.token(home))


FIRST_WINS = "this callback was delivered before; the first delivery wins"


def _deliver(home: Path, path: str, data: str, verb: str, *, token: str | None = None,
             headers: dict | None = None) -> dict | None:
    """POST a delivery to the running daemon, which numbers events and keeps the first
    callback for every route; its answer, or None when no daemon runs (the caller writes the
    store itself). A refusal is a one-line UsageError (`send: job … has ended`)."""
    info = files.running(home)
    if info is None:
        return None
    import http.client
    from urllib.parse import urlsplit
    url = urlsplit(info["url"])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = data.encode("utf-8", "surrogateescape")
    try:
        conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        for k, v in {**(headers or {}), "Content-Length": str(len(body))}.items():
            conn.putheader(k, v)
        if token:
            conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders(body)
        resp = conn.getresponse()
        status, raw = resp.status, resp.read()
    except ConnectionRefusedError:
        return None         # it stopped meanwhile: nothing was sent, the store takes it
    except (OSError, http.client.HTTPException) as e:
        raise DaemonError(f"the daemon at {info['url']} did not answer ({e}); the delivery "
                          "may have been taken: look at the job before sending it again") \
            from None
    finally:
        conn.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {}
    if 200 <= status < 300:
        return answer
    why = FIRST_WINS if status == 409 else answer.get("error", f"status {status}")
    if status in (404, 409, 410):
        raise UsageError(f"{verb}: {why}")
    raise DaemonError(f"the daemon answered {status}: {why}")


def _poke(home: Path, job_id: str, *, start: bool) -> None:
    """Tell the daemon to run the job if nobody does (start one when `start`)."""
    info = files.running(home)
    if info is None:
        if not start:
            return
        info = main.start(home)
    request(info, "POST", f"/jobs/{job_id}/resume", token=files.token(home))


def request(info: dict, method: str, path: str, body: bytes | None = None, *,
            token: str | None, timeout: float = 10.0) -> dict:
    """One control-API call to the daemon described by daemon.json; its JSON answer."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(info["url"] + path, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            why = json.loads(e.read()).get("error", e.reason)
        except ValueError:
            why = e.reason
        raise DaemonError(f"the daemon answered {e.code}: {why}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DaemonError(f"cannot reach the daemon at {info['url']}: "
                          f"{getattr(e, 'reason', e)}") from None


def _ago(seconds: float) -> str:
    """`2d3h`, `5h12m`, `4m2s`, `9s`: the two largest units."""
    s = int(seconds)
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return "".join(f"{n}{u}" for n, u in parts[:2])
