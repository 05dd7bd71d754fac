"""The one gate for text that comes from outside: ids, fields, query text, page bytes.

Python strings may hold lone surrogates (U+D800..U+DFFF): JSON escapes such as ``"\\ud800"``
decode to them, and so do undecodable bytes in command-line arguments (Python reads argv with
``surrogateescape``). They cannot be encoded as UTF-8, so the first SQLite insert, file write,
tokenizer call or JSON response that meets one fails. Every reader and every query path
passes outside text through :func:`checked_text` (reject, naming the field) or
:func:`printable` (repair, for messages and rejected records that must still be written).
"""

from __future__ import annotations

import re

from recommender.errors import InvalidArgumentError

__all__ = ["checked_id", "checked_text", "is_valid_text", "printable"]

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile("[\udc80-\udcff]")


def is_valid_text(text: str) -> bool:
    """True when ``text`` can be encoded as UTF-8 (holds no lone surrogate)."""
    # Encoding is a C fast path, several times quicker than a regex scan on long bodies.
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def checked_text(value: str, *, field: str) -> str:
    """Return ``value`` unchanged when it is valid Unicode; else raise InvalidArgumentError.

    The error names ``field`` and where the bad character is, e.g. ``id: invalid Unicode
    (lone surrogate U+D800 at character 1)``, or ``invalid UTF-8 byte 0xff`` for an argument
    whose bytes were not UTF-8.
    """
    if is_valid_text(value):
        return value
    bad = _SURROGATE.search(value)
    assert bad is not None  # only surrogates make UTF-8 encoding fail
    char, where = bad.group(), bad.start() + 1
    if _SURROGATE_ESCAPE.fullmatch(char):
        # surrogateescape: a byte that was not UTF-8 (argv, a file name, undecodable input).
        what = f"invalid UTF-8 byte 0x{ord(char) - 0xDC00:02x} at character {where}"
    else:
        what = f"invalid Unicode (lone surrogate U+{ord(char):04X} at character {where})"
    raise InvalidArgumentError(f"{field}: {what}", field=field)


def checked_id(value: object) -> str:
    """An article id from a caller as the catalog stores it; invalid Unicode is refused."""
    return checked_text(str(value), field="id")


def printable(value: str) -> str:
    """``value`` with every lone surrogate replaced by U+FFFD, so it can always be written.

    Surrogate escapes of undecodable bytes become U+FFFD too (their bytes are not text).
    """
    if is_valid_text(value):
        return value
    return _SURROGATE.sub("\ufffd", value)
