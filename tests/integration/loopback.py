"""Helpers for the loopback integration tests: a real reactor, real UDP sockets on 127.0.0.1.

Every party binds port 0 on 127.0.0.1.  The registrar/proxy is the sans-IO
:class:`~txsipua.testing.registrar.ProxyRegistrar` driven by
:class:`~txsipua.net.driver.SIPDatagramProtocol`, wired the way ``txsipua
demo`` wires it.  User agents run with short RFC 3261 timers (:data:`FAST`)
so that transactions end within about a second and leak checks stay fast.

Every datagram each party sends or receives is kept by a :class:`Wire`, so a
test can assert on exactly what went over the network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer

from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.core.transaction import Timers
from txsipua.errors import SIPError
from txsipua.net.driver import SIPDatagramProtocol
from txsipua.sip.message import Request, Response, parse_message
from txsipua.testing.registrar import ProxyRegistrar
from txsipua.ua.account import Account
from txsipua.ua.useragent import UserAgent

DOMAIN = "example.com"
REALM = "voip.example.net"
USERS = {
    "alice-auth": ("alice-secret", "alice"),
    "bob-auth": ("bob-secret", "bob"),
    "carol-auth": ("carol-secret", "carol"),
}

FAST = Timers(t1=0.02, t2=0.16, t4=0.2, d=0.2)
"""Short RFC 3261 timers: 64*T1 (Timers B, F, H, J) is 1.28 s, Timer D/I/K 0.2 s.

Loopback round trips are well under a millisecond, so T1 = 20 ms only adds a
few absorbed retransmissions when the machine is busy.
"""


@attrs.define
class Wire:
    """Every datagram a party sent or received, parsed (unparsable ones kept as bytes).

    Attributes:
        sent: ``(message, destination)`` in order.
        received: ``(message, source)`` in order.
        raw_received: every datagram received, unparsed.
    """

    sent: list[tuple[Request | Response, tuple[str, int]]] = attrs.Factory(list)
    received: list[tuple[Request | Response, tuple[str, int]]] = attrs.Factory(list)
    raw_received: list[bytes] = attrs.Factory(list)

    def trace(self, direction: str, data: bytes, peer: tuple[str, int]) -> None:
        """A ``TraceCallback`` for :class:`UserAgent` and :class:`SIPDatagramProtocol`."""
        if direction == "recv":
            self.raw_received.append(data)
        try:
            msg = parse_message(data)
        except SIPError:
            return
        (self.sent if direction == "send" else self.received).append((msg, peer))

    def requests_sent(self, method: str) -> list[Request]:
        """Requests of ``method`` sent, retransmissions removed (same branch and CSeq)."""
        seen = set()
        out = []
        for msg, _ in self.sent:
            if isinstance(msg, Request) and msg.method == method:
                key = (msg.top_via.branch, msg.cseq.seq)
                if key not in seen:
                    seen.add(key)
                    out.append(msg)
        return out

    def requests_received(self, method: str) -> list[Request]:
        """Requests of ``method`` received (retransmissions included)."""
        return [m for m, _ in self.received if isinstance(m, Request) and m.method == method]

    def statuses_received(self, method: str) -> list[int]:
        """Statuses of the responses received for ``method``, in order (retransmissions included)."""
        return [m.status for m, _ in self.received if isinstance(m, Response) and m.cseq.method == method]

    def statuses_sent(self, method: str) -> list[int]:
        """Statuses of the responses sent for ``method``, in order."""
        return [m.status for m, _ in self.sent if isinstance(m, Response) and m.cseq.method == method]


@attrs.define
class Proxy:
    """A running :class:`ProxyRegistrar` on 127.0.0.1.

    Attributes:
        core: the sans-IO registrar/proxy.
        protocol: its driver.
        port: the listening port object.
        wire: what it sent and received.
    """

    core: ProxyRegistrar
    protocol: SIPDatagramProtocol
    port: Any
    wire: Wire

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.core.address

    @property
    def uri(self) -> str:
        """``sip:127.0.0.1:PORT``."""
        return f"sip:{self.address[0]}:{self.address[1]}"


def sleep(reactor: Any, seconds: float) -> defer.Deferred[None]:
    """A Deferred firing after ``seconds`` of reactor time."""
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@defer.inlineCallbacks
def eventually(reactor: Any, predicate: Callable[[], bool], timeout: float = 3.0,
               what: str = "condition") -> Any:
    """Wait (reactor time, 10 ms steps) until ``predicate()`` holds; fail after ``timeout`` s."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        yield sleep(reactor, 0.01)


def within(reactor: Any, d: defer.Deferred[Any], timeout: float = 3.0) -> defer.Deferred[Any]:
    """``d`` with a timeout (errbacks with ``defer.TimeoutError`` after ``timeout`` s)."""
    return d.addTimeout(timeout, reactor)


@defer.inlineCallbacks
def settled(reactor: Any, *uas: UserAgent, timeout: float = 3.0) -> Any:
    """Wait until every UA has no live transaction and no live session (no leak)."""
    yield eventually(
        reactor,
        lambda: all(ua.core.layer.transaction_count == 0 and ua.core.session_count == 0 for ua in uas),
        timeout,
        "every transaction and session to end: "
        + ", ".join(f"{ua.core.layer.transaction_count} txn/{ua.core.session_count} sessions" for ua in uas),
    )


def account(user: str, proxy: Proxy | None, *, password: str | None = None,
            realm: str = REALM, **extra: Any) -> Account:
    """An account of example.com whose registrar and outbound proxy is ``proxy``."""
    auth_user = f"{user}-auth"
    creds = InMemoryCredentials([
        Credential(realm=realm, username=auth_user, password=password or USERS[auth_user][0]),
    ])
    where = {"registrar": proxy.uri, "outbound_proxy": proxy.uri} if proxy is not None else {}
    where.update(extra)
    return Account(user=user, domain=DOMAIN, credentials=creds, **where)
