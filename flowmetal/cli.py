"""The `fm` command: parse the command line, dispatch, map every error to a message and a status.

This is the only place that turns exceptions into exit codes. Each subcommand is a function
`cmd_<name>(args) -> int` whose docstring is its `fm help <name>` text (first line: summary).
The common forms `fm FILE ...` and `fm -c ...` are dispatched before argparse is even imported,
so a script starts fast.
"""
from __future__ import annotations

import os
import signal
import sys

from . import __version__
from .errors import FlowmetalError, SourceError, Terminated, UsageError

INTERNAL_ERROR_STATUS = 70  # EX_SOFTWARE from sysexits.h: a bug in fm, not in the script
INTERRUPTED_STATUS = 130


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `fm` console script: run and exit with the status."""
    status = run_cli(sys.argv[1:] if argv is None else argv)
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError, OSError):
        _silence_stdout()
    sys.exit(status)


def run_cli(argv: list[str]) -> int:
    """Run one fm command line; returns the exit status. Never raises (but SystemExit)."""
    try:
        return _dispatch(argv)
    except SourceError as e:
        from .diagnostics import render
        _err(render(e.filename, e.text, e.start, e.end, e.line, e.col, e.message))
        return e.status
    except FlowmetalError as e:
        _err(f"fm: {_one_line(e.message)}")
        return e.status
    except Terminated as e:
        # SIGTERM / SIGHUP: the job was left as it stood; say how to go on with it.
        what = "terminated" if e.signum == signal.SIGTERM else "hung up"
        if e.job_id and e.handed_over:
            _err(f"fm: {what}; the daemon goes on with job {e.job_id} (fm attach {e.job_id})")
        elif e.job_id:
            _err(f"fm: {what}; job {e.job_id} can be resumed with fm resume {e.job_id}")
        else:
            _err(f"fm: {what}")
        return 128 + e.signum
    except KeyboardInterrupt:
        return INTERRUPTED_STATUS
    except BrokenPipeError:
        _silence_stdout()  # `fm log x | head`: the reader left; say nothing, like other tools
        return 141
    except SystemExit:
        raise
    except Exception as e:  # a bug in fm: one line, the traceback in a file
        where = _save_traceback(e)
        _err(f"fm: internal error: {_one_line(str(e) or type(e).__name__)} "
             f"(please report; traceback saved to {where})")
        return INTERNAL_ERROR_STATUS


def _dispatch(argv: list[str]) -> int:
    if not argv:
        return _no_arguments()
    first = argv[0]
    if first == "-c":
        if len(argv) < 2:
            raise UsageError("-c needs a script: fm -c 'SCRIPT' [ARG...]")
        from .runner.run import Script
        return _start(Script(source=argv[1], filename="-c", name="c", argv=["fm", *argv[2:]]))
    if first in ("--version", "-V"):
        print(f"fm {__version__}")
        return 0
    if first in ("-h", "--help"):
        print(_overview())
        return 0
    if first == "--":
        if len(argv) < 2:
            raise UsageError("`--` needs a script file after it")
        return _start(_script_from_file(argv[1], argv[2:], None))
    if first.startswith("-") and first != "-":
        raise UsageError(f"unknown option `{first}` (see `fm help`)")
    if first in COMMANDS:
        return _run_command(first, argv[1:])
    return _start(_script_from_file(first, argv[1:], None))


def _no_arguments() -> int:
    if sys.stdin is not None and sys.stdin.isatty():
        # The interactive shell (prompt-toolkit) is imported only here, never for scripts.
        raise UsageError("the interactive shell is not built yet")
    return _start(_script_from_file("-", [], None))


# ---- running scripts ----

def _script_from_file(path: str, args: list[str], name: str | None):
    """Read a script (`-`: standard input) into a runner Script."""
    from .runner.run import Script
    if path == "-":
        data = sys.stdin.buffer.read() if sys.stdin is not None else b""
        return Script(source=data.decode("utf-8", "surrogateescape"), filename="stdin",
                      name=name or "stdin", argv=["fm", *args])
    source = _read_source(path)
    stem = os.path.basename(path)
    stem = stem[:-3] if stem.endswith(".fm") and len(stem) > 3 else stem.split(".")[0] or stem
    return Script(source=source, filename=path, name=name or stem, argv=[path, *args])


def _read_source(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None
    return data.decode("utf-8", "surrogateescape")


def _start(script) -> int:
    from .connectors import Term
    from .runner.config import load_config
    from .runner.run import start_job
    config = load_config()
    return _exit_status(start_job(script, term=Term(echo=True), config=config))


def _exit_status(status: int) -> int:
    return status if 0 <= status <= 255 else status & 0xFF


# ---- subcommands ----

COMMANDS: dict = {}


def command(name: str, *arguments):
    """Register `fn` as `fm NAME`; `arguments` are arg(...) specs for its parser."""
    def register(fn):
        COMMANDS[name] = (fn, arguments)
        return fn
    return register


def arg(*names, **options):
    """One argparse argument of a subcommand."""
    return names, options


def _run_command(name: str, argv: list[str]) -> int:
    fn, _ = COMMANDS[name]
    parser = _command_parser(name)
    args = parser.parse_args(argv)
    return fn(args)


def _make_parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse with one-line errors raised as UsageError instead of printing usage."""

        def error(self, message):
            sub = self.prog.removeprefix("fm ")
            raise UsageError(f"{sub}: {_one_line(message)} (see `fm help {sub}`)")

    return argparse, Parser


