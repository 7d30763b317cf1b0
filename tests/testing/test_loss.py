"""Registration and authenticated calls on a lossy network, and nothing left behind.

Alice and Bob (sans-IO :class:`~txsipua.core.useragent.UserAgentCore`) and the
in-memory registrar/proxy (:class:`~txsipua.server.proxy.ProxyRegistrar`)
sit on a :class:`~txsipua.testing.network.FakeNetwork` that loses 10 % or 30 %
of the datagrams in every direction, seeded so each run is the same.  Each
party registers (REGISTER, 401, REGISTER with credentials, 200), Alice calls
Bob through the proxy (INVITE, 407, ACK, INVITE with credentials, 200, ACK;
in the second variant Bob challenges too: 401, ACK, INVITE with both credentials),
hangs up (BYE, 200), and both unregister (Expires: 0).  Retransmissions
(RFC 3261 §17.1.1.2, §17.1.2.2, §13.3.1.4) must carry every step on the
first try: ``ATTEMPTS`` is 1, no request is sent again by the application
(the helpers can retry a timed-out request, as a real UA's application would,
should a harsher network ever need it).

Afterwards nothing is left: no transaction and no timer in either UA core, no
dialog, no binding and no cached answer in the proxy, and the proxy never
failed on any input.
"""

from __future__ import annotations

from typing import Any

import pytest

from txsipua.auth.client import DigestClient
from txsipua.auth.credentials import Credential, InMemoryCredentials
from txsipua.auth.server import DigestServer
from txsipua.core import events as ev
from txsipua.core.ids import SequentialIds
from txsipua.core.useragent import InviteSession, UserAgentCore
from txsipua.server.proxy import ProxyRegistrar
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
ATTEMPTS = 1
SEEDS = [1, 2, 3, 4, 5, 6, 7, 8]


CALLEE_REALM = "bob.example.net"
CALLEE_USERS = {"alice-auth": "alice-callee-pw"}


class Party:
    """A UA core plus the events it produced; it answers incoming calls at once.

    With ``challenge``, it challenges incoming INVITEs itself (401 in realm
    :data:`CALLEE_REALM`, checked against :data:`CALLEE_USERS`).
    """

    def __init__(self, name: str, address: tuple[str, int], auth: tuple[str, str], start: int,
                 challenge: bool = False) -> None:
        self.name = name
        credentials = [Credential(REALM, auth[0], auth[1])]
        if auth[0] in CALLEE_USERS:
            credentials.append(Credential(CALLEE_REALM, auth[0], CALLEE_USERS[auth[0]],
                                          hosts=frozenset({PROXY[0]})))
        self.core = UserAgentCore(
            local=address,
            ids=SequentialIds(counter=start),
            digest=DigestClient(InMemoryCredentials(credentials), cnonce_factory=lambda: "0a4f113b"),
            authenticator=(DigestServer(CALLEE_REALM, b"callee-secret-0123456789abcdef")
                           if challenge else None),
            contact_user=name,
        )
        self.events: list[Any] = []

    def after(self, now: float) -> None:
        """Drain events; check credentials; accept any incoming call."""
        while (event := self.core.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, ev.AuthenticationNeeded):
                user = event.credentials.username
                ok = user in CALLEE_USERS and event.credentials.check_password(CALLEE_USERS[user])
                self.core.authentication_result(event, ok, user if ok else None, now)
            elif isinstance(event, ev.IncomingCall):
                event.session.accept(now, body=b"v=0\r\n")

    def of(self, kind: type) -> list[Any]:
        """The events of one kind seen so far."""
        return [e for e in self.events if isinstance(e, kind)]


def register(net: FakeNetwork, party: Party, expires: int) -> None:
    """REGISTER ``sip:<name>@example.com`` until a 2xx (at most ATTEMPTS requests)."""
    aor = NameAddr(SipURI(user=party.name, host=DOMAIN))
    for _ in range(ATTEMPTS):
        done = len(party.of(ev.RequestCompleted))
        request = party.core.new_request("REGISTER", SipURI(host=DOMAIN), aor, aor,
                                         headers=[("Expires", str(expires))])
        party.core.send_request(request, PROXY, net.now)
        party.after(net.now)
        net.advance(40.0)
        completed = party.of(ev.RequestCompleted)[done:]
        if completed and completed[-1].response.status == 200:
            return
        assert not completed, completed  # only a timeout may be retried
    pytest.fail(f"{party.name}: REGISTER failed {ATTEMPTS} times: {party.events}")


