"""One sanitiser for everything synthloom shows on a terminal.

Record text, ids, field names, paths and server messages can hold control characters: an
escape sequence can clear the screen, set the window title, hide a hyperlink behind harmless
text or rewrite what was printed before it. `visible()` turns every such character into
printable text, so what reaches the terminal is exactly what is in the file, made visible:

    ESC (0x1b) -> \\x1b   other C0 controls, DEL, C1 controls (0x80-0x9f) -> \\xNN
    bidirectional overrides/isolates (U+202A-202E, U+2066-2069) -> \\uXXXX  (they reorder
    text on screen), lone surrogates -> \\uXXXX (they cannot be written as UTF-8)

Newline and tab stay as they are in multi-line values (`multiline=True`, e.g. a field's text);
in single-line things (ids, titles, field names, paths, error lines) they are shown as `\\n`
and `\\t` so one line stays one line. Everything else (backslashes, non-ASCII letters, emoji)
is left alone.
"""

from __future__ import annotations

import re

_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_MULTILINE = re.compile(f"[{_CONTROLS}]")
_SINGLE_LINE = re.compile(f"[{_CONTROLS}\t\n]")
_NAMED = {"\n": "\\n", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: object, *, multiline: bool = False) -> str:
    """`text` (made a string) with control characters and escape sequences shown as text.
    With `multiline`, newlines and tabs are kept; without, they are shown as `\\n`, `\\t`."""
    s = text if isinstance(text, str) else str(text)
    return (_MULTILINE if multiline else _SINGLE_LINE).sub(_escape, s)
