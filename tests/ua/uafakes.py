"""Fakes for the user-API tests: a ``task.Clock`` with ``listenUDP`` and a registrar played by hand.

:class:`UDPClock` is a ``task.Clock`` that also provides ``listenUDP``: the
protocol gets a transport that records what it writes.  Tests play the
registrar by parsing what the UA wrote and feeding responses back through
``datagramReceived``; time moves only with ``clock.advance``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address

from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.sip.message import Request, Response, parse_message
from txsipua.ua.account import Account
from txsipua.ua.useragent import UserAgent

REGISTRAR = ("198.51.100.5", 5060)
REALM = "voip.example.net"


class FakeUDPPort:
    """A listening UDP port that records writes instead of sending."""

    def __init__(self, protocol: Any, host: str, port: int) -> None:
        self.protocol = protocol
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self._host = IPv4Address("UDP", host, port)

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))

    def getHost(self) -> IPv4Address:  # noqa: N802 - Twisted's name
        return self._host

    def stopListening(self) -> None:  # noqa: N802 - Twisted's name
        self.protocol.doStop()


class UDPClock(task.Clock):
    """A ``task.Clock`` with ``listenUDP`` (IReactorTime + enough of IReactorUDP)."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakeUDPPort] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> FakeUDPPort:  # noqa: N802,N803
        fake = FakeUDPPort(protocol, interface, port or 40000 + len(self.ports))
        self.ports.append(fake)
        protocol.makeConnection(fake)
        return fake


def alice(password: str = "alice-secret") -> Account:
    creds = InMemoryCredentials([Credential(realm=REALM, username="alice-auth", password=password)])
    return Account(user="alice", domain="example.com", credentials=creds,
                   registrar=f"sip:{REGISTRAR[0]}:{REGISTRAR[1]}")


def sent(ua: UserAgent) -> list[Request | Response]:
    """Everything the UA wrote so far, parsed."""
    return [parse_message(data) for data, _ in ua.reactor.ports[0].written]


def requests(ua: UserAgent, method: str) -> list[Request]:
    return [m for m in sent(ua) if isinstance(m, Request) and m.method == method]


def reply(ua: UserAgent, request: Request, status: int, headers: list[tuple[str, str]] | None = None,
          response: Response | None = None) -> None:
    """Feed a response to ``request`` into the UA, as if from the registrar."""
    if response is None:
        h = [("Via", v) for v in request.headers.get_all("Via")]
        to = request.headers.get("To") or ""
        h += [("From", request.headers.get("From") or ""), ("To", to + ";tag=reg1"),
              ("Call-ID", request.call_id), ("CSeq", str(request.cseq))]
        response = Response(status, None, h + (headers or []))
    ua.protocol.datagramReceived(response.to_bytes(), REGISTRAR)
