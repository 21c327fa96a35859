"""The state directory (jobs, daemon files, error reports): where it is, and that it is private.

ssh's and gpg's rule: a directory that holds what fm will run must belong to the user and be
writable by no one else, or another local user could plant a journal that `fm resume` runs as
you. fm creates its directories 0700 whatever the umask, and refuses (one line, naming the
path) an existing one that is not a directory, belongs to someone else, or is writable by group
or others.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import FlowmetalError

_EUID = os.geteuid() if hasattr(os, "geteuid") else None
"""This process's user, asked once (the daemon checks a job's directory at every delivery)."""


class StateDirError(FlowmetalError):
    """The state directory (or a directory in it) is missing, unusable or not private."""


def state_dir() -> Path:
    """$FM_HOME, else platformdirs' user state dir; created (with parents) mode 0700."""
    home = os.environ.get("FM_HOME")
    if home:
        return private_dir(Path(home).absolute())
    import platformdirs  # lazy: costs a few ms of start-up and FM_HOME usually skips it
    return private_dir(Path(platformdirs.user_state_dir("flowmetal")))


def private_dir(path: Path, *, follow: bool = True) -> Path:
    """`path` as a private directory: made 0700 (missing parents too) or checked as it is.

    `follow=False` also refuses a symlink (for directories inside the state directory)."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        _make(path)
        return path
    except OSError as e:
        raise StateDirError(f"{path}: cannot use it as a state directory ({e.strerror})") \
            from None
    check_private(path, st)
    return path


def check_private(path, st: os.stat_result) -> None:
    """Raise StateDirError unless `st` is a directory of ours that no one else may write."""
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError(f"{path}: is a symbolic link; fm does not follow links here")
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError(f"{path}: not a directory (set FM_HOME to a directory)")
    if _EUID is not None and st.st_uid != _EUID:
        raise StateDirError(f"{path}: belongs to another user (uid {st.st_uid}); "
                            "fm uses only a state directory of its own")
    if st.st_mode & 0o022:
        raise StateDirError(f"{path}: writable by group or others (mode "
                            f"{stat.S_IMODE(st.st_mode):04o}); `chmod 700 {path}` fixes it")


def _make(path: Path) -> None:
    """mkdir -p with every directory it creates 0700, whatever the umask."""
    missing = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass            # made meanwhile by another fm: checked below
        except OSError as e:
            raise StateDirError(f"{d}: cannot create the state directory ({e.strerror})") from None
        try:
            os.chmod(d, 0o700)  # mkdir's mode is masked by the umask
        except OSError as e:
            raise StateDirError(f"{d}: {e.strerror}") from None
    check_private(path, os.stat(path))
