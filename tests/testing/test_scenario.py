"""Whole flows in memory: two UA cores and the registrar/proxy on the fake network.

Alice and Bob (sans-IO :class:`~txsipua.core.useragent.UserAgentCore`) register
with the proxy (401), Alice calls Bob through it (407), Bob answers, Alice ACKs
and hangs up.  The same flow runs on a lossy, duplicating, reordering network:
retransmissions (RFC 3261 §17) and the proxy's statelessness must carry it.
"""

from __future__ import annotations

from typing import Any

import pytest

from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.core import events as ev
from txsipua.core.ids import SequentialIds
from txsipua.core.useragent import UserAgentCore
from txsipua.server.proxy import Handled, ProxyRegistrar
from txsipua.sip.message import parse_message
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr
from txsipua.testing.network import FakeNetwork

PROXY = ("192.0.2.1", 5060)
ALICE = ("192.0.2.10", 5060)
BOB = ("192.0.2.20", 5070)
DOMAIN = "example.com"
REALM = "voip.example.net"
USERS = {"alice-auth": ("alice-pw", "alice"), "bob-auth": ("bob-pw", "bob")}


class Party:
    """A UA core plus the events it produced, auto-answering incoming calls."""

    def __init__(self, name: str, address: tuple[str, int], auth: tuple[str, str], start: int) -> None:
        self.name = name
        self.core = UserAgentCore(
            local=address,
            ids=SequentialIds(counter=start),
            digest=DigestClient(InMemoryCredentials([Credential(REALM, auth[0], auth[1])]),
                                cnonce_factory=lambda: "0a4f113b"),
            contact_user=name,
        )
        self.events: list[Any] = []
        self.sessions: list[Any] = []

    def after(self, now: float) -> None:
        """Drain events; answer any incoming call at once."""
        while (event := self.core.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, ev.IncomingCall):
                self.sessions.append(event.session)
                event.session.accept(now, body=b"v=0\r\n")

    def kinds(self) -> list[str]:
        """The names of the events seen."""
        return [type(e).__name__ for e in self.events]


def register(party: Party, net: FakeNetwork) -> None:
    """Send a REGISTER for ``sip:<name>@example.com`` to the proxy."""
    aor = NameAddr(SipURI(user=party.name, host=DOMAIN))
    request = party.core.new_request(
        "REGISTER", SipURI(host=DOMAIN), aor, aor, headers=[("Expires", "600")]
    )
    party.core.send_request(request, PROXY, net.now)
    party.after(net.now)


def build(seed: int = 0, **faults: float) -> tuple[FakeNetwork, ProxyRegistrar, Party, Party]:
    """The network with the proxy, Alice and Bob attached."""
    net = FakeNetwork(seed=seed, **faults)
    proxy = ProxyRegistrar(PROXY, DOMAIN, REALM, USERS, b"scenario-secret-0123456789")
    alice = Party("alice", ALICE, ("alice-auth", "alice-pw"), 1000)
    bob = Party("bob", BOB, ("bob-auth", "bob-pw"), 2000)
    net.attach(PROXY, proxy)
    net.attach(ALICE, alice.core, alice.after)
    net.attach(BOB, bob.core, bob.after)
    return net, proxy, alice, bob


def call(net: FakeNetwork, alice: Party) -> Any:
    """Alice INVITEs sip:bob@example.com through the proxy."""
    core = alice.core
    request = core.new_request(
        "INVITE", SipURI(user="bob", host=DOMAIN),
        NameAddr(SipURI(user="alice", host=DOMAIN)), NameAddr(SipURI(user="bob", host=DOMAIN)),
        body=b"v=0\r\n", content_type="application/sdp",
    )
    session = core.invite(request, PROXY, net.now)
    alice.after(net.now)
    return session


def run_flow(net: FakeNetwork, proxy: ProxyRegistrar, alice: Party, bob: Party) -> None:
    """Register both, call, talk a second, hang up; assert each step from both sides."""
    register(alice, net)
    register(bob, net)
    net.advance(40.0)
    assert alice.kinds().count("RequestCompleted") == 1, alice.kinds()
    assert bob.kinds().count("RequestCompleted") == 1, bob.kinds()
    assert [b.contact.uri.port for b in proxy.bindings("sip:bob@example.com", net.now)] == [5070]

    session = call(net, alice)
    net.advance(40.0)
    assert "CallAnswered" in alice.kinds(), alice.kinds()
    assert "CallConfirmed" in bob.kinds(), bob.kinds()

    session.hangup(net.now)
    alice.after(net.now)
    net.advance(40.0)
    assert "CallEnded" in alice.kinds(), alice.kinds()
    assert "CallEnded" in bob.kinds(), bob.kinds()
    assert proxy.internal_errors == 0


