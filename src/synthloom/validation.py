"""Turning a pydantic validation error into the one line a user sees (the only place)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def first_error(exc: ValidationError) -> tuple[tuple[Any, ...], str]:
    """The location and message of the first error; `unknown key` for a forbidden extra key."""
    err = exc.errors()[0]
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    else:
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return tuple(err.get("loc", ())), msg


def one_line(exc: ValidationError, *, whole: str = "") -> str:
    """`key.path: what is wrong` for the first error; `whole` names the value itself when the
    error is about all of it (e.g. "answer" for a model's answer that is not an object)."""
    loc, msg = first_error(exc)
    where = ".".join(str(x) for x in loc) or whole
    return f"{where}: {msg}" if where else msg
