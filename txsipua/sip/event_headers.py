"""Typed values of the event and transfer header fields (RFC 6665 §8.2, RFC 3891 §6.1, RFC 3515).

Anatomy::

    Event: refer;id=93809824            <- package, and the id of this subscription
    Subscription-State: terminated;reason=noresource;retry-after=30
                        \\________/ \\______________/ \\____________/
                          state       reason           seconds (also expires=)
    Replaces: 98asjd8@198.51.100.2;to-tag=12345;from-tag=54321;early-only
              \\_________________/ \\___________________________/ \\________/
                    Call-ID           the dialog's two tags       flag

Each value parses with ``parse(text)`` (raising
:class:`~txsipua.errors.ParseError`, 400) and prints back with ``str()``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import attrs

from txsipua.errors import ParseError

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")  (RFC 3261 §25.1)
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")


def _params(parts: list[str], what: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for part in parts:
        part = part.strip()
        if not part:
            raise ParseError(f"empty parameter in {what}")
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not _TOKEN.match(name):
            raise ParseError(f"bad parameter name {name!r} in {what}")
        params[name] = value.strip().strip('"') if eq else None
    return params


def _seconds(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 10:
        raise ParseError(f"{name} is not a number of seconds: {value!r}")
    return int(value)


@attrs.frozen
class EventHeader:
    """An Event field (RFC 6665 §8.2.1): ``package[.template][;id=...]``.

    Attributes:
        package: the event package, lower case (``"refer"``, ``"message-summary"``, ``"dialog"``).
        id: the ``id`` parameter, or ``None``.
    """

    package: str
    id: str | None = None

    @classmethod
    def parse(cls, text: str) -> EventHeader:
        """Parse an Event value.

        Raises:
            ParseError: no package, or a malformed parameter.
        """
        head, *rest = text.split(";")
        package = head.strip().lower()
        if not _TOKEN.match(package):
            raise ParseError(f"bad event package {package!r}")
        return cls(package, _params(rest, "Event").get("id"))

    def matches(self, other: EventHeader) -> bool:
        """Same package and same id (RFC 6665 §4.4.1: how a NOTIFY is matched to its subscription)."""
        return self.package == other.package and self.id == other.id

    def __str__(self) -> str:
        return self.package if self.id is None else f"{self.package};id={self.id}"


SUBSCRIPTION_STATES = ("active", "pending", "terminated")
"""The substates of RFC 6665 §4.1.3 (others are treated as ``active``, §8.2.3)."""


@attrs.frozen
class SubscriptionState:
    """A Subscription-State field (RFC 6665 §8.2.3).

    Attributes:
        state: ``"active"``, ``"pending"`` or ``"terminated"`` (an unknown
            substate reads as ``"active"``, as RFC 6665 §4.1.3 asks).
        expires: seconds left, or ``None``.
        reason: for ``terminated``: ``deactivated``, ``probation``,
            ``rejected``, ``timeout``, ``giveup``, ``noresource``,
            ``invariant`` or another token; else ``None``.
        retry_after: seconds before resubscribing, or ``None``.
    """

    state: str
    expires: int | None = None
    reason: str | None = None
    retry_after: int | None = None

    @classmethod
    def parse(cls, text: str) -> SubscriptionState:
        """Parse a Subscription-State value.

        Raises:
            ParseError: no state, a malformed parameter or number.
        """
        head, *rest = text.split(";")
        state = head.strip().lower()
        if not _TOKEN.match(state):
            raise ParseError(f"bad subscription state {state!r}")
        if state not in SUBSCRIPTION_STATES:
            state = "active"
        params = _params(rest, "Subscription-State")
        reason = params.get("reason")
        return cls(state, _seconds(params.get("expires"), "expires"), reason.lower() if reason else None,
                   _seconds(params.get("retry-after"), "retry-after"))

    def __str__(self) -> str:
        out = [self.state]
        if self.reason is not None:
            out.append(f"reason={self.reason}")
        if self.expires is not None:
            out.append(f"expires={self.expires}")
        if self.retry_after is not None:
            out.append(f"retry-after={self.retry_after}")
        return ";".join(out)


# callid = word [ "@" word ]   (RFC 3261 §25.1)
# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#           "(" / ")" / "<" / ">" / ":" / "\\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALLID = re.compile(rf"{_WORD}(?:@{_WORD})?\Z")


@attrs.frozen
class Replaces:
    """A Replaces field (RFC 3891 §6.1): the dialog an INVITE replaces.

    ``to_tag`` and ``from_tag`` are as the *recipient* sees its dialog: its
    local tag is ``to_tag``, its remote tag ``from_tag`` (RFC 3891 §3).

    Attributes:
        call_id: the Call-ID.
        to_tag: the recipient's local tag.
        from_tag: the recipient's remote tag.
        early_only: the ``early-only`` flag (replace only an early dialog).
    """

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    @classmethod
    def parse(cls, text: str) -> Replaces:
        """Parse a Replaces value (also as it appears, unescaped, in a Refer-To URI header).

        Raises:
            ParseError: no Call-ID, or a to-tag or from-tag missing.
        """
        head, *rest = text.split(";")
        call_id = head.strip()
        if not call_id or not _CALLID.match(call_id):
            raise ParseError(f"bad Call-ID in Replaces: {call_id[:60]!r}")
        params = _params(rest, "Replaces")
        to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
        if not to_tag or not from_tag:
            raise ParseError("Replaces needs to-tag and from-tag")
        return cls(call_id, to_tag, from_tag, "early-only" in params)

    @classmethod
    def for_dialog(cls, call_id: str, local_tag: str, remote_tag: str) -> Replaces:
        """The Replaces a third party sends to our *peer* to replace our dialog with it.

        The peer's local tag is our remote tag (RFC 3891 §3), so ``to_tag``
        is ``remote_tag`` and ``from_tag`` is ``local_tag``.
        """
        return cls(call_id, remote_tag, local_tag)

    def __str__(self) -> str:
        text = f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}"
        return text + ";early-only" if self.early_only else text


def replaces_of_uri_header(value: str) -> Replaces:
    """The Replaces a Refer-To URI carries as its ``Replaces`` header, percent-decoded once more if needed.

    Raises:
        ParseError: it is not a valid Replaces value.
    """
    if "%" in value:
        value = unquote(value)
    return Replaces.parse(value)


__all__ = ["SUBSCRIPTION_STATES", "EventHeader", "Replaces", "SubscriptionState", "replaces_of_uri_header"]
