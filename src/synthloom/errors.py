"""Errors the CLI turns into one clear line and an exit code.

Exit codes (documented in the README):
  2  bad input or configuration: fix the command, file or endpoint settings and run again;
  1  the run itself failed (for example every call failed);
  130  interrupted (Ctrl-C); re-run the same command to resume.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class SynthloomError(Exception):
    """Base class; `str(error)` is the one line shown to the user."""

    exit_code = 1


class UserError(SynthloomError):
    """Bad input: a file, option, recipe key or endpoint setting the user must fix."""

    exit_code = 2


class BackendFatal(SynthloomError):
    """The backend refuses every call (bad API key, unknown model, unreachable): stop the run."""

    exit_code = 2


class RunFailed(SynthloomError):
    """The run finished but produced nothing usable (e.g. every call failed)."""

    exit_code = 1


# errno values of file errors a user fixes (permissions, a full or read-only disk, a path
# through a file); other OSErrors stay internal errors.
_FIXES = {
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose a path on a writable disk",
    errno.ENOSPC: "free some disk space, then run the same command again (it resumes)",
    errno.EDQUOT: "free some disk space, then run the same command again (it resumes)",
    errno.ENOTDIR: "choose another path",
    errno.EEXIST: "choose another path",
    errno.EISDIR: "it is a directory; give a file path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def is_path_error(exc: BaseException) -> bool:
    """True for an OSError a user fixes by choosing or fixing a path (see `path_error`)."""
    return isinstance(exc, OSError) and exc.errno in _FIXES


def path_error(exc: OSError, doing: str = "cannot write", fix: str | None = None) -> UserError:
    """One line for a file error: what failed, on which path, why, and what to do."""
    where = f" {os.fsdecode(exc.filename)}" if exc.filename is not None else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and exc.filename is not None:
        blocker = _file_in_path(Path(os.fsdecode(exc.filename)))
        if blocker is not None:
            reason = f"{blocker} is a file, not a directory"
    fix = fix or _FIXES.get(exc.errno or 0, "check the path")
    return UserError(f"{doing}{where}: {reason}; {fix}")


def _file_in_path(path: Path) -> Path | None:
    """The first existing non-directory among `path` and its parents."""
    for p in [path, *path.parents]:
        if p.exists() and not p.is_dir():
            return p
    return None
