"""UserAgent over TCP and TLS, and with host names located through RFC 3263 (loopback only)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from loopback import Zone
from twisted.internet import defer, reactor
from twisted.names import dns

from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.server import DigestServer
from txsipua.core.transaction import Timers
from txsipua.errors import ResolutionError
from txsipua.net.resolve import SIPResolver
from txsipua.sip.message import parse_message
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.cred import InMemoryHA1Store, make_portal
from txsipua.ua.transports import UDPTransport, transport_for
from txsipua.ua.useragent import UserAgent

FAST = Timers(t1=0.02, t2=0.16, t4=0.2, d=0.2)
REALM = "callee.example.org"


def _transport(name: str, tls_server: Any = None, tls_client: Any = None) -> Any:
    """The transport factory on 127.0.0.1:0 (tls_server: our certificate; tls_client: how peers are verified)."""
    return transport_for(name, reactor, "127.0.0.1", 0, cert=tls_server, ca=tls_client)


def _callee(transport: str, tls_server: Any = None, tls_client: Any = None, **kw: Any) -> UserAgent:
    store = InMemoryHA1Store()
    store.add_password("alice-auth", REALM, "pw")
    bob = UserAgent(reactor, Configuration(timers=FAST), None, _transport(transport, tls_server, tls_client),
                    authenticator=DigestServer(REALM, b"k" * 32), portal=make_portal(store), **kw)
    bob.auto_answer = True
    return bob


def _caller(transport: str, registrar: str, wire: list[bytes], tls_server: Any = None, tls_client: Any = None,
            **kw: Any) -> UserAgent:
    account = Account(
        user="alice", domain="example.com", registrar=registrar,
        credentials=InMemoryCredentials([Credential(realm=REALM, username="alice-auth", password="pw")]),
    )
    return UserAgent(reactor, Configuration(timers=FAST), account, _transport(transport, tls_server, tls_client),
                     trace=lambda d, data, peer: wire.append(data) if d == "send" else None, **kw)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("transport", ["TCP", "TLS"])
def test_challenged_call_over_a_stream(transport: str) -> Any:
    """A 401-challenged call with media over TCP and TLS: Via and Contact name the transport."""
    kw: dict[str, Any] = {}
    ckw: dict[str, Any] = {}
    if transport == "TLS":
        pytest.importorskip("OpenSSL")
        from txsipua.testing.tls import self_signed

        server, client = self_signed()
        kw = {"tls_server": server, "tls_client": client}
        ckw = dict(kw)
    bob = _callee(transport, **kw)
    host, port = yield bob.start()
    scheme = "sips" if transport == "TLS" else "sip"
    wire: list[bytes] = []
    alice = _caller(transport, f"{scheme}:{host}:{port};transport=tcp", wire, **ckw)
    yield alice.start()
    try:
        call = yield alice.call(f"{scheme}:bob@{host}:{port};transport=tcp")
        assert call.media_params is not None
        yield call.hangup()
        sent = [parse_message(d) for d in wire]
        requests = [m for m in sent if m.is_request]
        methods = [m.method for m in requests]  # type: ignore[union-attr]
        # a 2xx the callee retransmitted before our ACK reached it (§13.3.1.4: over streams too,
        # at the fast test timers) is ACKed again: the same ACK, one more time
        repeated = [i for i in range(1, len(methods)) if methods[i] == methods[i - 1] == "ACK"]
        for i in repeated:
            assert requests[i].cseq == requests[i - 1].cseq and requests[i].call_id == requests[i - 1].call_id
        methods = [m for i, m in enumerate(methods) if i not in repeated]
        # the callee's 180 is reliable (use_100rel, RFC 3262): PRACKed in its early dialog
        assert methods == ["INVITE", "ACK", "INVITE", "PRACK", "ACK", "BYE"]
        assert {m.top_via.transport for m in sent} == {transport}
        contact = sent[0].headers.get("Contact") or ""
        if transport == "TLS":  # sips: means TLS; transport=tls is deprecated (RFC 5630 §3.1.3)
            assert contact.startswith("<sips:") and "transport=" not in contact
        else:
            assert f"transport={transport.lower()}" in contact
    finally:
        yield alice.stop()
        yield bob.stop()


@pytest_twisted.inlineCallbacks
def test_names_are_located_with_srv_records() -> Any:
    """sip:bob@voip.example.test reaches 127.0.0.1:PORT through an SRV record (RFC 3263 §4.2)."""
    bob = _callee("UDP")
    host, port = yield bob.start()
    zone = Zone({
        ("_sip._udp.voip.example.test", dns.SRV): [dns.Record_SRV(10, 10, port, "pbx.voip.example.test")],
        ("pbx.voip.example.test", dns.A): [dns.Record_A(host)],
    })
    wire: list[bytes] = []
    alice = _caller("UDP", "sip:voip.example.test", wire, resolver=SIPResolver(zone))
    account = alice.require_account()
    account.credentials.credentials_for(REALM)  # the realm's credentials exist
    yield alice.start()
    try:
        call = yield alice.call("sip:bob@voip.example.test")
        yield call.hangup()
        assert parse_message(wire[0]).uri_text == "sip:bob@voip.example.test"  # type: ignore[union-attr]
    finally:
        yield alice.stop()
        yield bob.stop()


@pytest_twisted.inlineCallbacks
def test_unknown_name_fails_with_resolution_error() -> Any:
    """A name no record answers for fails the call with ResolutionError, nothing sent."""
    wire: list[bytes] = []
    alice = _caller("UDP", "sip:127.0.0.1:9", wire, resolver=SIPResolver(Zone({})))
    yield alice.start()
    try:
        with pytest.raises(ResolutionError):
            yield alice.call("sip:bob@nowhere.example.test")
        assert wire == [] and not alice.calls
    finally:
        yield alice.stop()


@pytest_twisted.inlineCallbacks
def test_datagrams_above_8_kib_are_read_whole() -> Any:
    """A 20 KB OPTIONS (a big body) is read whole over UDP and answered 200, not cut at 8192 bytes."""
    import socket

    bob = UserAgent(reactor, Configuration(timers=FAST, media=False), None, UDPTransport(reactor, "127.0.0.1", 0))
    host, port = yield bob.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    me = sock.getsockname()
    body = b"x" * 20000
    msg = (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me[0]}:{me[1]};branch=z9hG4bKbig1\r\n"
        f"From: <sip:probe@example.com>;tag=1\r\nTo: <sip:{host}:{port}>\r\nCall-ID: big-1\r\n"
        f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        sock.sendto(msg, (host, port))
        answer = b""
        for _ in range(100):
            try:
                answer = sock.recv(65535)
                break
            except BlockingIOError:
                yield task_sleep(0.02)
        assert answer.startswith(b"SIP/2.0 200 "), answer[:80]
    finally:
        sock.close()
        yield bob.stop()


def task_sleep(seconds: float) -> defer.Deferred[None]:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


def _zone_for(host: str, port: int, *names: str) -> Zone:
    records: dict[tuple[str, int], list[Any]] = {}
    for name in names:
        records[(name, dns.A)] = [dns.Record_A(host)]
    return Zone(records)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize(("cert_for", "ok"), [("sip.test", True), ("127.0.0.1", False)])
def test_tls_verifies_the_sip_domain_not_the_address(cert_for: str, ok: bool) -> Any:
    """sips:bob@sip.test located to 127.0.0.1: the certificate must name sip.test (RFC 5922 §7).

    A certificate valid only for 127.0.0.1 fails the call at once with a transport error.
    """
    pytest.importorskip("OpenSSL")
    from twisted.internet import ssl

    from txsipua.errors import TransportError
    from txsipua.testing.tls import self_signed_pem

    cert, key = self_signed_pem(cert_for)
    server = ssl.PrivateCertificate.loadPEM(cert + key).options()
    root = ssl.Certificate.loadPEM(cert)
    bob = _callee("TLS", tls_server=server)
    host, port = yield bob.start()
    wire: list[bytes] = []
    alice = _caller("TLS", f"sips:sip.test:{port}", wire,
                    tls_client=lambda name: ssl.optionsForClientTLS(name, trustRoot=root),
                    resolver=SIPResolver(_zone_for(host, port, "sip.test"), transports=("TLS",)))
    yield alice.start()
    try:
        start = reactor.seconds()
        if ok:
            call = yield alice.call(f"sips:bob@sip.test:{port}")
            yield call.hangup()
        else:
            with pytest.raises(TransportError):
                yield alice.call(f"sips:bob@sip.test:{port}")
            assert reactor.seconds() - start < 5  # at once, not after Timer B
    finally:
        yield alice.stop()
        yield bob.stop()


@pytest_twisted.inlineCallbacks
def test_in_dialog_next_hop_named_by_the_peer_is_located() -> Any:
    """The callee's Contact names a host (sip.test): the BYE goes there once located (RFC 3263)."""
    bob = _callee("UDP")
    host, port = yield bob.start()
    bob.core.context.contact_value = lambda: f"<sip:bob@sip.test:{port}>"  # type: ignore[method-assign]
    wire: list[bytes] = []
    alice = _caller("UDP", f"sip:{host}:{port}", wire, resolver=SIPResolver(_zone_for(host, port, "sip.test")))
    yield alice.start()
    try:
        call = yield alice.call(f"sip:bob@{host}:{port}")
        reason = yield call.hangup()
        assert reason == "hangup" and call.bye_error is None
        bye = [parse_message(d) for d in wire if d.startswith(b"BYE ")]
        assert bye and bye[0].uri_text == f"sip:bob@sip.test:{port}"  # type: ignore[union-attr]
    finally:
        yield alice.stop()
        yield bob.stop()


