"""The registrar/proxy on UDP: a real reactor on 127.0.0.1, and a task.Clock for its timer."""

from __future__ import annotations

import socket
from typing import Any

import pytest_twisted
from twisted.internet import task

from txsipua.auth.challenge import DigestAuthorization, parse_challenges
from txsipua.auth.digest import compute_ha1, compute_response
from txsipua.server.listen import ProxyProtocol, listen_proxy
from txsipua.server.proxy import BindingExpired, Handled, ProxyRegistrar
from txsipua.sip.message import Request, Response, parse_message

DOMAIN = "example.com"
REALM = "voip.example.net"
USERS = {"alice-auth": ("alice-pw", "alice")}
SECRET = b"proxy-protocol-test-secret-0123"


def make_core(address: tuple[str, int] = ("127.0.0.1", 0)) -> ProxyRegistrar:
    """A registrar for example.com, realm voip.example.net."""
    return ProxyRegistrar(address, DOMAIN, REALM, USERS, SECRET)


def register(local: tuple[str, int], cseq: int = 1, expires: int = 300) -> Request:
    """A REGISTER for sip:alice@example.com whose Contact is ``local``."""
    return Request("REGISTER", f"sip:{DOMAIN}", [
        ("Via", f"SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bKudp{cseq};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:alice@{DOMAIN}>;tag=udp-1"),
        ("To", f"<sip:alice@{DOMAIN}>"),
        ("Call-ID", "udp-reg@127.0.0.1"),
        ("CSeq", f"{cseq} REGISTER"),
        ("Contact", f"<sip:alice@{local[0]}:{local[1]}>"),
        ("Expires", str(expires)),
    ])


def with_credentials(request: Request, challenge: Response, password: str = "alice-pw") -> Request:
    """The REGISTER retried with an Authorization answering ``challenge``."""
    (ch,) = parse_challenges(challenge.headers.get("WWW-Authenticate") or "")
    ha1 = compute_ha1(ch.algorithm, "alice-auth", ch.realm, password)
    retry = register(_local(request), cseq=request.cseq.seq + 1, expires=request.expires or 0)
    digest = compute_response(algorithm=ch.algorithm, ha1=ha1, nonce=ch.nonce, method="REGISTER",
                              uri=retry.uri_text, qop="auth", cnonce="c0ffee", nc="00000001")
    retry.headers.add("Authorization", DigestAuthorization(
        username="alice-auth", realm=ch.realm, nonce=ch.nonce, uri=retry.uri_text,
        response=digest, algorithm=ch.algorithm, cnonce="c0ffee", nc="00000001", qop="auth",
    ).to_header_value())
    return retry


def _local(request: Request) -> tuple[str, int]:
    via = request.top_via
    assert via.port is not None
    return (via.host, via.port)


def _receive(sock: socket.socket, reactor: Any, timeout: float = 10.0) -> Any:
    """A Deferred firing with the next datagram on the non-blocking ``sock``."""
    deadline = reactor.seconds() + timeout

    def poll() -> Any:
        try:
            return sock.recvfrom(65535)
        except BlockingIOError:
            if reactor.seconds() > deadline:
                raise TimeoutError("no datagram from the proxy") from None
            return task.deferLater(reactor, 0.005, poll)

    return task.deferLater(reactor, 0, poll)


@pytest_twisted.inlineCallbacks
def test_register_over_real_udp() -> Any:
    """A plain UDP socket registers through 401 to 200 with the proxy on 127.0.0.1."""
    from twisted.internet import reactor

    core = make_core()
    seen: list[Any] = []
    _protocol, port = listen_proxy(reactor, core, on_event=seen.append)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        local = sock.getsockname()
        proxy_address = ("127.0.0.1", port.getHost().port)
        assert core.address == proxy_address  # port 0 was resolved
        first = register(local)
        sock.sendto(first.to_bytes(), proxy_address)
        data, source = yield _receive(sock, reactor)
        assert source == proxy_address
        challenge = parse_message(data)
        assert isinstance(challenge, Response) and challenge.status == 401
        assert challenge.top_via.rport == local[1]  # RFC 3581: filled in
        sock.sendto(with_credentials(first, challenge).to_bytes(), proxy_address)
        data, _ = yield _receive(sock, reactor)
        final = parse_message(data)
        assert isinstance(final, Response) and final.status == 200
        (contact,) = final.contact
        assert contact.uri.port == local[1] and contact.params["expires"] == "300"
        summaries = [e.summary for e in seen if isinstance(e, Handled)]
        assert summaries[0] == "REGISTER sip:example.com"
        assert "200 OK (2 REGISTER)" in summaries
    finally:
        sock.close()
        yield port.stopListening()


class _Transport:
    """Stands in for a UDP transport: records what is written."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))


def test_binding_expiry_fires_from_the_reactor_clock() -> None:
    """The protocol arms one delayed call for the core's timer; the binding expires on time."""
    clock = task.Clock()
    core = make_core(("127.0.0.1", 5060))
    events: list[Any] = []
    protocol = ProxyProtocol(core, clock, on_event=events.append)
    transport = _Transport()
    protocol.makeConnection(transport)  # type: ignore[arg-type]
    alice = ("127.0.0.1", 40000)
    first = register(alice, expires=120)
    protocol.datagramReceived(first.to_bytes(), alice)
    challenge = parse_message(transport.written[-1][0])
    assert isinstance(challenge, Response)
    protocol.datagramReceived(with_credentials(challenge=challenge, request=first).to_bytes(), alice)
    final = parse_message(transport.written[-1][0])
    assert isinstance(final, Response) and final.status == 200
    assert transport.written[-1][1] == alice
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(119.0)
    assert not any(isinstance(e, BindingExpired) for e in events)
    clock.advance(1.0)
    assert [e.binding.aor for e in events if isinstance(e, BindingExpired)] == ["sip:alice@example.com"]
    assert clock.getDelayedCalls() == []
    protocol.doStop()
    assert core.bindings("sip:alice@example.com", clock.seconds()) == []


def test_events_are_logged_without_a_handler() -> None:
    """With no on_event, events go to twisted.logger and the core is drained."""
    from twisted.logger import globalLogPublisher

    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        clock = task.Clock()
        core = make_core(("127.0.0.1", 5060))
        protocol = ProxyProtocol(core, clock)
        protocol.makeConnection(_Transport())  # type: ignore[arg-type]
        protocol.datagramReceived(b"garbage", ("127.0.0.1", 40000))
        protocol.datagramReceived(register(("127.0.0.1", 40000)).to_bytes(), ("127.0.0.1", 40000))
    finally:
        globalLogPublisher.removeObserver(logged)
    formats = [e.get("log_format", "") for e in logged]
    assert any("dropped" in f for f in formats)
    assert any("{summary}" in f for f in formats)
    assert core.next_event() is None
