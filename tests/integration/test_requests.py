"""Out-of-dialog requests, a challenging UAS, stray in-dialog requests and garbage, on loopback.

RFC 3261 §11 (OPTIONS), RFC 3428 (MESSAGE), §22 (a UAS that challenges, with
twisted.cred checking the credentials), §12.2.2 (481 for an unknown dialog),
and robustness: whatever arrives, the UA keeps answering.
"""

from __future__ import annotations

import random
import secrets
from typing import Any

import pytest
import pytest_twisted
from loopback import DOMAIN, Proxy, RawPeer, account, eventually, request_bytes, settled, within
from twisted.internet import defer

from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.server import DigestServer
from txsipua.core import capabilities
from txsipua.errors import AuthenticationError, CallFailed
from txsipua.sip.message import Request, Response, parse_message
from txsipua.ua.account import Account
from txsipua.ua.cred import InMemoryHA1Store, make_portal

CALLEE_REALM = "callee.example.org"


@pytest.fixture
def raw_peer(reactor: Any) -> Any:
    """A :class:`RawPeer`, closed at teardown; ``raw_peer.address`` is ``(host, port)``."""
    peer = RawPeer()
    port = reactor.listenUDP(0, peer, interface="127.0.0.1")
    peer.address = ("127.0.0.1", port.getHost().port)  # type: ignore[attr-defined]
    yield peer
    pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


