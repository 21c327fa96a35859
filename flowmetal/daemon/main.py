"""The daemon process (`fm daemon run`), and starting, stopping and finding it from the CLI.

`serve(home, config)` takes the daemon's lease on the state directory, writes daemon.json,
starts the HTTP server in a thread, files every unfinished job (orphans are run, parked jobs
wait for their time) and runs the supervisor until SIGTERM or SIGINT. `ensure(...)` is what
the CLI calls when it needs a daemon: the running one, or a new one started in the background.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import files
from .files import DaemonError

IDLE_POLL = None
"""socketserver's poll interval (default 0.5 s): none, the HTTP thread never wakes by itself."""

START_WAIT = 10.0
"""Seconds `fm daemon start` waits for a new daemon to answer."""


class App:
    """What the HTTP handlers call: the store, the token, the supervisor, the limits."""

    def __init__(self, home: Path, store, config, log, supervisor):
        self.home = home
        self.store = store
        self.config = config
        self.log = log
        self.supervisor = supervisor
        self.token = files.token(home, create=True)
        self.max_body = config.daemon.max_body

    def deliver(self, job_id: str, token: str, data: dict) -> bool:
        """A callback: True once the intake log holds it durably (its writer then puts it in
        the inbox and pokes the job); False when the token was delivered before."""
        return self.intake.callback(job_id, token, data)

    def send(self, job_id: str, name: str, data: str) -> int:
        """An event: its number once the intake log holds it durably (the intake logs it)."""
        return self.intake.event(job_id, name, {"data": data})

    def _poke(self, job_id: str) -> None:
        """A delivery is in the job's inbox: if it is parked and awaits it, run it so it can
        take it. The intake calls this."""
        self.supervisor.poke(job_id)

    def jobs(self):
        from ..runner.jobs import list_jobs, mark_queued
        with self.supervisor.cond:
            queued = set(self.supervisor.queue)
        return mark_queued(list_jobs(self.store, True), queued)

    def job(self, job_id: str) -> dict:
        from ..runner.jobs import job_info
        return job_info(self.store, job_id).as_json()

    def start(self, spec: dict) -> str:
        from ..runner.run import create_job, script_from_request
        script, env, cwd = script_from_request(spec)
        job_id = create_job(script, env=env, cwd=cwd, config=self.config, store=self.store)
        self.log.info("job %s: started from the control API", job_id)
        self.supervisor.want(job_id)
        return job_id

    def cancel(self, job_id: str) -> dict:
        pid = self.store.holder(job_id)
        if pid is not None and pid > 0:
            os.kill(pid, signal.SIGUSR1)
            return {"job": job_id, "cancelling": True, "pid": pid}
        self.supervisor.want(job_id, "cancel")
        return {"job": job_id, "cancelling": True, "pid": None}

    def watch(self, job_id: str) -> dict:
        self.supervisor.watch(job_id)
        return {"job": job_id, "watching": True}

    def resume(self, job_id: str) -> dict:
        pid = self.store.holder(job_id)
        if pid is None:
            self.supervisor.want(job_id)
        return {"job": job_id, "running": pid is not None, "pid": pid}


