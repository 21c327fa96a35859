"""The daemon's HTTP server: callbacks, events and the control API (docs/api.yaml).

    ANY  /callbacks/<token>              deliver a callback (no auth: the token is the secret)
    POST /jobs/<id>/events/<name>        queue an event for `await --event NAME`     (bearer)
    GET  /jobs                           the jobs, as `fm ps --json -a`               (bearer)
    POST /jobs                           start a script: {source, filename, argv, env, cwd, name}
    GET  /jobs/<id>                      one job, as `fm ps --json`                   (bearer)
    GET  /jobs/<id>/log                  its records, JSON lines; `?follow=1` streams (bearer)
    POST /jobs/<id>/cancel               cancel it                                    (bearer)
    POST /jobs/<id>/resume               run it now if no process holds it            (bearer)
    POST /jobs/<id>/watch                go on with it when its foreground fm goes    (bearer)

A delivery is durable before the 2xx is sent: in the intake log (intake.py), which moves it
to the job's inbox. Every error is a status and a
JSON body `{"error": "one line"}`. Bodies are limited (`[daemon] max_body`, 413), slow clients
time out (`CLIENT_TIMEOUT`), and at most MAX_CLIENTS connections are served at once (503).
"""
from __future__ import annotations

import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ..errors import FlowmetalError, JobNotFoundError, SourceError
from ..journal import TERMINAL_KINDS
from ..journal.jobstore import EVENT_RE, JOB_ID_RE, TOKEN_RE
from .intake import IntakeError

CLIENT_TIMEOUT = 10.0
"""Seconds a client may take to send each part of its request before it is dropped."""

MAX_CLIENTS = 256
"""Connections served at once; more get 503 at once (each holds a thread)."""