@pytest_twisted.inlineCallbacks
def test_tcp_to_a_name_with_a_port() -> Any:
    """--transport tcp with sip:bob@sip.test:PORT (no transport parameter) uses TCP."""
    bob = _callee("TCP")
    host, port = yield bob.start()
    wire: list[bytes] = []
    alice = _caller("TCP", f"sip:sip.test:{port}", wire,
                    resolver=SIPResolver(_zone_for(host, port, "sip.test"), transports=("TCP",)))
    yield alice.start()
    try:
        call = yield alice.call(f"sip:bob@sip.test:{port}")
        yield call.hangup()
    finally:
        yield alice.stop()
        yield bob.stop()


def test_registrar_maddr_is_trusted_by_the_guard() -> None:
    """registrar = sip:registrar.test;maddr=127.0.0.1: the guard trusts where it really is."""
    account = Account(user="a", domain="example.com", registrar="sip:registrar.test:5080;maddr=127.0.0.1")
    assert set(account.trusted_hosts) == {"registrar.test", "127.0.0.1"}


class _Silent:
    """A UDP peer that answers an INVITE (180 or 200) and then ignores everything."""

    def __init__(self, status: int, contact_host: str = "127.0.0.1") -> None:
        import socket as _s

        self.sock = _s.socket(_s.AF_INET, _s.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.status = status
        self.contact_host = contact_host

    def poll(self) -> None:
        try:
            data, source = self.sock.recvfrom(65535)
        except BlockingIOError:
            return
        msg = parse_message(data)
        if getattr(msg, "method", None) != "INVITE":
            return
        h = [(n, v) for n, v in msg.headers.items() if n in ("Via", "From", "Call-ID", "CSeq")]
        h.append(("To", (msg.headers.get("To") or "") + ";tag=silent"))
        h.append(("Contact", f"<sip:peer@{self.contact_host}:{self.port}>"))
        from txsipua.sip.message import Response

        self.sock.sendto(Response(self.status, None, h).to_bytes(), source)


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("status", [180, 200])
def test_stop_grace_still_ends_calls(status: int) -> Any:
    """stop(grace) with a peer ignoring our BYE/CANCEL: the call's Deferreds fire, nothing leaks."""
    from twisted.internet import task

    peer = _Silent(status)
    poller = task.LoopingCall(peer.poll)
    poller.start(0.01)
    alice = _caller("UDP", "sip:127.0.0.1:9", [])
    yield alice.start()
    try:
        call = alice.place_call(f"sip:peer@127.0.0.1:{peer.port}")
        for _ in range(100):
            if (status == 200 and call.answered.called) or (status == 180 and call.state.value == "proceeding"):
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        ended: list[Any] = []
        call.ended.addBoth(ended.append)
        call.answered.addErrback(lambda f: None)
        yield alice.stop(grace=0.3)
        assert ended and call.bye_error is not None or status == 180 and ended
        assert alice.core.session_count == 0 and not alice.calls
        assert alice.core.layer.transaction_count == 0
    finally:
        poller.stop()
        peer.sock.close()


@pytest_twisted.inlineCallbacks
def test_hangup_to_an_unlocatable_contact_cleans_up() -> Any:
    """The peer's Contact names a host nobody can locate: hangup() ends the call with bye_error, no leak."""
    from twisted.internet import task

    peer = _Silent(200, contact_host="peer.invalid")
    poller = task.LoopingCall(peer.poll)
    poller.start(0.01)
    alice = _caller("UDP", "sip:127.0.0.1:9", [])
    yield alice.start()
    try:
        call = yield alice.call(f"sip:peer@127.0.0.1:{peer.port}")
        reason = yield call.hangup()
        assert reason == "hangup" and call.bye_error is not None
        assert alice.core.session_count == 0 and not alice.calls
    finally:
        poller.stop()
        peer.sock.close()
        yield alice.stop()


@pytest_twisted.inlineCallbacks
def test_tls_connection_is_not_reused_for_another_name() -> Any:
    """sip.test and other.test share an address; the certificate names sip.test only.

    After a request to sip.test opened a verified connection, a call to other.test must not
    ride on it: a new connection verifies other.test and fails (TransportError), no credentials leave.
    """
    pytest.importorskip("OpenSSL")
    from twisted.internet import ssl

    from txsipua.errors import TransportError
    from txsipua.testing.tls import self_signed_pem

    cert, key = self_signed_pem("sip.test")
    server = ssl.PrivateCertificate.loadPEM(cert + key).options()
    root = ssl.Certificate.loadPEM(cert)
    bob = _callee("TLS", tls_server=server)
    host, port = yield bob.start()
    wire: list[bytes] = []
    alice = _caller("TLS", f"sips:other.test:{port}", wire,
                    tls_client=lambda name: ssl.optionsForClientTLS(name, trustRoot=root),
                    resolver=SIPResolver(_zone_for(host, port, "sip.test", "other.test"), transports=("TLS",)))
    yield alice.start()
    try:
        response = yield alice.options(f"sips:bob@sip.test:{port}")
        assert response.status == 200
        with pytest.raises(TransportError):
            yield alice.call(f"sips:bob@other.test:{port}")
        invites = [parse_message(d) for d in wire if d.startswith(b"INVITE ")]
        assert invites and all("Authorization" not in m.headers for m in invites)
    finally:
        yield alice.stop()
        yield bob.stop()