def serve(home: Path, config) -> int:
    """Run the daemon in this process until SIGTERM/SIGINT; 0 after a clean stop."""
    from ..journal import open_store
    from .intake import Intake
    from .server import Server
    from .supervisor import Supervisor, runner_env
    lease = files.take_lease(home)
    log = files.open_log(home)
    try:
        store = open_store(home)
        sup = Supervisor(store, log, max_runners=config.daemon.max_runners, env=runner_env(),
                         on_queue=lambda ids: files.write_queue(home, ids))
        app = App(home, store, config, log, sup)
        app.intake = intake = Intake(home, store, log, app._poke)
        recovered = intake.recover()       # before anything is answered
        intake.start()
        host, port = _split_listen(config.daemon.listen)
        try:
            server = Server((host, port), app)
        except OSError as e:
            raise DaemonError(f"cannot listen on {config.daemon.listen}: {e.strerror}") \
                from None
        listen = f"{host}:{server.server_address[1]}"
        files.write_info(home, listen, f"http://{listen}")
        log.info("daemon %d started for %s, listening on %s", os.getpid(), home, listen)
        # No poll: the HTTP thread sleeps until a client comes (stop wakes it, below).
        threading.Thread(target=server.serve_forever, args=(IDLE_POLL,), name="http",
                         daemon=True).start()
        # Filing every job takes a while with thousands parked: the loop runs meanwhile.
        threading.Thread(target=_file_jobs, args=(store, sup, log, recovered, app._poke),
                         name="file-jobs", daemon=True).start()
        stop = _on_stop(sup)
        sup.loop()
        log.info("daemon stopping (%s)", stop.get("why", "stopped"))
        _stop_serving(server)
        intake.stop()
        sup.stop()
        log.info("daemon stopped")
        return 0
    finally:
        files.clear_info(home)
        lease.release()


def _file_jobs(store, sup, log, recovered, poke) -> None:
    """At start: every job is filed by the supervisor from its last record (a finished one
    costs that read): run now (orphaned, overdue, or with a delivery it awaits), at its
    wake-up time, or when a delivery comes. Then the jobs whose deliveries the intake
    recovered are poked."""
    started = time.monotonic()
    ids = store.ids()
    for job_id in ids:
        if sup.stopping:
            return
        sup.settle(job_id)
    for job_id in sorted(recovered):
        poke(job_id)
    log.info("filed %d jobs in %.1fs", len(ids), time.monotonic() - started)


def _stop_serving(server) -> None:
    """Stop the HTTP thread, which waits in select() without a timeout: ask it to stop, then
    wake it with a connection of our own (it is dropped at once)."""
    import socket
    stopper = threading.Thread(target=server.shutdown, daemon=True)
    stopper.start()
    try:
        socket.create_connection(server.server_address[:2], timeout=1).close()
    except OSError:
        pass
    stopper.join(10)
    server.server_close()


def _on_stop(sup) -> dict:
    why: dict = {}

    def handler(signum, frame):
        why["why"] = signal.Signals(signum).name
        with sup.cond:
            sup.stopping = True
            sup.cond.notify_all()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)
    return why


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


# ---- the CLI's side ----

def start(home: Path) -> dict:
    """Start a daemon in the background unless one runs; its daemon.json."""
    info = files.running(home)
    if info:
        return info
    cmd = [sys.executable, "-m", "flowmetal", "daemon", "run"]
    # Not a step of any job: a daemon started by a job's program (a nested fm) must not carry
    # its step key, or that job's watchdog would take it for a survivor of the step.
    env = {k: v for k, v in os.environ.items() if k != "FM_STEP_KEY"}
    env["FM_HOME"] = str(home)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, start_new_session=True,
                            close_fds=True)
    end = time.monotonic() + START_WAIT
    while time.monotonic() < end:
        info = files.running(home)
        if info and info.get("pid") == proc.pid:
            proc.stderr.close()
            return info
        if proc.poll() is not None:
            err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
            info = files.running(home)
            if info:            # another start won the race: that one is the daemon
                return info
            raise DaemonError(err[-1].removeprefix("fm: ") if err else
                              f"the daemon exited with status {proc.returncode}")
        time.sleep(0.02)
    raise DaemonError(f"the daemon did not start within {START_WAIT:g}s (see daemon.log)")


def stop(home: Path, wait: float = 60.0) -> dict | None:
    """Stop the running daemon (SIGTERM; it lets runners reach a safe point); its former
    daemon.json, or None when none was running."""
    info = files.running(home)
    if not info:
        return None
    from ..journal.lock import JobLock
    pid = JobLock.holder(home, files.LOCK)
    if pid is None or pid <= 0:
        return None
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + wait
    while JobLock.holder(home, files.LOCK) is not None:
        if time.monotonic() > end:
            raise DaemonError(f"the daemon (pid {pid}) did not stop within {wait:g}s")
        time.sleep(0.05)
    return info
