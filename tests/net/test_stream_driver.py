"""SIP over TCP and TLS between two UA cores on 127.0.0.1 (real reactor)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import Factory

from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.digest import compute_ha1
from txsipua.auth.server import DigestServer
from txsipua.core import events as ev
from txsipua.core.transaction import Timers
from txsipua.core.useragent import SessionState, UserAgentCore
from txsipua.net.stream import StreamDriver
from txsipua.sip.message import parse_message
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr
from txsipua.testing.tls import self_signed

REALM = "callee.example.org"
FAST = Timers(t1=0.05, t2=0.4, t4=0.5)


def _pair(transport: str) -> tuple[UserAgentCore, UserAgentCore]:
    creds = InMemoryCredentials([Credential(realm=REALM, username="alice-auth", password="pw")])
    caller = UserAgentCore(local=("127.0.0.1", 0), transport=transport, reliable=True, timers=FAST,
                           digest=DigestClient(creds), contact_user="alice")
    callee = UserAgentCore(local=("127.0.0.1", 0), transport=transport, reliable=True, timers=FAST,
                           authenticator=DigestServer(REALM, b"s" * 32), contact_user="bob")
    return caller, callee


def _wire(core: UserAgentCore, log: list[Any], events: list[Any], tls_client: Any = None) -> StreamDriver:
    ha1 = compute_ha1("MD5", "alice-auth", REALM, "pw")

    def on_event(e: Any) -> None:
        events.append(e)
        if isinstance(e, ev.AuthenticationNeeded):
            core.authentication_result(e, e.credentials.check_ha1(ha1), "alice-auth", reactor.seconds())
        elif isinstance(e, ev.IncomingCall):
            e.session.accept(reactor.seconds(), body=b"v=0\r\n")

    return StreamDriver(reactor, core, on_event, lambda d, data, peer: log.append((d, data)), tls_client=tls_client)


@defer.inlineCallbacks
def _call(caller: UserAgentCore, callee: UserAgentCore, cdrv: StreamDriver, edrv: StreamDriver,
          callee_port: int, scheme: str = "sip") -> Any:
    uri = SipURI.parse(f"{scheme}:bob@127.0.0.1:{callee_port};transport={caller.transport.lower()}")
    req = caller.new_request("INVITE", uri, NameAddr(SipURI.parse("sip:alice@example.com")),
                             NameAddr(SipURI.parse("sip:bob@example.com")), body=b"v=0\r\n",
                             content_type="application/sdp")
    session = caller.invite(req, ("127.0.0.1", callee_port), reactor.seconds())
    cdrv.pump()
    for _ in range(100):
        if session.state is SessionState.CONFIRMED:
            break
        yield task.deferLater(reactor, 0.02, lambda: None)
    assert session.state is SessionState.CONFIRMED
    session.hangup(reactor.seconds())
    cdrv.pump()
    for _ in range(100):
        if session.state is SessionState.TERMINATED:
            break
        yield task.deferLater(reactor, 0.02, lambda: None)
    assert session.state is SessionState.TERMINATED
    return session


@pytest_twisted.inlineCallbacks
def test_challenged_call_over_tcp() -> Any:
    """INVITE/401/INVITE/200/ACK/BYE over TCP: Via says TCP, no retransmissions, connection reused."""
    caller, callee = _pair("TCP")
    clog: list[Any] = []
    cev: list[Any] = []
    elog: list[Any] = []
    eev: list[Any] = []
    cdrv = _wire(caller, clog, cev)
    edrv = _wire(callee, elog, eev)
    cport = cdrv.listen_tcp().getHost().port
    eport = edrv.listen_tcp().getHost().port
    caller.local = ("127.0.0.1", cport)
    callee.local = ("127.0.0.1", eport)
    try:
        yield _call(caller, callee, cdrv, edrv, eport)
        sent = [parse_message(d) for (direction, d) in clog if direction == "send"]
        methods = [m.method for m in sent if m.is_request]  # type: ignore[union-attr]
        assert methods == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
        assert all(m.top_via.transport == "TCP" for m in sent if m.is_request)
        assert "transport=tcp" in (sent[0].headers.get("Contact") or "")
        assert any(isinstance(e, ev.CallConfirmed) for e in eev)
        # the callee answered over the caller's connection: it opened none of its own
        assert len(edrv.connections) == 1
    finally:
        yield cdrv.stop()
        yield edrv.stop()


@pytest_twisted.inlineCallbacks
def test_connection_refused_is_a_transport_error() -> Any:
    """A request to a port nobody listens on fails fast with a transport error, not Timer B."""
    caller, _ = _pair("TCP")
    events: list[Any] = []
    cdrv = _wire(caller, [], events)
    cdrv.listen_tcp()
    # a port that was free a moment ago
    probe = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
    dead = probe.getHost().port
    yield probe.stopListening()
    req = caller.new_request("OPTIONS", SipURI.parse(f"sip:127.0.0.1:{dead};transport=tcp"),
                             NameAddr(SipURI.parse("sip:alice@example.com")), NameAddr(SipURI.parse("sip:x@example.com")))
    caller.send_request(req, ("127.0.0.1", dead), reactor.seconds())
    cdrv.pump()
    for _ in range(100):
        if any(isinstance(e, ev.RequestFailed) for e in events):
            break
        yield task.deferLater(reactor, 0.02, lambda: None)
    failed = [e for e in events if isinstance(e, ev.RequestFailed)]
    assert failed and type(failed[0].error).__name__ == "TransportError"
    yield cdrv.stop()


@pytest_twisted.inlineCallbacks
def test_challenged_call_over_tls() -> Any:
    """The same call over TLS with a certificate the client verifies (sips URI, Via TLS)."""
    pytest.importorskip("OpenSSL")
    pytest.importorskip("service_identity")
    server_ctx, client_ctx = self_signed()
    caller, callee = _pair("TLS")
    clog: list[Any] = []
    cdrv = _wire(caller, clog, [], tls_client=client_ctx)
    edrv = _wire(callee, [], [], tls_client=client_ctx)
    cport = cdrv.listen_tls(server_ctx).getHost().port
    eport = edrv.listen_tls(server_ctx).getHost().port
    caller.local = ("127.0.0.1", cport)
    callee.local = ("127.0.0.1", eport)
    try:
        yield _call(caller, callee, cdrv, edrv, eport, scheme="sips")
        sent = [parse_message(d) for (direction, d) in clog if direction == "send"]
        assert all(m.top_via.transport == "TLS" for m in sent if m.is_request)
        assert (sent[0].headers.get("Contact") or "").startswith("<sips:")
    finally:
        yield cdrv.stop()
        yield edrv.stop()
