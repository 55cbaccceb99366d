"""Errors the CLI turns into one clear line and an exit code.

Exit codes (documented in the README):
  2  bad input or configuration: fix the command, file or endpoint settings and run again;
  1  the run itself failed (for example every call failed);
  130  interrupted (Ctrl-C); re-run the same command to resume.
"""

from __future__ import annotations


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
