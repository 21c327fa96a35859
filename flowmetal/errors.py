"""The root exception and its structured subclasses; cli.py alone maps them to exit codes."""
from __future__ import annotations


class FlowmetalError(Exception):
    """Root of every error fm reports to a person. `status` is the exit status it implies."""
    status = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UsageError(FlowmetalError):
    """Bad command-line arguments."""
    status = 2


class SourceError(FlowmetalError):
    """An error at a place in a source file: rendered with file:line:col and a caret."""
    status = 1

    def __init__(self, message: str, filename: str, text: str, start: int, end: int,
                 line: int, col: int):
        super().__init__(message)
        self.filename = filename
        self.text = text
        self.start = start
        self.end = end
        self.line = line
        self.col = col


class ParseError(SourceError):
    """A syntax error, found before anything runs."""
    status = 2


class JournalError(FlowmetalError):
    """A journal that cannot be read: corruption before the tail, a bad first record."""


class JournalDamagedError(JournalError):
    """A journal line that was changed after it was written, or lost (G6): it is never repaired
    or skipped, and the job cannot be resumed safely."""

    def __init__(self, path: str, line: int | None, why: str):
        where = f"{path}:{line}:" if line is not None else f"{path}: near its end:"
        super().__init__(f"{where} damaged record ({why}); the job cannot be resumed safely")
        self.path = path
        self.line = line
        self.why = why


class JobLockedError(FlowmetalError):
    """Another process is running this job (G7)."""


class JobNotFoundError(FlowmetalError):
    """No job matches the id or prefix given."""
    status = 2


class ConfigError(FlowmetalError):
    """A malformed config file or a bad value in it."""
    status = 2


class Terminated(BaseException):
    """SIGTERM or SIGHUP reached the process running a job: it stops where it is, leaving the
    job resumable (nothing is journaled: no cancel, no end). Not a FlowmetalError: like
    KeyboardInterrupt, no `except Exception` may swallow it on its way to cli.py, which
    says how to resume the job and exits with 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.job_id: str | None = None
        """The job that was stopped, once it exists."""
        self.handed_over = False
        """The daemon watches the process: it goes on with the job by itself."""