def call(net: FakeNetwork, alice: Party) -> InviteSession:
    """INVITE sip:bob@example.com through the proxy until answered (at most ATTEMPTS calls).

    A call the callee ended for want of an ACK (every ACK, or the 2xx it
    answers, lost for 64*T1: a BYE, RFC 3261 §13.3.1.4) is dialled once more,
    as a user would; it does not count as a failed attempt.
    """
    failures = redials = 0
    while failures < ATTEMPTS:
        failed = len(alice.of(ev.CallAttemptFailed))
        request = alice.core.new_request(
            "INVITE", SipURI(user="bob", host=DOMAIN),
            NameAddr(SipURI(user="alice", host=DOMAIN)), NameAddr(SipURI(user="bob", host=DOMAIN)),
            body=b"v=0\r\n", content_type="application/sdp",
        )
        session = alice.core.invite(request, PROXY, net.now)
        alice.after(net.now)
        net.advance(40.0)
        if any(e.session is session for e in alice.of(ev.CallAnswered)):
            ended = [e.reason for e in alice.of(ev.CallEnded) if e.session is session]
            if not ended:
                return session
            assert ended == ["bye"] and redials < 2, alice.events
            redials += 1
            continue
        assert len(alice.of(ev.CallAttemptFailed)) > failed, alice.events  # failed, never stuck
        failures += 1
    pytest.fail(f"INVITE failed {ATTEMPTS} times: {alice.events}")


def hang_up(net: FakeNetwork, alice: Party, session: InviteSession) -> None:
    """BYE; the call ends on both sides (a BYE that times out still ends it, §15.1.1)."""
    session.hangup(net.now)
    alice.after(net.now)
    net.advance(40.0)


def assert_nothing_left(net: FakeNetwork, proxy: ProxyRegistrar, *parties: Party) -> None:
    """No transaction, timer or dialog in any core; no binding or cached answer in the proxy."""
    net.advance(70.0)
    for party in parties:
        assert len(party.core.layer) == 0, party.name
        assert party.core.get_timer() is None, party.name
        assert party.core.session_count == 0, party.name
    assert proxy.bindings(f"sip:alice@{DOMAIN}", net.now) == []
    assert proxy.bindings(f"sip:bob@{DOMAIN}", net.now) == []
    assert proxy.get_timer() is None
    assert proxy.internal_errors == 0


@pytest.mark.parametrize("callee_challenges", [False, True], ids=["407", "407+401"])
@pytest.mark.parametrize("loss", [0.1, 0.3])
@pytest.mark.parametrize("seed", SEEDS)
def test_register_and_authenticated_call_survive_loss(loss: float, seed: int,
                                                      callee_challenges: bool) -> None:
    """REGISTER 401, INVITE 407 (and 401 from Bob), ACK, BYE, unregister: all complete;
    nothing is left behind."""
    net = FakeNetwork(seed=seed, loss=loss)
    proxy = ProxyRegistrar(PROXY, DOMAIN, REALM, USERS, b"loss-secret-0123456789abcdef")
    alice = Party("alice", ALICE, ("alice-auth", "alice-pw"), 1000)
    bob = Party("bob", BOB, ("bob-auth", "bob-pw"), 2000, challenge=callee_challenges)
    net.attach(PROXY, proxy)
    net.attach(ALICE, alice.core, alice.after)
    net.attach(BOB, bob.core, bob.after)

    register(net, alice, 600)
    register(net, bob, 600)
    assert [b.contact.uri.port for b in proxy.bindings(f"sip:bob@{DOMAIN}", net.now)] == [5070]

    session = call(net, alice)
    assert any(e.session is session for e in alice.of(ev.CallAnswered))
    hang_up(net, alice, session)
    assert [e.reason for e in alice.of(ev.CallEnded) if e.session is session] == ["hangup"]
    assert [(e.reason, e.by_remote) for e in bob.of(ev.CallEnded)][-1] == ("bye", True)

    register(net, alice, 0)
    register(net, bob, 0)
    assert_nothing_left(net, proxy, alice, bob)

    # the loss was real, and the authentication happened on the wire
    fates = [r.fate for r in net.log]
    assert fates.count("lost") > 0
    delivered = list(net.delivered())
    statuses = {(parse_message(d.data).cseq.method, d.first_line.split(" ")[1])
                for d in delivered if d.first_line.startswith("SIP/2.0")}
    assert {("REGISTER", "401"), ("INVITE", "407"), ("INVITE", "200"), ("BYE", "200")} <= statuses
    assert (("INVITE", "401") in statuses) is callee_challenges
    acks = [d for d in delivered if d.first_line.startswith("ACK") and d.destination == BOB]
    assert acks, "no ACK for the 2xx reached Bob"


def test_the_loss_is_seeded() -> None:
    """The same seed loses the same datagrams: a failing run can be replayed."""
    def fates(seed: int) -> list[str]:
        net = FakeNetwork(seed=seed, loss=0.3)
        proxy = ProxyRegistrar(PROXY, DOMAIN, REALM, USERS, b"loss-secret-0123456789abcdef")
        alice = Party("alice", ALICE, ("alice-auth", "alice-pw"), 1000)
        net.attach(PROXY, proxy)
        net.attach(ALICE, alice.core, alice.after)
        register(net, alice, 600)
        return [f"{r.fate} {r.datagram.first_line}" for r in net.log]

    assert fates(3) == fates(3)
    assert fates(3) != fates(4)