def _command_parser(name: str):
    argparse, Parser = _make_parser_class()
    fn, arguments = COMMANDS[name]
    doc = _doc(fn)
    p = Parser(prog=f"fm {name}", description=doc, allow_abbrev=False,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    for names, options in arguments:
        p.add_argument(*names, **options)
    return p


def _doc(fn) -> str:
    import inspect
    return inspect.cleandoc(fn.__doc__ or "")


def _summary(fn) -> str:
    return _doc(fn).split("\n", 1)[0]


def _overview() -> str:
    lines = [
        f"fm {__version__}: a bash-like shell whose scripts are durable",
        "",
        "usage:",
        "  fm                          interactive shell on a TTY; "
        "otherwise run the script on stdin",
        "  fm FILE [ARG...]            run a script as a durable job in the foreground",
        "  fm -c 'SCRIPT' [ARG...]     run a one-liner as a durable job",
        "  fm COMMAND [OPTION...]      manage jobs:",
        "",
    ]
    width = max(map(len, COMMANDS))
    for name, (fn, _) in COMMANDS.items():
        lines.append(f"    {name:<{width}}  {_summary(fn)}")
    lines += ["", "options: -c SCRIPT, --version, -h/--help",
              "`fm help COMMAND` describes a command; `fm help BUILTIN` a builtin or keyword of "
              "the language (retry, timeout, once, sleep, try, read, printf, trap, ...).",
              "Exit status: the script's; 2 for usage or "
              "syntax errors; 130 after Ctrl-C."]
    return "\n".join(lines)


@command("run",
         arg("-d", "--detach", action="store_true", help="let the daemon run it; print the job id"),
         arg("--name", metavar="N", help="the job's name (default: the file's name)"),
         arg("file", metavar="FILE", help="the script (`-` reads it from standard input)"),
         arg("args", metavar="ARG", nargs="...", help="its arguments ($1, $2, ...)"))
def cmd_run(args) -> int:
    """Run a script as a durable job.

    Without -d it runs in the foreground, exactly like `fm FILE ARG...`, but with the options
    below. Everything after FILE is passed to the script.
    """
    script = _script_from_file(args.file, args.args, args.name)
    if not args.detach:
        return _start(script)
    from .daemon.client import run_detached
    from .runner.config import load_config
    from .runner.run import logical_cwd
    from .statedir import state_dir
    print(run_detached(script, state_dir(), load_config(), dict(os.environ), logical_cwd()))
    return 0


_STATES = ("running", "sleeping", "waiting", "queued", "orphaned", "damaged", "done",
           "failed", "cancelled")


@command("ps",
         arg("-a", "--all", action="store_true", help="also list finished jobs"),
         arg("--state", metavar="STATE", action="append", default=[],
             help=f"only jobs in this state (repeat, or comma-separate): {', '.join(_STATES)}"),
         arg("--name", metavar="NAME", help="only jobs of this name (a glob: `deploy*`)"),
         arg("--json", action="store_true", help="one JSON object per line"))
def cmd_ps(args) -> int:
    """List jobs (unfinished ones unless -a).

    Columns: id, name, state (running, sleeping: only timers, waiting: for a callback or an
    event, queued: the daemon runs it when a runner slot is free, orphaned: no process runs or
    parked it, done, failed, cancelled, or damaged: its
    journal fails a check, `fm log` names the line), since (when it entered that state, in
    local time; the header gives the UTC offset), steps (the machine's step count) and what it
    is waiting on. `--state` and `--name` filter; asking for a finished state lists finished
    jobs without -a.
    `--json` prints one object per line with at least id, name, state, since (RFC 3339),
    waiting_on (null when not waiting) and steps.
    """
    from .daemon.files import queued
    from .journal import open_store
    from .runner.jobs import list_jobs, mark_queued
    from .statedir import state_dir
    states = {x for s in args.state for x in s.split(",") if x}
    if states - set(_STATES):
        raise UsageError(f"ps --state: no state {', '.join(sorted(states - set(_STATES)))} "
                         f"(states: {', '.join(_STATES)})")
    finished = bool(states & {"done", "failed", "cancelled"})
    jobs = mark_queued(list_jobs(open_store(), all_jobs=args.all or finished),
                       queued(state_dir()))
    if states:
        jobs = [j for j in jobs if j.state in states]
    if args.name is not None:
        from fnmatch import fnmatchcase
        jobs = [j for j in jobs if fnmatchcase(j.name, args.name)]
    if args.json:
        import json
        for job in jobs:
            print(json.dumps(job.as_json(), separators=(",", ":")))
        return 0
    import time

    from .runner.history import local_time
    rows = [("ID", "NAME", "STATE", f"SINCE ({time.strftime('%z')})", "STEPS", "WAITING ON")]
    for job in jobs:
        state = job.state
        if job.status not in (None, 0):
            state = f"{state} ({job.status})"
        elif job.pid:
            state = f"{state} (pid {job.pid})"
        rows.append((job.id, job.name, state, local_time(job.since, with_date=True),
                     str(job.steps), job.waiting_on or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


@command("log",
         arg("job", metavar="JOB", help="a job id or a unique prefix of one"),
         arg("-f", "--follow", action="store_true", help="keep printing until the job ends"),
         arg("--json", action="store_true", help="print the journal records as stored"),
         arg("--output", action="store_true", help="print only the job's output"),
         arg("--no-output", action="store_true", help="hide the output under each step"),
         arg("--full", action="store_true", help="show all of each step's output, unclipped"))
def cmd_log(args) -> int:
    """Show a job's history.

    One line per event: local time, step, and what happened (`exec  make test  -> 0`,
    `write  stdout 12 bytes`, `job.finished  status 0`). Under a step, the text it printed
    (`out|`, `err|`) or a `$(...)` captured (`cap|`), at most 10 lines of each (`--full`: all;
    `--no-output`: none). `--json` prints the journal records as
    stored, one per line (docs/journal.md), but for the values of variables named like secrets
    (`[journal] redact`: *TOKEN*, *SECRET*, *PASSWORD*, *KEY*, *CREDENTIAL*), shown as ***.
    `--output` prints what the job wrote, stdout to stdout and stderr to stderr. `-f` follows
    the job until it ends.
    """
    from .journal import open_store
    from .runner.config import load_config
    from .runner.history import OUTPUT_LINES, Redactor, history_lines, output_chunks
    if args.json + args.output + (args.no_output or args.full) > 1:
        raise UsageError("log: --json, --output and --no-output/--full exclude each other")
    if args.no_output and args.full:
        raise UsageError("log: --no-output and --full exclude each other")
    redact = Redactor(load_config().journal.redact)
    store = open_store()
    job_id = store.find(args.job)
    records = store.follow(job_id) if args.follow else store.records(job_id)
    if not args.output:
        records = map(redact.record, records)
    if args.json:
        import json
        for rec in records:
            print(json.dumps(rec, separators=(",", ":")), flush=args.follow)
    elif args.output:
        _write_output(output_chunks(records))
    else:
        live = store.holder(job_id) is not None
        limit = 0 if args.no_output else None if args.full else OUTPUT_LINES
        for line in history_lines(records, live=live, output=limit, hide=redact.text):
            print(line, flush=args.follow)
    return 0


def _write_output(chunks) -> None:
    sys.stdout.flush()
    for fd, text in chunks:
        stream = sys.stdout if fd == 1 else sys.stderr
        stream.buffer.write(text.encode("utf-8", "surrogateescape"))
        stream.buffer.flush()


@command("attach", arg("job", metavar="JOB", help="a job id or a unique prefix of one"))
def cmd_attach(args) -> int:
    """Show a job's output so far and follow it live; Ctrl-C detaches.

    Exits with the job's status when it ends while attached.
    """
    from .journal import open_store
    from .runner.history import output_chunks
    store = open_store()
    job_id = store.find(args.job)
    if store.holder(job_id) is None:
        from .runner.jobs import job_info
        info = job_info(store, job_id)
        if info.state in ("sleeping", "waiting"):    # parked: the daemon runs it when due
            _err(f"fm: job {job_id} is parked, {info.state} for {info.waiting_on}")
        elif not info.finished:
            _err(f"fm: job {job_id} has no runner (orphaned); `fm resume {job_id}` continues it")
    end = {}

    def tracking(records):
        for rec in records:
            end["status"] = rec.get("status") if rec.get("kind") in (
                "job.finished", "job.failed", "job.cancelled") else None
            yield rec
    try:
        _write_output(output_chunks(tracking(store.follow(job_id))))
    except KeyboardInterrupt:
        return 0  # detach
    status = end.get("status")
    return _exit_status(status) if isinstance(status, int) else 0


@command("resume", arg("job", metavar="JOB", help="a job id or a unique prefix of one"))
def cmd_resume(args) -> int:
    """Resume an unfinished job in the foreground.

    The job continues from its journal with the environment, working directory and arguments
    it started with: effects that completed are not run again, and one that was cut off runs
    again with the same FM_STEP_KEY. Fails if another process runs the job or it has finished.
    """
    from .connectors import Term
    from .journal import open_store
    from .runner.config import load_config
    from .runner.run import resume_job
    store = open_store()
    job_id = store.find(args.job)
    config = load_config()
    return _exit_status(resume_job(job_id, store=store, term=Term(echo=True), config=config))


@command("rm", arg("jobs", metavar="JOB", nargs="+", help="job ids or unique prefixes"))
def cmd_rm(args) -> int:
    """Delete finished jobs (their directories and journals).

    Refuses a job that has not finished (resume it, or later cancel it, first); then nothing is
    deleted, nor when any JOB matches no job.
    """
    from .journal import open_store
    from .runner.jobs import remove_jobs
    store = open_store()
    # Resolve and check every job first: a typo or an unfinished job deletes nothing.
    remove_jobs(store, [store.find(j) for j in args.jobs])
    return 0


@command("check", arg("files", metavar="FILE", nargs="+", help="scripts to check"))
def cmd_check(args) -> int:
    """Check scripts for syntax errors without running anything.

    Prints nothing and exits 0 when every file parses; otherwise prints each error with its
    file, line and column and exits 2.
    """
    from .diagnostics import render
    from .errors import ParseError
    from .lang import parse
    status = 0
    for path in args.files:
        try:
            parse(_read_source(path), path)
        except ParseError as e:
            _err(render(e.filename, e.text, e.start, e.end, e.line, e.col, e.message))
            status = 2
        except UsageError as e:
            _err(f"fm: {e.message}")
            status = 2
    return status


@command("help", arg("topic", metavar="COMMAND|BUILTIN", nargs="?",
                     help="an fm command, or a builtin or keyword of the language"))
def cmd_help(args) -> int:
    """Describe fm, one of its commands, or a builtin or keyword of its language.

    `fm help retry` prints the builtin's synopsis, what it does and an example (from the table
    `fm check` uses, flowmetal/lang/support.py); for a bash builtin fm lacks, what to do
    instead.
    """
    if args.topic is None:
        print(_overview())
        return 0
    if args.topic in COMMANDS:
        print(_command_parser(args.topic).format_help().rstrip())
        return 0
    from .lang.support import help_text
    text = help_text(args.topic)
    if text is None:
        raise UsageError(f"help: no command, builtin or keyword `{args.topic}` (`fm help` "
                         "lists the commands)")
    print(text)
    return 0


def _not_built(what: str):
    raise UsageError(f"`fm {what}` is not built yet")


@command("send",
         arg("job", metavar="JOB"), arg("event", metavar="EVENT"),
         arg("data", metavar="DATA", nargs="?", help="the event's data; `-` reads standard input"))
def cmd_send(args) -> int:
    """Deliver an event to a job (for `await --event NAME`).

    The event is durable in the job's inbox when this returns, daemon or not; events queue per
    name and are seen in the order they were sent. A parked job is woken (the daemon is started
    if none runs).
    """
    from .daemon.client import send
    from .statedir import state_dir
    return send(state_dir(), args.job, args.event, _data_arg(args.data))


@command("complete", arg("target", metavar="URL|TOKEN"),
         arg("data", metavar="DATA", nargs="?", help="the body; `-` reads standard input"))
def cmd_complete(args) -> int:
    """Deliver a callback without HTTP: the URL `callback` printed, or its token.

    The delivery is durable in the job's inbox when this returns, daemon or not; the first
    delivery of a callback wins (a second is refused, as HTTP answers 409).
    """
    from .daemon.client import complete
    from .statedir import state_dir
    return complete(state_dir(), args.target, _data_arg(args.data))


def _data_arg(data: str | None) -> str:
    """DATA as given, `-`: standard input (decoded as scripts are), none: empty."""
    if data == "-":
        return sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    return data or ""


@command("cancel", arg("job", metavar="JOB", help="a job id or a unique prefix of one"))
def cmd_cancel(args) -> int:
    """Cancel a job: its `finally` blocks run (not its `catch` blocks), then it ends (130).

    A job that a process is running is cancelled by that process (it gets SIGUSR1, which fm
    takes as Ctrl-C), and that process runs the `finally` blocks. A job that no process runs
    (orphaned) is cancelled here: its `finally` blocks run in this terminal.
    """
    import os
    import signal
    import time

    from .connectors import Term
    from .errors import JobLockedError
    from .journal import open_store
    from .runner.config import load_config
    from .runner.run import resume_job
    store = open_store()
    job_id = store.find(args.job)
    deadline = time.monotonic() + 10
    while True:
        pid = store.holder(job_id)
        if pid is not None and pid > 0:
            os.kill(pid, signal.SIGUSR1)
            _err(f"fm: cancelling job {job_id} (run by process {pid})")
            return 0
        try:
            return _exit_status(resume_job(job_id, store=store, term=Term(echo=True),
                                           config=load_config(), cancel="cancelled (fm cancel)"))
        except JobLockedError:
            # A resume took the job between our look and our try: signal that one instead.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@command("kill", arg("job", metavar="JOB", help="a job id or a unique prefix of one"))
def cmd_kill(args) -> int:
    """Stop a job now, without cleanup: no `finally` runs.

    The process running the job and the programs it started get SIGKILL; the job is recorded
    as cancelled (status 137).
    """
    from .journal import open_store
    from .runner.jobs import kill_job
    store = open_store()
    kill_job(store, store.find(args.job))
    return 0


@command("prune", arg("--older-than", metavar="DURATION", default="30d",
                      help="age of the job's last record (default 30d)"))
def cmd_prune(args) -> int:
    """Delete finished jobs whose last record is older than a duration (default 30d).

    Unfinished jobs are never deleted. Prints how many jobs were removed.
    """
    from .journal import open_store
    from .machine.duration import DurationError, parse_duration
    from .runner.jobs import prune_jobs
    try:
        age = parse_duration(args.older_than)
    except DurationError as e:
        raise UsageError(f"prune --older-than: {e.message}") from None
    _err(f"fm: removed {prune_jobs(open_store(), age)} finished job(s)")
    return 0


@command("config", arg("--json", action="store_true", help="one JSON object per setting"))
def cmd_config(args) -> int:
    """Show the effective settings and where each came from.

    The config file is $FM_CONFIG, else config.toml in the user's config directory
    (docs/cli.md, "Configuration"); a setting the file does not give has its default. A bad
    file is an error naming the file and the key, as for every other command.
    """
    import json

    from .runner.config import config_path, load_config, settings
    config = load_config()
    if args.json:
        for name, value, where in settings(config):
            print(json.dumps({"name": name, "value": value, "from": where or "default"}))
        return 0
    print(f"# {config.path or f'{config_path()} (missing: every setting is its default)'}")
    for name, value, where in settings(config):
        shown = "(none)" if value is None else json.dumps(value)
        print(f"{name} = {shown}" + ("" if where else "    # default"))
    return 0


@command("daemon", arg("action", choices=["start", "stop", "status", "run"]))
def cmd_daemon(args) -> int:
    """Start, stop, inspect or run (in the foreground) the daemon.

    One daemon per state directory runs detached jobs, wakes sleeping ones and serves
    callbacks, events and the control API over HTTP (docs/daemon.md). `start` starts it in the
    background (nothing if one runs), `stop` stops it and waits (its jobs stop at a safe point
    and continue at the next start), `status` exits 0 when one runs and 3 when none does,
    `run` stays in the foreground (for systemd).
    """
    from .daemon.client import daemon_action
    from .runner.config import load_config
    from .statedir import state_dir
    return daemon_action(args.action, state_dir(), load_config())


@command("completions", arg("shell", choices=["bash", "zsh", "fish"]))
def cmd_completions(args) -> int:
    """Print a shell completion script. Not built yet."""
    _not_built("completions")


# ---- output helpers ----

def _err(text: str) -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _one_line(text: str) -> str:
    return " ".join(str(text).split("\n")).strip()


def _silence_stdout() -> None:
    # Point fd 1 at /dev/null so the interpreter's final flush cannot raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _save_traceback(exc: BaseException) -> str:
    """Write the traceback into the job's directory or the state directory (both private;
    never a shared temp directory); returns the path."""
    import traceback
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    candidates = []
    job_dir = getattr(exc, "fm_job_dir", None)
    if job_dir is not None:
        candidates.append(str(job_dir))
    try:
        from .statedir import state_dir
        candidates.append(str(state_dir()))
    except Exception:
        pass
    from .journal.jobstore import random_suffix
    for d in candidates:
        # A fresh random name, created exclusively and never through a link.
        path = os.path.join(d, f"internal-error-{random_suffix(8)}.txt")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"fm {__version__}, argv {sys.argv!r}\n{text}")
            return path
        except OSError:
            continue
    return "(nowhere: could not write it)"