def test_register_call_and_hang_up_through_the_proxy() -> None:
    """On a perfect network the ladder is exactly the textbook one."""
    net, proxy, alice, bob = build()
    run_flow(net, proxy, alice, bob)
    names = {PROXY: "proxy", ALICE: "alice", BOB: "bob"}
    ladder = [(names[d.source], names[d.destination],
               d.first_line.split(" SIP/2.0")[0].replace("SIP/2.0 ", ""),
               parse_message(d.data).cseq.method) for d in net.delivered()]
    call_part = [step[:3] for step in ladder if step[3] != "REGISTER"]
    assert call_part == [
        ("alice", "proxy", "INVITE sip:bob@example.com"),
        ("proxy", "alice", "407 Proxy Authentication Required"),
        ("alice", "proxy", "ACK sip:bob@example.com"),
        ("alice", "proxy", "INVITE sip:bob@example.com"),
        ("proxy", "bob", "INVITE sip:bob@192.0.2.20:5070"),
        ("bob", "proxy", "200 OK"),  # answered at once: no 100 Trying (RFC 3261 §17.2.1)
        ("proxy", "alice", "200 OK"),
        ("alice", "proxy", "ACK sip:bob@192.0.2.20:5070"),
        ("proxy", "bob", "ACK sip:bob@192.0.2.20:5070"),
        ("alice", "proxy", "BYE sip:bob@192.0.2.20:5070"),
        ("proxy", "bob", "BYE sip:bob@192.0.2.20:5070"),
        ("bob", "proxy", "200 OK"),
        ("proxy", "alice", "200 OK"),
    ]
    register_part = [step[:3] for step in ladder if step[3] == "REGISTER"]
    assert sorted(register_part) == sorted(
        [(who, "proxy", "REGISTER sip:example.com") for who in ("alice", "bob")] * 2
        + [("proxy", who, status) for who in ("alice", "bob") for status in ("401 Unauthorized", "200 OK")]
    )
    credentials = [e.credentials for e in _drain(proxy) if isinstance(e, Handled)
                   and e.direction == "in" and e.summary.startswith("INVITE")]
    assert [[(c.realm, c.username) for c in cs] for cs in credentials] == [
        [], [(REALM, "alice-auth")]
    ]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_flow_survives_a_bad_network(seed: int) -> None:
    """20% loss, 20% duplication, 20% reordering: retransmissions and the stateless proxy cope."""
    net, proxy, alice, bob = build(seed, loss=0.2, duplication=0.2, reordering=0.2)
    run_flow(net, proxy, alice, bob)
    fates = {r.fate for r in net.log}
    assert "delivered" in fates


def _drain(proxy: ProxyRegistrar) -> list[Any]:
    out = []
    while (event := proxy.next_event()) is not None:
        out.append(event)
    return out


class RingingParty(Party):
    """A callee that rings and never answers."""

    def after(self, now: float) -> None:
        """Drain events; ring for any incoming call."""
        while (event := self.core.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, ev.IncomingCall):
                self.sessions.append(event.session)
                event.session.ring(now)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cancel_of_a_ringing_call_reaches_the_callee(seed: int) -> None:
    """Alice hangs up while Bob rings: the CANCEL matches Bob's INVITE through the proxy (§9.2, §16.11)."""
    faults = {} if seed == 0 else {"loss": 0.15, "duplication": 0.15, "reordering": 0.15}
    net = FakeNetwork(seed=seed, **faults)
    proxy = ProxyRegistrar(PROXY, DOMAIN, REALM, USERS, b"scenario-secret-0123456789")
    alice = Party("alice", ALICE, ("alice-auth", "alice-pw"), 1000)
    bob = RingingParty("bob", BOB, ("bob-auth", "bob-pw"), 2000)
    net.attach(PROXY, proxy)
    net.attach(ALICE, alice.core, alice.after)
    net.attach(BOB, bob.core, bob.after)
    register(alice, net)
    register(bob, net)
    net.advance(40.0)
    session = call(net, alice)
    net.advance(5.0)
    assert bob.sessions, bob.kinds()
    assert any(isinstance(e, ev.ProvisionalResponse) and e.response.status == 180 for e in alice.events)
    session.hangup(net.now)
    alice.after(net.now)
    net.advance(40.0)
    assert [e.reason for e in alice.events if isinstance(e, ev.CallEnded)] == ["cancelled"]
    assert [(e.reason, e.by_remote) for e in bob.events if isinstance(e, ev.CallEnded)] == [
        ("cancelled", True)
    ]
    to_alice = [parse_message(d.data) for d in net.delivered() if d.destination == ALICE]
    assert any(getattr(m, "status", 0) == 487 for m in to_alice)
    cancels = [d for d in net.delivered() if d.first_line.startswith("CANCEL")]
    invites = [d for d in net.delivered() if d.first_line.startswith("INVITE sip:bob@192.0.2.20")]
    acks = [d for d in net.delivered() if d.first_line.startswith("ACK sip:bob@192.0.2.20")]
    branches = {parse_message(d.data).top_via.branch for d in invites}
    assert len(branches) == 1
    assert {parse_message(d.data).top_via.branch for d in cancels if d.destination == BOB} == branches
    assert {parse_message(d.data).top_via.branch for d in acks} == branches  # ACK for the 487
    assert proxy.internal_errors == 0
