"""The digest-leak guard on loopback, against scripted raw UDP peers (issue 12).

Each peer is a bare UDP socket on 127.0.0.1 that answers what it receives as its
script says and keeps every datagram, so the tests assert on exactly what
reached each party: credentials go to a transport address (host, port,
transport) the account trusts for their realm, or nowhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted
from loopback import FAST, Zone, eventually, settled, within
from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import globalLogPublisher
from twisted.names import dns

from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.server import DigestServer
from txsipua.errors import AuthenticationError, TransportError
from txsipua.net.resolve import SIPResolver
from txsipua.sip.message import Request, Response, parse_message
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

PROVIDER = "provider.example.net"
AUTH_FIELDS = ("Authorization", "Proxy-Authorization")

Script = Callable[["Peer", Request], list[Response]]


def reply(request: Request, status: int, *, headers: list[tuple[str, str]] = ()) -> Response:  # type: ignore[assignment]
    """A response to ``request`` (RFC 3261 §8.2.6): Via, From, To (tagged), Call-ID, CSeq copied."""
    fields = [("Via", v) for v in request.headers.get_all("Via")]
    fields.append(("From", request.headers.get("From") or ""))
    to = request.headers.get("To") or ""
    fields.append(("To", to if ";tag=" in to or status == 100 else f"{to};tag={secrets.token_hex(4)}"))
    fields += [("Call-ID", request.call_id), ("CSeq", request.headers.get("CSeq") or "")]
    return Response(status, None, fields + list(headers))


def challenged(server: DigestServer, request: Request, now: float) -> Response:
    """The challenge of ``server`` with the response fields of :func:`reply`."""
    response = server.challenge(request, now)
    answer = reply(request, response.status)
    for name in ("WWW-Authenticate", "Proxy-Authenticate"):
        for value in response.headers.get_all(name):
            answer.headers.add(name, value)
    return answer


class Peer(DatagramProtocol):
    """A raw UDP peer answering requests with ``script`` and keeping every request received."""

    def __init__(self, reactor: Any, script: Script) -> None:
        self.reactor = reactor
        self.script = script
        self.received: list[Request] = []
        self.port: Any = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port.getHost().port)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        message = parse_message(datagram)
        if not isinstance(message, Request):
            return
        self.received.append(message)
        assert self.transport is not None
        for response in self.script(self, message):
            self.transport.write(response.to_bytes(), addr)  # type: ignore[call-arg]

    def got(self, method: str) -> list[Request]:
        return [r for r in self.received if r.method == method]

    def credentials_seen(self) -> list[tuple[str, str]]:
        return [(r.method, n) for r in self.received for n in AUTH_FIELDS if n in r.headers]


@pytest.fixture
def peers(reactor: Any) -> Any:
    """``peers(script)`` starts a :class:`Peer` on 127.0.0.1:0; all are closed at teardown."""
    started: list[Peer] = []

    def make(script: Script) -> Peer:
        peer = Peer(reactor, script)
        peer.port = reactor.listenUDP(0, peer, interface="127.0.0.1")
        started.append(peer)
        return peer

    yield make
    for peer in started:
        pytest_twisted.blockon(defer.maybeDeferred(peer.port.stopListening))


def answering(contact_port: Callable[[], int], record_route: str | None = None,
              challenge: DigestServer | None = None, bye_challenge: DigestServer | None = None) -> Script:
    """A script: INVITE -> (407 first if ``challenge``) 200; BYE -> (401/407 if ``bye_challenge``) 200."""

    def script(peer: Peer, request: Request) -> list[Response]:
        now = peer.reactor.seconds()
        if request.method == "INVITE":
            if challenge is not None and challenge.credentials_header not in request.headers:
                return [challenged(challenge, request, now)]
            extra = [("Contact", f"<sip:peer@127.0.0.1:{contact_port()}>")]
            if record_route:
                extra.append(("Record-Route", record_route))
            return [reply(request, 200, headers=extra)]
        if request.method in ("BYE", "REGISTER", "MESSAGE", "OPTIONS"):
            if bye_challenge is not None and bye_challenge.credentials_header not in request.headers:
                return [challenged(bye_challenge, request, now)]
            return [reply(request, 200)]
        return []  # ACK

    return script


def provider_account(**where: str) -> Account:
    creds = InMemoryCredentials([Credential(realm=PROVIDER, username="alice", password="pw")])
    return Account(user="alice", domain="example.com", credentials=creds, **where)


@defer.inlineCallbacks
def started_ua(reactor: Any, account: Account, **kw: Any) -> Any:
    ua = UserAgent(reactor, Configuration(timers=FAST, media=False), account,
                   UDPTransport(reactor, "127.0.0.1", 0), **kw)
    yield ua.start()
    return ua


@pytest_twisted.inlineCallbacks
def test_bye_challenged_by_other_port_on_registrar_ip(reactor: Any, peers: Any) -> Any:
    """Registrar 127.0.0.1:R; a direct call to mallory on 127.0.0.1:M challenges the BYE: nothing sent."""
    registrar = peers(lambda peer, request: [])
    mallory: Peer = peers(answering(lambda: mallory.address[1],
                                    bye_challenge=DigestServer(PROVIDER, b"m" * 32)))
    alice = yield started_ua(reactor, provider_account(registrar=f"sip:127.0.0.1:{registrar.address[1]}"))
    try:
        call = yield within(reactor, alice.call(f"sip:bob@127.0.0.1:{mallory.address[1]}"))
        reason = yield within(reactor, call.hangup())
        assert reason
        assert isinstance(call.bye_error, AuthenticationError) and call.bye_error.kind == "guard"
        assert len(mallory.got("BYE")) == 1
        assert mallory.credentials_seen() == []
        yield settled(reactor, alice)
    finally:
        yield alice.stop()


@pytest_twisted.inlineCallbacks
def test_registrar_by_name_trusted_when_bye_reaches_it_by_ip(reactor: Any, peers: Any) -> Any:
    """registrar = sip:registrar.test (SRV -> 127.0.0.1:R); the callee's 200 Record-Routes through
    <sip:127.0.0.1:R;lr>: the BYE reaches the registrar by its IP, is challenged there and answered."""
    registrar: Peer = peers(answering(lambda: 0, bye_challenge=DigestServer(PROVIDER, b"r" * 32)))
    rr = f"<sip:127.0.0.1:{registrar.address[1]};lr>"
    callee: Peer = peers(answering(lambda: callee.address[1], record_route=rr))
    zone = Zone({
        ("_sip._udp.registrar.test", dns.SRV): [dns.Record_SRV(10, 10, registrar.address[1], "host.registrar.test")],
        ("host.registrar.test", dns.A): [dns.Record_A("127.0.0.1")],
    })
    alice = yield started_ua(reactor, provider_account(registrar="sip:registrar.test"),
                             resolver=SIPResolver(zone))
    try:
        yield within(reactor, alice.register(60))
        assert [m for m, _ in registrar.credentials_seen()] == ["REGISTER"]
        call = yield within(reactor, alice.call(f"sip:bob@127.0.0.1:{callee.address[1]}"))
        yield within(reactor, call.hangup())
        assert call.bye_error is None
        byes = registrar.got("BYE")
        assert len(byes) == 2 and "Authorization" in byes[1].headers
        assert callee.credentials_seen() == []
        yield settled(reactor, alice)
    finally:
        yield alice.stop()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("through_proxy", [False, True])
def test_2xx_ack_does_not_leak_proxy_credentials(reactor: Any, peers: Any, through_proxy: bool) -> Any:
    """Alice calls through her provider's proxy P, which answers 407; the 200 names the callee C.

    No Record-Route: the ACK goes straight to C without the Proxy-Authorization, and a warning
    is logged.  Record-Route through P: the ACK goes to P and repeats it (RFC 3261 §13.2.2.4).
    """
    callee: Peer = peers(answering(lambda: 0))
    proxy: Peer = peers(lambda peer, request: [])
    rr = f"<sip:127.0.0.1:{proxy.address[1]};lr>" if through_proxy else None
    proxy.script = answering(lambda: callee.address[1], record_route=rr,
                             challenge=DigestServer(PROVIDER, b"p" * 32, proxy_role=True))
    proxy_uri = f"sip:127.0.0.1:{proxy.address[1]}"
    warnings: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") is not None and event["log_level"].name == "warn" and "warning" in event:
            warnings.append(str(event["warning"]))

    globalLogPublisher.addObserver(observe)
    alice = yield started_ua(reactor, provider_account(registrar=proxy_uri, outbound_proxy=proxy_uri))
    try:
        call = yield within(reactor, alice.call("sip:bob@example.com"))
        invites = proxy.got("INVITE")
        assert len(invites) == 2 and "Proxy-Authorization" in invites[1].headers
        if through_proxy:
            yield eventually(reactor, lambda: len(proxy.got("ACK")) == 2, 2.0, "the 2xx ACK at the proxy")
            ack = proxy.got("ACK")[-1]
            assert ack.headers.get("Proxy-Authorization") == invites[1].headers.get("Proxy-Authorization")
            assert callee.received == [] and warnings == []
        else:
            yield eventually(reactor, lambda: len(callee.got("ACK")) == 1, 2.0, "the 2xx ACK at the callee")
            assert callee.credentials_seen() == []
            assert len(warnings) == 1 and PROVIDER in warnings[0] and "left out" in warnings[0]
        yield within(reactor, call.hangup())
        assert callee.credentials_seen() == []
        yield settled(reactor, alice)
    finally:
        globalLogPublisher.removeObserver(observe)
        yield alice.stop()


@pytest_twisted.inlineCallbacks
def test_pre_emptive_credentials_not_offered_to_other_port(reactor: Any, peers: Any) -> Any:
    """After one 407 from the provider (127.0.0.1:P), a MESSAGE to 127.0.0.1:Q carries nothing."""
    provider: Peer = peers(answering(lambda: 0, bye_challenge=DigestServer(PROVIDER, b"p" * 32, proxy_role=True)))
    other: Peer = peers(answering(lambda: 0))
    alice = yield started_ua(reactor, provider_account(registrar=f"sip:127.0.0.1:{provider.address[1]}"))
    try:
        response = yield within(reactor, alice.message(f"sip:svc@127.0.0.1:{provider.address[1]}", "one"))
        assert response.status == 200
        response = yield within(reactor, alice.message(f"sip:svc@127.0.0.1:{provider.address[1]}", "two"))
        assert response.status == 200
        assert [m for m, _ in provider.credentials_seen()] == ["MESSAGE", "MESSAGE"]
        assert len(provider.got("MESSAGE")) == 3  # the second one was pre-emptive
        response = yield within(reactor, alice.message(f"sip:svc@127.0.0.1:{other.address[1]}", "three"))
        assert response.status == 200
        assert other.credentials_seen() == []
        yield settled(reactor, alice)
    finally:
        yield alice.stop()


@pytest_twisted.inlineCallbacks
def test_sips_target_over_udp_is_refused_before_sending(reactor: Any, peers: Any) -> Any:
    """sips:bob@127.0.0.1:C on a UDP user agent: TransportError naming sips and UDP; nothing sent."""
    callee: Peer = peers(answering(lambda: callee.address[1]))
    alice = yield started_ua(reactor, provider_account(registrar="sip:127.0.0.1:9"))
    try:
        with pytest.raises(TransportError) as info:
            yield within(reactor, alice.call(f"sips:bob@127.0.0.1:{callee.address[1]}"))
        assert "sips" in str(info.value) and "UDP" in str(info.value)
        with pytest.raises(TransportError):
            yield within(reactor, alice.message(f"sips:bob@127.0.0.1:{callee.address[1]}", "hi"))
        assert callee.received == [] and alice.calls == set()
        yield settled(reactor, alice)
    finally:
        yield alice.stop()