CALLBACK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_JOB = r"(?P<job>[^/]+)"
ROUTES = [
    (re.compile(r"/callbacks/(?P<token>[^/]+)\Z"), CALLBACK_METHODS, "callback", False),
    (re.compile(r"/jobs\Z"), ("GET",), "list_jobs", True),
    (re.compile(r"/jobs\Z"), ("POST",), "start_job", True),
    (re.compile(rf"/jobs/{_JOB}\Z"), ("GET",), "get_job", True),
    (re.compile(rf"/jobs/{_JOB}/log\Z"), ("GET",), "get_log", True),
    (re.compile(rf"/jobs/{_JOB}/events/(?P<name>[^/]+)\Z"), ("POST",), "send_event", True),
    (re.compile(rf"/jobs/{_JOB}/cancel\Z"), ("POST",), "cancel_job", True),
    (re.compile(rf"/jobs/{_JOB}/resume\Z"), ("POST",), "resume_job", True),
    (re.compile(rf"/jobs/{_JOB}/watch\Z"), ("POST",), "watch_job", True),
]
"""(path pattern, method or methods, Handler method, needs the bearer token)."""


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Server(ThreadingHTTPServer):
    """A threading HTTP server bound to the daemon (`app`: store, token, supervisor, limits)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app):
        self.app = app
        self.clients = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        if not self.clients.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.clients.release()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fm-daemon"
    sys_version = ""
    timeout = CLIENT_TIMEOUT
    disable_nagle_algorithm = True     # headers and body leave at once, no 40 ms delayed ACK

    def log_message(self, fmt, *args):     # to daemon.log, not stderr
        self.server.app.log.info("http %s " + fmt, self.client_address[0], *args)

    def log_request(self, code="-", size="-"):
        """Refused requests only: a delivery is logged as one (App), a read needs no line, and
        a line per request costs as much as the rest of a delivery."""
        if isinstance(code, int) and code >= 400:
            super().log_request(code, size)

    def _route(self):
        try:
            path = urlsplit(self.path).path
            allowed = []
            for pattern, methods, name, auth in ROUTES:
                m = pattern.match(path)
                if m:
                    allowed += methods
                if m and self.command in methods:
                    if auth:
                        self._check_token()
                    getattr(self, name)(**m.groupdict())
                    return
            if allowed:
                raise HttpError(405, f"{self.command[:20]} is not allowed on {path[:200]}",
                                {"Allow": ", ".join(allowed)})
            raise HttpError(404, f"no such endpoint: {path[:200]}")
        except HttpError as e:
            self._json(e.status, {"error": e.message}, e.headers)
        except JobNotFoundError as e:
            self._json(404, {"error": e.message})
        except IntakeError as e:
            self._json(503, {"error": e.message})
        except SourceError as e:
            self._json(400, {"error": f"{e.filename}:{e.line}:{e.col}: {e.message}"})
        except FlowmetalError as e:
            self._json(400, {"error": e.message})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # a bug: the client gets a 500, the daemon keeps serving
            self.server.app.log.exception("internal error serving %s %s", self.command,
                                          self.path)
            self._json(500, {"error": f"internal error: {type(e).__name__}"})

    def __getattr__(self, name: str):
        if name.startswith("do_"):     # every method is routed: unknown ones get 405, not 501
            return self._route
        raise AttributeError(name)

    def send_error(self, code, message=None, explain=None):
        """Errors the base class finds (a malformed request line, headers too long): JSON."""
        self.close_connection = True
        self._json(code, {"error": message or self.responses.get(code, ("error",))[0]})

    # ---- request parts ----

    def _check_token(self):
        want = self.server.app.token
        got = self.headers.get("Authorization", "")
        if not got.startswith("Bearer ") or not hmac.compare_digest(
                got[7:].strip().encode(), want.encode()):
            raise HttpError(401, "this endpoint needs `Authorization: Bearer <token>` "
                                 "(the token is in $FM_HOME/daemon.token)")

    def _body(self) -> bytes:
        limit = self.server.app.max_body
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            raise HttpError(411, "send the body with a Content-Length")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if n < 0:
            raise HttpError(400, "bad Content-Length")
        if n > limit:
            self.close_connection = True
            raise HttpError(413, f"body of {n} bytes is over the limit of {limit}")
        data = self.rfile.read(n) if n else b""
        if len(data) < n:
            self.close_connection = True
            raise HttpError(400, "the body ended early")
        return data

    def _json_body(self) -> dict:
        try:
            data = json.loads(self._body() or b"{}")
        except ValueError:
            raise HttpError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "the body must be a JSON object")
        return data

    def _job(self, job: str) -> str:
        if not JOB_ID_RE.match(job) or not self.server.app.store.exists(job):
            raise HttpError(404, f"no job `{job[:80]}`")
        return job

    def _unfinished(self, job: str) -> None:
        last = self.server.app.store.last(job) or {}
        if last.get("kind") in TERMINAL_KINDS:
            raise HttpError(410, f"job {job} has ended; it takes no more deliveries")

    def _json(self, status: int, obj, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode() + b"\n", "application/json", headers)

    def _send(self, status: int, data: bytes, ctype: str, headers: dict | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            body = b"" if self.command == "HEAD" else data
            if hasattr(self, "_headers_buffer"):    # headers and body in one write, one packet
                self._headers_buffer.append(b"\r\n" + body)
                self.flush_headers()
            else:
                self.end_headers()
                self.wfile.write(body)
        except OSError:
            self.close_connection = True

    # ---- endpoints ----

    def callback(self, token: str):
        app = self.server.app
        bound = app.store.binding(token) if TOKEN_RE.match(token) else None
        if bound is None:
            self._body()
            raise HttpError(404, "no such callback")
        job, method = bound
        if method is not None and self.command != method:      # `callback --method`
            self._body()
            raise HttpError(405, f"this callback answers {method} only", {"Allow": method})
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        data = {"method": self.command, "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": self._body().decode("utf-8", "surrogateescape")}
        self._unfinished(job)
        if not app.deliver(job, token, data):
            raise HttpError(409, "this callback was delivered before; the first delivery wins")
        self._json(200, {"delivered": True, "job": job})

    def send_event(self, job: str, name: str):
        job = self._job(job)
        if not EVENT_RE.match(name):
            raise HttpError(400, "an event name is 1-64 of A-Z a-z 0-9 _ . -")
        body = self._body().decode("utf-8", "surrogateescape")
        self._unfinished(job)
        n = self.server.app.send(job, name, body)
        self._json(202, {"queued": True, "job": job, "event": name, "n": n})

    def list_jobs(self):
        self._json(200, {"jobs": [j.as_json() for j in self.server.app.jobs()]})

    def get_job(self, job: str):
        self._json(200, self.server.app.job(self._job(job)))

    def get_log(self, job: str):
        job = self._job(job)
        follow = parse_qs(urlsplit(self.path).query).get("follow", ["0"])[-1] in ("1", "true")
        store = self.server.app.store
        records = store.follow(job) if follow else store.records(job)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for rec in records:
                line = json.dumps(rec, separators=(",", ":")).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def start_job(self):
        spec = self._json_body()
        job = self.server.app.start(spec)
        self._json(201, {"id": job})

    def cancel_job(self, job: str):
        self._json(202, self.server.app.cancel(self._job(job)))

    def resume_job(self, job: str):
        self._json(202, self.server.app.resume(self._job(job)))

    def watch_job(self, job: str):
        self._json(202, self.server.app.watch(self._job(job)))
