"""The shared pacing clock: one timer for every stream of a reactor (txsipua.net.pacer)."""

from __future__ import annotations

import random

import attrs
import pytest
from twisted.internet import task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher

from txsipua.media.offer_answer import PCMU, MediaParams
from txsipua.media.rtp import RtpPacket
from txsipua.net.pacer import Pacer, pacer_for
from txsipua.net.rtp import MediaStream


@attrs.define(eq=False)
class Recorder:
    """A pace client that records when it was called and asks again every ``period`` s, ``times`` times."""

    period: float
    times: int
    calls: list[float] = attrs.field(factory=list)

    def pace(self, now: float) -> float | None:
        self.calls.append(now)
        return now + self.period if len(self.calls) < self.times else None


class FakeDatagramTransport:
    """Collects ``write(data, addr)``."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))


def test_one_delayed_call_serves_many_clients() -> None:
    """Three clients on different grids share one IDelayedCall; each is called at its deadlines."""
    clock = task.Clock()
    pacer = Pacer(clock, slack=0.0)
    a, b, c = Recorder(0.02, 3), Recorder(0.03, 2), Recorder(0.02, 1)
    pacer.schedule(a, 0.0)
    pacer.schedule(b, 0.005)
    pacer.schedule(c, 0.01)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    for _ in range(10):
        clock.advance(0.005)
        assert len(clock.getDelayedCalls()) <= 1
    assert a.calls == [0.0, 0.02, 0.04]
    assert b.calls == [0.005, 0.035]
    assert c.calls == [0.01]
    assert len(pacer) == 0 and not clock.getDelayedCalls()


def test_slack_coalesces_close_deadlines_into_one_tick() -> None:
    """Deadlines within the slack of the earliest are served by the same wake-up, never later."""
    clock = task.Clock()
    pacer = Pacer(clock, slack=0.002)
    clients = [Recorder(1.0, 1) for _ in range(5)]
    for i, client in enumerate(clients):
        pacer.schedule(client, 0.010 + i * 0.0004)
    clock.advance(0.010)
    assert [cl.calls for cl in clients] == [[0.010]] * 5
    assert pacer.ticks == 1 and pacer.calls == 5


def test_reschedule_and_cancel_replace_the_deadline() -> None:
    """schedule() moves a client's deadline; cancel() forgets it and disarms the timer when none is left."""
    clock = task.Clock()
    pacer = Pacer(clock, slack=0.0)
    r = Recorder(1.0, 1)
    pacer.schedule(r, 0.5)
    pacer.schedule(r, 0.1)
    assert pacer.deadline(r) == 0.1
    clock.advance(0.1)
    assert r.calls == [0.1]
    pacer.schedule(r, 0.3)
    pacer.cancel(r)
    assert not clock.getDelayedCalls() and pacer.deadline(r) is None
    clock.advance(1)
    assert r.calls == [0.1]


def test_failing_client_is_logged_and_dropped_others_go_on() -> None:
    """A client that raises is dropped with a logged failure; the tick serves the rest."""

    class Broken:
        def pace(self, now: float) -> float | None:
            raise RuntimeError("boom")

    clock = task.Clock()
    pacer = Pacer(clock, slack=0.0)
    good = Recorder(0.02, 2)
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    try:
        pacer.schedule(Broken(), 0.0)
        pacer.schedule(good, 0.0)
        clock.advance(0)
        clock.advance(0.02)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert good.calls == [0.0, 0.02]
    assert any("failed" in str(e.get("log_format")) for e in observer)
    assert len(pacer) == 0


def test_slack_must_be_small() -> None:
    """A slack of 10 ms or more would send packets a whole frame early: refused."""
    with pytest.raises(ValueError):
        Pacer(task.Clock(), slack=0.01)


def test_pacer_for_is_shared_per_reactor() -> None:
    """Every stream of one reactor shares one pacer; another reactor has its own."""
    c1, c2 = task.Clock(), task.Clock()
    assert pacer_for(c1) is pacer_for(c1)
    assert pacer_for(c1) is not pacer_for(c2)


def test_many_streams_one_timer_and_late_packets_counted() -> None:
    """50 playing streams keep one delayed call; a blocked reactor makes late packets, counted."""
    clock = task.Clock()
    pacer = Pacer(clock)
    streams = []
    for i in range(50):
        stream = MediaStream(clock, ssrc=i, rng=random.Random(i), media_timeout=None, pacer=pacer, limit=None)
        transport = FakeDatagramTransport()
        stream.makeConnection(transport)
        stream.configure(MediaParams("127.0.0.1", 40000 + i, PCMU, None, "sendrecv"))
        stream.play(bytes(320 * 10))
        streams.append((stream, transport))
        clock.advance(0.0003)  # spread the streams' grids
    assert len(clock.getDelayedCalls()) == 1
    for _ in range(80):
        clock.advance(0.001)  # a punctual reactor
        assert len(clock.getDelayedCalls()) == 1
    assert all(s.stats.packets_late == 0 for s, _ in streams)
    clock.advance(0.05)  # the reactor was blocked 50 ms: the slots due meanwhile are late
    assert all(s.stats.packets_late >= 2 for s, _ in streams)
    for _ in range(400):
        clock.advance(0.001)
    for _stream, transport in streams:
        packets = [RtpPacket.parse(d) for d, _ in transport.written]
        assert len(packets) == 10
        assert [p.timestamp - packets[0].timestamp for p in packets] == [160 * k for k in range(10)]
    assert not clock.getDelayedCalls()
    assert pacer.ticks < 50 * 10 / 2  # coalesced: far fewer wake-ups than packets
