"""The digest-leak guard in the UA core: hops judged at their transport address, 2xx ACK
credentials, and sips over a transport without TLS (RFC 3261 §13.2.2.4, §22.3, §26.2.2).

Two cores wired in memory (``Net`` of ``test_useragent``), time given explicitly.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_useragent import A, B, Net, invite

from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.digest import compute_ha1
from txsipua.auth.server import DigestServer
from txsipua.core import events as ev
from txsipua.core.ids import SequentialIds
from txsipua.core.useragent import SessionState, UserAgentCore, numeric_locate
from txsipua.errors import AuthenticationError, TransportError
from txsipua.sip.message import Request
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr

PROVIDER = "provider.example.net"
C = ("127.0.0.1", 5063)  # the callee's own address, when B is the proxy in front of it
HA1 = compute_ha1("MD5", "alice", PROVIDER, "pw")


def alice(trusted: list[str], **kw: Any) -> UserAgentCore:
    creds = InMemoryCredentials([Credential(realm=PROVIDER, username="alice", password="pw")])
    return UserAgentCore(local=A, ids=SequentialIds(), contact_user="alice",
                         digest=DigestClient(creds, trusted_hosts=trusted), **kw)


class AnsweringNet(Net):
    """Accepts every call and request at once and checks the provider's credentials."""

    def on_event(self, name: str, core: UserAgentCore, e: Any) -> None:
        if isinstance(e, ev.AuthenticationNeeded):
            core.authentication_result(e, e.credentials.check_ha1(HA1), e.credentials.username, self.now)
        elif isinstance(e, ev.IncomingCall):
            e.session.accept(self.now, body=b"v=0\r\n")
        elif isinstance(e, ev.IncomingRequest) and e.session is None:
            core.respond(e.transaction, core.make_response(e.request, 200), self.now)


def sent(net: Net, method: str) -> list[Request]:
    return [m for m in net.wire if isinstance(m, Request) and m.method == method]


# -- the 2xx ACK -------------------------------------------------------------------------------


@pytest.mark.parametrize("record_route", [False, True])
def test_2xx_ack_repeats_proxy_credentials_only_through_the_proxy(record_route: bool) -> None:
    """Alice calls through her provider's proxy (B), which answers 407; the 200 names the callee (C).

    Without Record-Route the ACK goes straight to C: the proxy's Proxy-Authorization is left
    out and a CredentialsWithheld warning is emitted.  With Record-Route through B the ACK
    repeats it (RFC 3261 §13.2.2.4).
    """
    caller = alice(["sip:127.0.0.1:5062"])
    proxy = UserAgentCore(local=B, ids=SequentialIds(counter=900), contact_user="bob",
                          authenticator=DigestServer(PROVIDER, b"p" * 32, proxy_role=True))
    proxy.context.contact_value = lambda: "<sip:bob@127.0.0.1:5063>"  # type: ignore[method-assign]
    net = AnsweringNet(caller=caller, proxy=proxy)
    request = invite(caller)
    if record_route:  # the proxy stays on the path; the UAS copies Record-Route into its 2xx
        request.headers.add("Record-Route", "<sip:127.0.0.1:5062;lr>")
    session = caller.invite(request, B, 0.0)
    net.pump()
    assert session.state is SessionState.CONFIRMED
    invites = sent(net, "INVITE")
    assert len(invites) == 2 and "Proxy-Authorization" in invites[1].headers
    (ack,) = [m for m in sent(net, "ACK") if m.cseq.seq == invites[1].cseq.seq]
    withheld = [e for e in net.events["caller"] if isinstance(e, ev.CredentialsWithheld)]
    destinations = [dst for src, dst, line in net.ladder if line.startswith("ACK") and src == "caller"]
    if record_route:
        assert destinations[-1] == "proxy"
        assert ack.headers.get("Proxy-Authorization") == invites[1].headers.get("Proxy-Authorization")
        assert withheld == []
    else:
        assert destinations[-1] == "?"  # C: no core listens there
        assert "Proxy-Authorization" not in ack.headers
        assert len(withheld) == 1 and withheld[0].method == "ACK" and withheld[0].session is session
        assert PROVIDER in str(withheld[0].withheld) and "127.0.0.1:5063/UDP" in str(withheld[0].withheld)


# -- another party on the trusted IP, every request kind -----------------------------------------


def established(trusted: list[str]) -> tuple[UserAgentCore, UserAgentCore, Net, Any]:
    """A direct call from alice (A) to B, with the registrar at 127.0.0.1:5070."""
    caller = alice(trusted)
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=500), contact_user="mallory")
    net = AnsweringNet(caller=caller, callee=callee)
    session = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert session.state is SessionState.CONFIRMED
    challenger = DigestServer(PROVIDER, b"m" * 32)

    def challenge_all(request: Request, stxn: Any, source: Any, now: float) -> None:
        if request.method != "ACK":
            callee.layer.respond(stxn, challenger.challenge(request, now), now)

    callee.uas.on_request = challenge_all  # type: ignore[method-assign]
    return caller, callee, net, session


