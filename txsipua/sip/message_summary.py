"""application/simple-message-summary bodies: message waiting indication (RFC 3842 §5).

Anatomy::

    Messages-Waiting: yes                       <- the one required line
    Message-Account: sip:alice@example.com      <- optional
    Voice-Message: 2/8 (0/2)                    <- class: new/old (urgent new/urgent old)
    Fax-Message: 0/1

Lines of other names (and the optional message headers after a blank line)
are ignored; only the summary is read.
"""

from __future__ import annotations

import re

import attrs

from txsipua.errors import ParseError

MAX_SUMMARY = 16384
"""A body longer than this (bytes) is refused (ParseError 413)."""

# msg-summary-line = message-context-class HCOLON newmsgs SLASH oldmsgs
#                    [ LPAREN new-urgentmsgs SLASH old-urgentmsgs RPAREN ]   (RFC 3842 §5.2)
_COUNTS = re.compile(r"([0-9]{1,9})[ \t]*/[ \t]*([0-9]{1,9})(?:[ \t]*\([ \t]*([0-9]{1,9})[ \t]*/[ \t]*([0-9]{1,9})[ \t]*\))?\Z")
_CLASSES = {"voice-message": "voice", "fax-message": "fax", "pager-message": "pager",
            "multimedia-message": "multimedia", "text-message": "text", "none": "none"}


@attrs.frozen
class MessageCounts:
    """The counts of one message class (RFC 3842 §5.2).

    Attributes:
        new: new messages.
        old: old messages.
        new_urgent: new urgent messages.
        old_urgent: old urgent messages.
    """

    new: int
    old: int
    new_urgent: int = 0
    old_urgent: int = 0


@attrs.frozen
class MessageSummary:
    """A message summary (RFC 3842).

    Attributes:
        waiting: the Messages-Waiting line (True for ``yes``).
        account: the Message-Account URI as text, or ``None``.
        counts: message class (``"voice"``, ``"fax"``, ``"pager"``,
            ``"multimedia"``, ``"text"``, ``"none"``) to its counts.
    """

    waiting: bool
    account: str | None = None
    counts: dict[str, MessageCounts] = attrs.field(factory=dict)

    @property
    def voice(self) -> MessageCounts | None:
        """The voice-message counts, if given."""
        return self.counts.get("voice")

    def __str__(self) -> str:
        out = "waiting" if self.waiting else "no messages"
        for name, c in self.counts.items():
            out += f" {name}={c.new}/{c.old}"
            if c.new_urgent or c.old_urgent:
                out += f"({c.new_urgent}/{c.old_urgent})"
        return out


def parse_message_summary(body: bytes) -> MessageSummary:
    """Parse a message-summary body.

    Raises:
        ParseError: too large (413), not UTF-8, no Messages-Waiting line or a
            bad value in it, or a malformed count line (400).
    """
    if len(body) > MAX_SUMMARY:
        raise ParseError(f"message-summary body of {len(body)} bytes", status=413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("message-summary body is not UTF-8") from None
    waiting: bool | None = None
    account: str | None = None
    counts: dict[str, MessageCounts] = {}
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            if waiting is not None:
                break  # the optional message headers follow: not read
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"message-summary line without a colon: {line[:40]!r}")
        name, value = name.strip().lower(), value.strip()
        if name == "messages-waiting":
            if value.lower() not in ("yes", "no"):
                raise ParseError(f"Messages-Waiting must be yes or no, not {value[:20]!r}")
            waiting = value.lower() == "yes"
        elif name == "message-account":
            account = value
        elif name in _CLASSES:
            m = _COUNTS.match(value)
            if m is None:
                raise ParseError(f"bad message counts {value[:40]!r}")
            counts[_CLASSES[name]] = MessageCounts(int(m.group(1)), int(m.group(2)),
                                                   int(m.group(3) or 0), int(m.group(4) or 0))
    if waiting is None:
        raise ParseError("message-summary without Messages-Waiting")
    return MessageSummary(waiting, account, counts)


__all__ = ["MAX_SUMMARY", "MessageCounts", "MessageSummary", "parse_message_summary"]
