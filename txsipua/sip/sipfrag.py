"""message/sipfrag bodies (RFC 3420) as the NOTIFYs of a transfer carry them (RFC 3515 §2.4.5).

Anatomy of the body a transfer's NOTIFY carries::

    SIP/2.0 180 Ringing\\r\\n         <- status line of the referred request's latest response
    [header fields...]\\r\\n          <- optional, ignored here
    \\r\\n

Only the start line matters to the transferor: it tells how the INVITE the
transferee sent to the Refer-To target is going.  :func:`parse_status_fragment`
reads it into a :class:`StatusFragment`; :meth:`StatusFragment.to_bytes` is
the body we send when we are the transferee.
"""

from __future__ import annotations

import re

import attrs

from txsipua.errors import ParseError
from txsipua.sip.message import reason_phrase

# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF   (RFC 3261 §25.1)
# Status-Code = 3DIGIT ; Reason-Phrase = *(reserved / unreserved / escaped / UTF8 / SP / HTAB)
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9]) ?([^\r\n]*)\Z")

MAX_FRAGMENT = 8192
"""A sipfrag body longer than this (bytes) is refused (ParseError 413): we read one line."""


@attrs.frozen
class StatusFragment:
    """A sipfrag holding a status line (RFC 3420, RFC 3515 §2.4.5).

    Attributes:
        status: the status code (100-699).
        reason: the reason phrase (may be empty).
    """

    status: int
    reason: str = ""

    @property
    def final(self) -> bool:
        """True for a final status (200-699)."""
        return self.status >= 200

    @property
    def success(self) -> bool:
        """True for a 2xx."""
        return 200 <= self.status < 300

    @classmethod
    def of(cls, status: int, reason: str | None = None) -> StatusFragment:
        """The fragment for ``status`` with ``reason`` or the status table's phrase."""
        return cls(status, reason if reason is not None else reason_phrase(status))

    def to_bytes(self) -> bytes:
        """The body: ``SIP/2.0 <status> <reason>`` and CRLF."""
        reason = "".join(c for c in self.reason if c.isprintable())
        return f"SIP/2.0 {self.status} {reason}\r\n".encode()

    def __str__(self) -> str:
        return f"{self.status} {self.reason}".rstrip()


def parse_status_fragment(body: bytes) -> StatusFragment:
    """Read the status line of a message/sipfrag body.

    Raises:
        ParseError: the body is empty, too large (413), not UTF-8, or does not
            start with a SIP/2.0 status line (400).
    """
    if len(body) > MAX_FRAGMENT:
        raise ParseError(f"sipfrag body of {len(body)} bytes", status=413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("sipfrag body is not UTF-8") from None
    line = text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")
    match = _STATUS_LINE.match(line)
    if match is None:
        raise ParseError(f"sipfrag does not start with a status line: {line[:60]!r}")
    return StatusFragment(int(match.group(1)), match.group(2).strip())


__all__ = ["MAX_FRAGMENT", "StatusFragment", "parse_status_fragment"]