@pytest.mark.parametrize("method", ["BYE", "INFO", "MESSAGE", "re-INVITE", "OPTIONS"])
def test_party_on_registrar_ip_other_port_gets_nothing(method: str) -> None:
    """Registrar sip:127.0.0.1:5070; mallory on 127.0.0.1:5062 challenges: no credentials sent."""
    caller, callee, net, session = established(["sip:127.0.0.1:5070"])
    if method == "BYE":
        session.hangup(net.now)
    elif method == "re-INVITE":
        session.reinvite(net.now, b"v=0\r\n")
    elif method == "OPTIONS":
        caller.send_request(caller.new_request("OPTIONS", SipURI.parse("sip:127.0.0.1:5062"),
                                               NameAddr(SipURI.parse("sip:alice@example.com")),
                                               NameAddr(SipURI.parse("sip:127.0.0.1:5062"))), B, net.now)
    else:
        session.request(method, net.now, body=b"x", content_type="text/plain")
    net.pump()
    wire_method = "INVITE" if method == "re-INVITE" else method
    requests = sent(net, wire_method)[-1:] if method != "re-INVITE" else sent(net, "INVITE")[1:]
    assert len(requests) == 1
    assert not any(n in requests[0].headers for n in ("Authorization", "Proxy-Authorization"))
    errors = [getattr(e, "error", None) or getattr(e, "bye_error", None) for e in net.events["caller"]
              if isinstance(e, ev.RequestFailed | ev.CallEnded | ev.ReinviteCompleted)]
    assert any(isinstance(x, AuthenticationError) and x.kind == "guard" for x in errors)  # type: ignore[attr-defined]


def test_registrar_by_name_trusted_when_reached_by_ip() -> None:
    """registrar = sip:registrar.invalid, located at B: after a request located it, B by IP is trusted."""
    located = {"registrar.invalid": B}

    def locate(uri: SipURI) -> tuple[str, int]:
        return located.get(uri.host) or numeric_locate(uri)

    caller = alice(["sip:registrar.invalid"], locate=locate)
    callee = UserAgentCore(local=B, ids=SequentialIds(counter=700), contact_user="registrar",
                           authenticator=DigestServer(PROVIDER, b"r" * 32))
    net = AnsweringNet(caller=caller, callee=callee)
    # before anything located the name, B by its IP is a stranger
    first = caller.invite(invite(caller), B, 0.0)
    net.pump()
    assert first.state is SessionState.TERMINATED and len(sent(net, "INVITE")) == 1
    # a MESSAGE to the registrar by name (located at B) is challenged and answered
    uri = SipURI.parse("sip:registrar.invalid")
    msg = caller.new_request("MESSAGE", uri, NameAddr(SipURI.parse("sip:alice@example.com")), NameAddr(uri),
                             body=b"hi", content_type="text/plain")
    caller.send_request(msg, locate(uri), net.now, hop_host="registrar.invalid")
    net.pump()
    done = [e for e in net.events["caller"] if isinstance(e, ev.RequestCompleted)]
    assert done and done[-1].response.status == 200
    # now an INVITE reaching it by its IP is answered too
    session = caller.invite(invite(caller), B, net.now)
    net.pump()
    assert session.state is SessionState.CONFIRMED
    assert "Authorization" in sent(net, "INVITE")[-1].headers


# -- sips needs TLS ------------------------------------------------------------------------------


def test_sips_target_over_udp_fails_before_sending() -> None:
    """A sips Request-URI on a UDP core: CallFailed with TransportError naming sips and UDP, nothing sent."""
    caller = alice([])
    request = caller.new_request("INVITE", SipURI.parse("sips:bob@127.0.0.1:5062"),
                                 NameAddr(SipURI.parse("sip:alice@example.com")),
                                 NameAddr(SipURI.parse("sips:bob@127.0.0.1:5062")), body=b"v=0\r\n",
                                 content_type="application/sdp")
    session = caller.invite(request, B, 0.0)
    assert caller.outbox() == []
    failed = [e for e in iter(caller.next_event, None) if isinstance(e, ev.CallAttemptFailed)]
    assert session.state is SessionState.TERMINATED
    assert len(failed) == 1 and isinstance(failed[0].error, TransportError)
    assert "sips" in str(failed[0].error) and "UDP" in str(failed[0].error)
    assert caller.session_count == 0 and caller.layer.transaction_count == 0


def test_sips_route_over_tcp_fails_and_tls_sends() -> None:
    """A sips Route entry needs TLS too: RequestFailed on TCP; the same request goes out over TLS."""
    for transport, ok in (("TCP", False), ("TLS", True)):
        core = alice([], transport=transport, reliable=True)
        request = core.new_request("OPTIONS", SipURI.parse("sip:bob@example.com"),
                                   NameAddr(SipURI.parse("sip:alice@example.com")),
                                   NameAddr(SipURI.parse("sip:bob@example.com")),
                                   route=[SipURI.parse("sips:127.0.0.1:5062;lr")])
        core.send_request(request, B, 0.0)
        events = list(iter(core.next_event, None))
        if ok:
            assert len(core.outbox()) == 1 and events == []
        else:
            assert core.outbox() == []
            assert len(events) == 1 and isinstance(events[0], ev.RequestFailed)
            assert isinstance(events[0].error, TransportError)
            assert "sips:127.0.0.1:5062" in str(events[0].error) and "TCP" in str(events[0].error)
