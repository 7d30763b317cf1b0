"""DTMF carried in INFO bodies: application/dtmf-relay and application/dtmf.

Anatomy of the two bodies (neither has an RFC of its own; both are the
de-facto formats PBXs send in SIP INFO, RFC 6086)::

    application/dtmf-relay           application/dtmf
    Signal=5\\r\\n                      5
    Duration=160\\r\\n

:func:`digits_of_info` turns either body into its digits (``"0"``-``"9"``,
``"*"``, ``"#"``, ``"A"``-``"D"``), the same characters RFC 4733 events give
(:mod:`txsipua.media.dtmf`); ``Signal=10`` and ``11`` are ``*`` and ``#``,
``12``-``15`` are ``A``-``D``, as their event codes.
"""

from __future__ import annotations

from txsipua.errors import ParseError

DTMF_RELAY = "application/dtmf-relay"
"""The ``Signal=``/``Duration=`` body type."""

DTMF = "application/dtmf"
"""The bare-digit body type."""

INFO_DTMF_TYPES = (DTMF_RELAY, DTMF)
"""The INFO body types carrying DTMF."""

MAX_INFO_BODY = 1024
"""A body longer than this (bytes) is refused (ParseError 413)."""

_DIGITS = "0123456789*#ABCD"


def _digit(value: str) -> str:
    value = value.strip().upper()
    if len(value) == 1 and value in _DIGITS:
        return value
    if value.isdigit() and int(value) < 16:
        return _DIGITS[int(value)]
    raise ParseError(f"not a DTMF digit: {value[:10]!r}", status=400)


def digits_of_info(content_type: str, body: bytes) -> str:
    """The digits an INFO body carries (one for dtmf-relay, one or more for dtmf).

    Args:
        content_type: the Content-Type value (parameters ignored, case-insensitive).
        body: the body.

    Raises:
        ParseError: a type other than the two (415), too large (413), or no
            valid digit in it (400).
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in INFO_DTMF_TYPES:
        raise ParseError(f"not a DTMF body: {media!r}", status=415)
    if len(body) > MAX_INFO_BODY:
        raise ParseError(f"DTMF body of {len(body)} bytes", status=413)
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise ParseError("DTMF body is not ASCII") from None
    if media == DTMF:
        digits = "".join(_digit(c) for c in text if not c.isspace())
    else:
        digits = ""
        for line in text.splitlines():
            name, eq, value = line.partition("=")
            if eq and name.strip().lower() == "signal":
                digits = _digit(value)
                break
    if not digits:
        raise ParseError("DTMF body without a digit")
    return digits


__all__ = ["DTMF", "DTMF_RELAY", "INFO_DTMF_TYPES", "MAX_INFO_BODY", "digits_of_info"]
