"""Effect executors: perform(request, term) runs one effect request and returns its result."""
from __future__ import annotations

from . import files
from .term import Term

__all__ = ["perform", "Term", "OPS"]


def _exec(req: dict, term: Term) -> dict:
    # Imported on first use: subprocess costs ~3 ms of start-up that `fm -c true` never needs.
    from .process import run_pipeline
    return run_pipeline(req, term)


OPS = {
    "exec": _exec,
    "open": files.do_open,
    "write": files.do_write,
    "read_file": files.do_read_file,
    "read_line": files.do_read_line,
    "glob": files.do_glob,
    "test": files.do_test,
    "cd": files.do_cd,
    "realpath": files.do_realpath,
}


def perform(req: dict, term: Term) -> dict:
    """Run one effect request; expected failures come back in the result, never raised.

    Raises ValueError only for a malformed request (a bug in whoever built it).
    """
    handler = OPS.get(req.get("op"))
    if handler is None:
        raise ValueError(f"unknown effect op: {req.get('op')!r}")
    return handler(req, term)
