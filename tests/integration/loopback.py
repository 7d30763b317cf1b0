"""Helpers for the loopback integration tests: a real reactor, real UDP sockets on 127.0.0.1.

Every party binds port 0 on 127.0.0.1.  The registrar/proxy is the sans-IO
:class:`~txsipua.server.proxy.ProxyRegistrar` driven by
:class:`~txsipua.net.driver.SIPDatagramProtocol`, wired the way ``txsipua
demo`` wires it.  User agents run with short RFC 3261 timers (:data:`FAST`)
so that transactions end within about a second and leak checks stay fast.

Every datagram each party sends or receives is kept by a :class:`Wire`, so a
test can assert on exactly what went over the network.
"""

from __future__ import annotations

import math
import secrets
import struct
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.names import dns
from twisted.names.common import ResolverBase
from twisted.names.error import DNSNameError

from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.core.transaction import Timers
from txsipua.errors import SIPError
from txsipua.net.driver import SIPDatagramProtocol
from txsipua.server.proxy import ProxyRegistrar
from txsipua.sip.message import Request, Response, parse_message
from txsipua.ua.account import Account
from txsipua.ua.call import IncomingCall
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


def tone(seconds: float, freq: float = 440.0) -> bytes:
    """16-bit little-endian mono PCM at 8000 Hz."""
    n = int(8000 * seconds)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / 8000))) for i in range(n))


class Callee:
    """Bob's side: records every incoming call and does what ``mode`` says with it.

    mode: ``"answer"`` (180 then 200), ``"ring"`` (180 only), ``"reject"`` (486).
    """

    def __init__(self, ua: UserAgent, mode: str = "answer") -> None:
        self.ua = ua
        self.mode = mode
        self.incoming: list[IncomingCall] = []
        self.arrived: defer.Deferred[IncomingCall] = defer.Deferred()
        ua.on_incoming_call = self.on_call

    def on_call(self, incoming: IncomingCall) -> None:
        self.incoming.append(incoming)
        if self.mode == "reject":
            incoming.reject(486)
        else:
            incoming.ring()
            if self.mode == "answer":
                incoming.answer()
        if not self.arrived.called:
            self.arrived.callback(incoming)


@defer.inlineCallbacks
def registered_pair(reactor: Any, proxy: Proxy, make_ua: Any, mode: str = "answer") -> Any:
    """alice and bob, both registered with ``proxy``; bob's :class:`Callee` in ``mode``."""
    alice = yield make_ua(account("alice", proxy))
    bob = yield make_ua(account("bob", proxy))
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    return alice, bob, Callee(bob, mode)


class RawPeer(DatagramProtocol):
    """A bare UDP socket on 127.0.0.1 that sends given bytes and keeps what comes back."""

    def __init__(self) -> None:
        self.wire = Wire()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        self.wire.trace("recv", datagram, (addr[0], addr[1]))

    def send(self, data: bytes, destination: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.write(data, destination)  # type: ignore[call-arg]


def request_bytes(method: str, target: tuple[str, int], source: tuple[str, int], *, to_tag: str | None = None,
                  call_id: str = "stray-1@192.0.2.1", cseq: int = 1, body: bytes = b"") -> bytes:
    """A well-formed request from ``source`` to the UA at ``target``."""
    to = f"<sip:bob@{target[0]}:{target[1]}>" + (f";tag={to_tag}" if to_tag else "")
    headers = [
        ("Via", f"SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bK{secrets.token_hex(6)};rport"),
        ("Max-Forwards", "70"),
        ("From", "<sip:mallory@192.0.2.1>;tag=f1"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:mallory@{source[0]}:{source[1]}>"),
    ]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return Request(method, f"sip:bob@{target[0]}:{target[1]}", headers, body).to_bytes()


class Zone(ResolverBase):
    """An in-memory twisted.names resolver (no query leaves the process)."""

    def __init__(self, records: dict[tuple[str, int], list[Any]]) -> None:
        super().__init__()
        self.records = records

    def _lookup(self, name: Any, cls: int, type: int, timeout: Any) -> defer.Deferred[Any]:
        text = name.decode() if isinstance(name, bytes) else str(name)
        found = self.records.get((text, type))
        if found is None:
            return defer.fail(DNSNameError(text))
        return defer.succeed(([dns.RRHeader(text, type, dns.IN, 60, p) for p in found], [], []))
