"""What the registrar/proxy tells its driver: one event per message handled or dropped.

A ladder printer (``txsipua demo``) or a log (:mod:`txsipua.server.listen`)
reads them from :meth:`~txsipua.server.proxy.ProxyRegistrar.next_event`.
"""

from __future__ import annotations

from typing import Literal

import attrs

from txsipua.auth.challenge import parse_authorization
from txsipua.core.transport import Address
from txsipua.errors import ParseError
from txsipua.server.bindings import BindingExpired
from txsipua.sip.message import Request, Response

__all__ = ["BindingExpired", "Dropped", "Event", "Handled", "PresentedCredentials",
           "presented_credentials", "summary"]


@attrs.frozen
class PresentedCredentials:
    """Credentials a request carried, as the ladder shows them (RFC 3261 §22.2, §22.3).

    Attributes:
        header: ``"Authorization"`` or ``"Proxy-Authorization"``.
        realm: the realm named, ``""`` when the value did not parse.
        username: the auth username, ``""`` when the value did not parse.
    """

    header: str
    realm: str
    username: str

    def __str__(self) -> str:
        if not self.realm and not self.username:
            return f"{self.header}: <unparsable>"
        return f"{self.header}: {self.username}@{self.realm}"


@attrs.frozen
class Handled:
    """One message the server received or sent.

    Attributes:
        direction: ``"in"`` (received) or ``"out"`` (sent).
        summary: a one-line summary: ``"INVITE sip:bob@example.com"`` or
            ``"407 Proxy Authentication Required (1 INVITE)"``.
        message: the parsed message (as received, or as sent).
        peer: the source (``"in"``) or destination (``"out"``) address.
        credentials: the credentials a request carried; ``()`` for responses.
        note: what the server made of it: ``"challenge: no credentials"``,
            ``"forwarded to sip:bob@127.0.0.1:5070"``, ``"403: alice-auth does
            not own sip:bob@example.com"``... ``""`` when there is nothing to add.
    """

    direction: Literal["in", "out"]
    summary: str
    message: Request | Response
    peer: Address
    credentials: tuple[PresentedCredentials, ...] = ()
    note: str = ""


@attrs.frozen
class Dropped:
    """A datagram ignored without an answer.

    Attributes:
        reason: why, in words.
        source: where it came from.
        data: the datagram.
    """

    reason: str
    source: Address
    data: bytes


Event = Handled | Dropped | BindingExpired


def summary(message: Request | Response) -> str:
    """A one-line summary: ``"INVITE sip:bob@example.com"``, ``"200 OK (1 REGISTER)"``."""
    if isinstance(message, Request):
        return f"{message.method} {message.uri_text}"
    try:
        cseq = f" ({message.cseq})"
    except ParseError:
        cseq = ""
    return f"{message.status} {message.reason}{cseq}"


def presented_credentials(request: Request) -> tuple[PresentedCredentials, ...]:
    """The credentials ``request`` carries, in Authorization then Proxy-Authorization order."""
    out = []
    for header in ("Authorization", "Proxy-Authorization"):
        for value in request.headers.get_all(header):
            try:
                auth = parse_authorization(value)
            except ParseError:
                out.append(PresentedCredentials(header, "", ""))
            else:
                out.append(PresentedCredentials(header, auth.realm, auth.username))
    return tuple(out)