@pytest_twisted.inlineCallbacks
def test_options_direct_and_through_the_proxy(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """OPTIONS is answered 200 with Allow and Accept, directly and through the proxy (RFC 3261 §11.2)."""
    alice = yield make_ua(account("alice", proxy))
    bob = yield make_ua(account("bob", proxy))
    yield within(reactor, bob.register(600))
    host, port = bob.local_address
    lone = yield make_ua(None)  # no account, no outbound proxy: straight to bob
    response = yield within(reactor, lone.options(f"sip:{host}:{port}"))
    assert response.status == 200
    assert "INVITE" in (response.headers.get("Allow") or "")
    assert response.headers.get("Accept") == capabilities.ACCEPT  # every body type we understand, SDP first
    assert response.headers.get_all("Accept")[0] == "application/sdp"
    response = yield within(reactor, alice.options("sip:bob@example.com"))
    assert response.status == 200
    assert bob.wire.requests_received("OPTIONS")
    yield settled(reactor, alice, bob, lone)


@pytest_twisted.inlineCallbacks
def test_message_default_and_custom_handler(reactor: Any, proxy: Proxy, make_ua: Any) -> None:
    """MESSAGE (RFC 3428): 200 by default; an on_request handler sees the body and picks the answer."""
    alice = yield make_ua(account("alice", proxy))
    bob = yield make_ua(account("bob", proxy))
    yield within(reactor, bob.register(600))
    response = yield within(reactor, alice.message("sip:bob@example.com", "hello bob"))
    assert response.status == 200
    got: list[Request] = []

    def on_request(request: Request, respond: Any) -> None:
        got.append(request)
        respond(202, "Accepted for later")

    bob.on_request = on_request
    response = yield within(reactor, alice.message("sip:bob@example.com", "h\u00e9llo again"))
    assert (response.status, response.reason) == (202, "Accepted for later")
    assert got[0].body.decode("utf-8") == "h\u00e9llo again"
    assert got[0].content_type == "text/plain"
    assert got[0].from_.uri.user == "alice"
    yield settled(reactor, alice, bob)


@defer.inlineCallbacks
def challenging_callee(make_ua: Any) -> Any:
    """A UA with no account that challenges every INVITE/MESSAGE with 401 in CALLEE_REALM."""
    store = InMemoryHA1Store()
    store.add_password("alice-callee", CALLEE_REALM, "callee-secret")
    bob = yield make_ua(None, authenticator=DigestServer(CALLEE_REALM, secrets.token_bytes(32)),
                        portal=make_portal(store))
    bob.auto_answer = True
    return bob


def direct_account(password: str) -> Account:
    """alice with credentials for CALLEE_REALM, allowed to answer challenges from 127.0.0.1."""
    creds = InMemoryCredentials([
        Credential(realm=CALLEE_REALM, username="alice-callee", password=password, hosts=("127.0.0.1",)),
    ])
    return Account(user="alice", domain=DOMAIN, credentials=creds)


@pytest_twisted.inlineCallbacks
def test_challenging_uas_accepts_the_right_password(reactor: Any, make_ua: Any) -> None:
    """A UAS with DigestServer + twisted.cred: 401, the retried INVITE is accepted, identity known."""
    bob = yield challenging_callee(make_ua)
    identities: list[str | None] = []

    def on_call(incoming: Any) -> None:
        identities.append(incoming.identity)
        incoming.answer()

    bob.on_incoming_call = on_call
    alice = yield make_ua(direct_account("callee-secret"))
    host, port = bob.local_address
    call = yield within(reactor, alice.call(f"sip:bob@{host}:{port}"))
    finals = [s for s in alice.wire.statuses_received("INVITE") if s >= 200]
    assert finals[0] == 401 and finals[-1] == 200
    assert identities == ["alice-callee"]
    # the 2xx ACK repeats the INVITE's Authorization (RFC 3261 §22.1 via §13.2.2.4)
    final = alice.wire.requests_sent("INVITE")[-1]
    ack = [a for a in alice.wire.requests_sent("ACK") if a.cseq.seq == final.cseq.seq][0]
    assert ack.headers.get_all("Authorization") == final.headers.get_all("Authorization")
    # MESSAGE to the same UAS is challenged too and accepted
    response = yield within(reactor, alice.message(f"sip:bob@{host}:{port}", "hi"))
    assert response.status == 200
    yield within(reactor, call.hangup())
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_challenging_uas_rejects_a_wrong_password(reactor: Any, make_ua: Any) -> None:
    """Wrong password: challenged again, AuthenticationError after exactly one retry, no call."""
    bob = yield challenging_callee(make_ua)
    alice = yield make_ua(direct_account("guess"))
    host, port = bob.local_address
    with pytest.raises(AuthenticationError) as info:
        yield within(reactor, alice.call(f"sip:bob@{host}:{port}"))
    assert info.value.status == 401
    assert CALLEE_REALM in info.value.realms
    assert len(alice.wire.requests_sent("INVITE")) == 2
    assert bob.calls == set()
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_challenge_from_an_untrusted_hop_is_refused(reactor: Any, make_ua: Any) -> None:
    """Digest-leak guard: without 127.0.0.1 in hosts, alice refuses to answer bob's 401."""
    bob = yield challenging_callee(make_ua)
    creds = InMemoryCredentials([Credential(realm=CALLEE_REALM, username="alice-callee", password="callee-secret")])
    alice = yield make_ua(Account(user="alice", domain=DOMAIN, credentials=creds))
    host, port = bob.local_address
    with pytest.raises((AuthenticationError, CallFailed)):
        yield within(reactor, alice.call(f"sip:bob@{host}:{port}"))
    invites = alice.wire.requests_sent("INVITE")
    assert len(invites) == 1 and "Authorization" not in invites[0].headers
    yield settled(reactor, alice, bob)


@pytest_twisted.inlineCallbacks
def test_in_dialog_request_for_unknown_dialog_gets_481(reactor: Any, make_ua: Any, raw_peer: Any) -> None:
    """BYE, INFO and a re-INVITE carrying a To tag of no dialog: 481 (RFC 3261 §12.2.2)."""
    bob = yield make_ua(None)
    for cseq, method in enumerate(("BYE", "INFO", "INVITE"), start=1):
        raw_peer.send(request_bytes(method, bob.local_address, raw_peer.address, to_tag="nosuchtag",
                                    call_id=f"stray-{cseq}@192.0.2.1", cseq=cseq), bob.local_address)
    yield eventually(reactor, lambda: len({m.cseq.method for m, _ in raw_peer.wire.received
                                          if isinstance(m, Response) and m.status >= 200}) == 3,
                     2.0, "three final responses")
    finals = {m.cseq.method: m.status for m, _ in raw_peer.wire.received
              if isinstance(m, Response) and m.status >= 200}
    assert finals == {"BYE": 481, "INFO": 481, "INVITE": 481}
    # a BYE with no To tag at all is not in a dialog either (§15.1.2): 481
    raw_peer.send(request_bytes("BYE", bob.local_address, raw_peer.address, call_id="stray-9@192.0.2.1"),
                  bob.local_address)
    yield eventually(reactor, lambda: any(m.call_id == "stray-9@192.0.2.1"
                                          for m, _ in raw_peer.wire.received), 1.0, "the answer")
    answer = [m for m, _ in raw_peer.wire.received if m.call_id == "stray-9@192.0.2.1"][-1]
    assert isinstance(answer, Response) and answer.status == 481
    # ACK the 481 to the INVITE, so its server transaction can end early
    invite_481 = [m for m, _ in raw_peer.wire.received if isinstance(m, Response) and m.cseq.method == "INVITE"][0]
    ack = Request("ACK", f"sip:bob@{bob.local_address[0]}:{bob.local_address[1]}", [
        ("Via", invite_481.headers.get_all("Via")[0].split(";received")[0]),
        ("Max-Forwards", "70"), ("From", invite_481.headers.get("From") or ""),
        ("To", invite_481.headers.get("To") or ""), ("Call-ID", invite_481.call_id),
        ("CSeq", f"{invite_481.cseq.seq} ACK"),
    ])
    raw_peer.send(ack.to_bytes(), bob.local_address)
    yield settled(reactor, bob)
    assert bob.calls == set()


def garbage(seed: int) -> list[bytes]:
    """Seeded junk: random bytes, every prefix cut of an INVITE, broken headers, odd sizes."""
    rng = random.Random(seed)
    invite = request_bytes("INVITE", ("127.0.0.1", 5060), ("127.0.0.1", 5070),
                           body=b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
                                b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
    out = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 600))) for _ in range(40)]
    out += [invite[:n] for n in range(0, len(invite), 7)]
    out += [
        b"\r\n\r\n",  # keep-alive
        b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\r\n",
        b"INVITE sip:bob@127.0.0.1 SIP/3.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n\r\n",
        invite.replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE"),
        invite.replace(b"Content-Length: ", b"Content-Length: 9999"),
        invite.replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/FOO"),
        invite.replace(b"From:", b"From: <<<"),
        invite.replace(b"\r\n", b"\n"),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnope\r\nCSeq: 1 INVITE\r\n\r\n",
        b"SIP/2.0 999999 What\r\n\r\n",
        b"\x00" * 1400,
        bytes(range(256)) * 5,
    ]
    for _ in range(20):  # random byte flips inside a valid INVITE
        data = bytearray(invite)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        out.append(bytes(data))
    return out


@pytest_twisted.inlineCallbacks
def test_garbage_never_breaks_a_running_ua(reactor: Any, make_ua: Any, raw_peer: Any) -> None:
    """Random bytes and mangled INVITEs: the UA still answers OPTIONS, and ends every transaction."""
    bob = yield make_ua(None)
    errors: list[Any] = []
    from twisted.logger import globalLogPublisher

    def observer(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None:
            errors.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        junk = garbage(seed=3261)
        for data in junk:
            raw_peer.send(data, bob.local_address)
        # everything above was delivered before this OPTIONS (one socket, in order on loopback)
        probe = yield make_ua(None)
        host, port = bob.local_address
        response = yield within(reactor, probe.options(f"sip:{host}:{port}"))
        assert response.status == 200
        # the UA never sent anything it could not parse back itself
        for m, _ in bob.wire.sent:
            parse_message(m.to_bytes())
        # mangled INVITEs that parsed are answered, not left hanging; calls are refused (no handler)
        yield settled(reactor, bob, probe, timeout=3.5)
        assert bob.calls == set()
        assert errors == [], f"unhandled failures logged: {[e.get('log_format') for e in errors]}"
    finally:
        globalLogPublisher.removeObserver(observer)
