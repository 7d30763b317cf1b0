"""The in-memory fake network: timing, seeded faults, and a registrar scenario over it."""

from __future__ import annotations

import attrs
import pytest
from proxykit import ALICE, DOMAIN, PROXY, REALM, SECRET, USERS, authorize, register

from txsipua.core.transport import Address, Outgoing
from txsipua.server.proxy import BindingExpired, ProxyRegistrar
from txsipua.sip.message import Response, parse_message
from txsipua.testing.network import FakeNetwork, Mailbox, first_line

A = ("192.0.2.50", 5060)
B = ("192.0.2.51", 5060)


@attrs.define
class Retransmitter:
    """A toy endpoint: sends ``b"ping"`` at each deadline of a doubling timer, until answered."""

    peer: Address
    deadline: float | None = 0.0
    interval: float = 0.5
    sent_at: list[float] = attrs.field(factory=list)
    answered_at: float | None = None
    _out: list[Outgoing] = attrs.field(factory=list)

    def receive(self, data: bytes, source: Address, now: float) -> None:
        self.answered_at = now
        self.deadline = None

    def outbox(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.sent_at.append(now)
        self._out.append(Outgoing(b"ping", self.peer))
        assert self.deadline is not None
        self.deadline += self.interval
        self.interval *= 2


def test_datagrams_arrive_after_the_latency() -> None:
    """A datagram sent at t arrives at t + latency, with the sender's address as source."""
    net = FakeNetwork(latency=0.01)
    a, b = Mailbox(), Mailbox()
    net.attach(A, a)
    net.attach(B, b)
    a.send(b"OPTIONS sip:b@example.com SIP/2.0\r\n\r\n", B)
    net.run(0.005)
    assert b.received == []
    net.run(1.0)
    assert b.received == [(b"OPTIONS sip:b@example.com SIP/2.0\r\n\r\n", A, 0.01)]
    assert net.now == 1.0
    assert net.ladder() == [(A, B, "OPTIONS sip:b@example.com SIP/2.0")]


def test_timers_fire_in_time_order_and_are_told_the_time() -> None:
    """Endpoint timers fire at their deadlines; nothing sleeps."""
    net = FakeNetwork()
    pinger = Retransmitter(B)
    sink = Mailbox()
    net.attach(A, pinger)
    net.attach(B, sink)
    net.run(8.0)
    assert pinger.sent_at == [0.0, 0.5, 1.5, 3.5, 7.5]
    assert [round(t, 6) for _, _, t in sink.received] == [0.001, 0.501, 1.501, 3.501, 7.501]


def test_an_answer_stops_the_retransmissions() -> None:
    """A reply delivered between two deadlines is seen before the next timer."""
    net = FakeNetwork(latency=0.2)
    pinger = Retransmitter(B)
    echo = Mailbox()
    net.attach(A, pinger, )
    net.attach(B, echo, after=lambda now: echo.send(b"pong", A) if echo.received else None)
    net.run(10.0)
    assert pinger.sent_at == [0.0]
    assert pinger.answered_at == pytest.approx(0.4)


def fates(seed: int, **faults: float) -> list[tuple[str, bool]]:
    """Send 50 datagrams from A to B and return what became of each copy."""
    net = FakeNetwork(seed=seed, **faults)
    a = Mailbox()
    net.attach(A, a)
    net.attach(B, Mailbox())
    for i in range(50):
        a.send(b"%d" % i, B)
    net.run(5.0)
    return [(r.fate, r.duplicate) for r in net.log]


def test_faults_are_reproducible_by_seed() -> None:
    """The same seed loses and duplicates the same datagrams; another seed differs."""
    assert fates(7, loss=0.3, duplication=0.2) == fates(7, loss=0.3, duplication=0.2)
    assert fates(7, loss=0.3, duplication=0.2) != fates(8, loss=0.3, duplication=0.2)
    outcome = fates(7, loss=0.3, duplication=0.2)
    assert 0 < sum(f == "lost" for f, _ in outcome) < 50
    assert any(dup for _, dup in outcome)


def test_total_loss_delivers_nothing() -> None:
    """loss=1 loses every datagram."""
    assert {f for f, _ in fates(1, loss=1.0)} == {"lost"}


def test_reordering_lets_later_datagrams_overtake() -> None:
    """Held-back datagrams arrive after ones sent later; none are lost."""
    net = FakeNetwork(seed=3, reordering=0.5, reorder_delay=0.1)
    a, b = Mailbox(), Mailbox()
    net.attach(A, a)
    net.attach(B, b)
    for i in range(20):
        a.send(b"%02d" % i, B)
    net.run(1.0)
    order = b.take()
    assert sorted(order) == [b"%02d" % i for i in range(20)]
    assert order != sorted(order)


def test_drop_next_loses_exactly_the_chosen_datagrams() -> None:
    """drop_next is deterministic, targeted loss."""
    net = FakeNetwork()
    a, b = Mailbox(), Mailbox()
    net.attach(A, a)
    net.attach(B, b)
    net.drop_next(lambda d: d.data.startswith(b"x"), count=2)
    for data in (b"x1", b"y1", b"x2", b"x3"):
        a.send(data, B)
    net.run(1.0)
    assert b.take() == [b"y1", b"x3"]
    assert [r.fate for r in net.log] == ["dropped", "dropped", "delivered", "delivered"]


def test_unattached_destination_is_unreachable() -> None:
    """Datagrams to nobody are recorded as unreachable."""
    net = FakeNetwork()
    a = Mailbox()
    net.attach(A, a)
    a.send(b"hello", B)
    net.run(1.0)
    assert [r.fate for r in net.log] == ["unreachable"]


def test_attach_twice_is_an_error() -> None:
    """One endpoint per address."""
    net = FakeNetwork()
    net.attach(A, Mailbox())
    with pytest.raises(ValueError):
        net.attach(A, Mailbox())


def test_a_timer_that_never_advances_is_reported() -> None:
    """A runaway endpoint raises instead of hanging the test."""

    @attrs.define
    class Stuck(Mailbox):
        def get_timer(self) -> float | None:
            return 0.0

    net = FakeNetwork(max_steps=100)
    net.attach(A, Stuck())
    with pytest.raises(RuntimeError):
        net.run(1.0)


def test_settle_delivers_without_firing_timers() -> None:
    """settle() empties the wire but leaves timers alone."""
    net = FakeNetwork()
    pinger = Retransmitter(B, deadline=5.0)
    a, b = Mailbox(), Mailbox()
    net.attach(A, a)
    net.attach(B, b)
    net.attach(("192.0.2.52", 5060), pinger)
    a.send(b"one", B)
    net.settle()
    assert b.take() == [b"one"]
    assert pinger.sent_at == []
    assert net.in_flight() == 0


def test_register_over_a_duplicating_network() -> None:
    """Duplicated REGISTERs get identical answers; the binding expires through the network clock."""
    net = FakeNetwork(seed=11, duplication=1.0, reorder_delay=0.01)
    server = ProxyRegistrar(PROXY, DOMAIN, REALM, USERS, SECRET, min_expires=60)
    alice = Mailbox()
    net.attach(PROXY, server)
    net.attach(ALICE, alice)
    first = register(expires=120)
    alice.send(first.to_bytes(), PROXY)
    net.run(1.0)
    answers = alice.take()
    assert len(answers) == 4  # two requests, each answered, each answer duplicated
    assert len(set(answers)) == 1
    challenge = parse_message(answers[0])
    assert isinstance(challenge, Response) and challenge.status == 401
    alice.send(authorize(first, challenge, "alice-auth", "alice-pw").to_bytes(), PROXY)
    net.run(2.0)
    finals = [parse_message(d) for d in alice.take()]
    assert {f.status for f in finals if isinstance(f, Response)} == {200}
    assert first_line(answers[0]) == "SIP/2.0 401 Unauthorized"
    expired = []
    while (event := server.next_event()) is not None:
        if isinstance(event, BindingExpired):
            expired.append(event)
    assert expired == []
    net.run(200.0)
    while (event := server.next_event()) is not None:
        if isinstance(event, BindingExpired):
            expired.append(event)
    assert [e.binding.expires_at for e in expired] == [pytest.approx(121.0, abs=0.1)]
    assert server.bindings("sip:alice@example.com", net.now) == []
