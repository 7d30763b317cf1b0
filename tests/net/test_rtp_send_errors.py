"""A stream whose socket refuses to send: packets dropped and counted, pacing goes on, stop() completes."""

from __future__ import annotations

import errno
import random
from typing import Any

import pytest
from twisted.internet import error, task
from twisted.internet.address import IPv4Address
from twisted.logger import globalLogPublisher

from txsipua.media.offer_answer import PCMU, MediaParams
from txsipua.net.pacer import pacer_for
from txsipua.net.rtp import MediaStream, MediaStreamLimit

REMOTE = ("127.0.0.1", 40000)
GOOD = ("127.0.0.1", 40002)

#: What sendto raises for addresses a stream may be given by a peer's SDP.
SEND_ERRORS = [
    pytest.param(error.InvalidAddressError("::1", "IPv6 address given to an IPv4 socket"), id="ipv6-to-ipv4"),
    pytest.param(PermissionError(errno.EACCES, "Permission denied"), id="broadcast"),
    pytest.param(OSError(errno.EINVAL, "Invalid argument"), id="einval"),
    pytest.param(error.MessageLengthError("message too long"), id="too-long"),
]


class FailingPort:
    """A UDP port that binds nothing; its writes raise ``failure`` while it is set."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.failure: Exception | None = None
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.closed = False

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.failure is not None:
            raise self.failure
        self.written.append((data, addr))

    def getHost(self) -> IPv4Address:  # noqa: N802 - Twisted's name
        return IPv4Address("UDP", "127.0.0.1", 20000)

    def stopListening(self) -> None:  # noqa: N802 - Twisted's name
        self.closed = True
        self.protocol.doStop()


class UdpClock(task.Clock):
    """A fake clock with ``listenUDP`` giving :class:`FailingPort` s."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FailingPort] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> FailingPort:  # noqa: N802
        p = FailingPort(protocol)
        self.ports.append(p)
        protocol.makeConnection(p)
        return p


def params(address: tuple[str, int] = REMOTE) -> MediaParams:
    return MediaParams(remote_address=address[0], remote_port=address[1], codec=PCMU, telephone_event_pt=None,
                       direction="sendrecv")


@pytest.fixture
def logged() -> Any:
    """The log events emitted during the test, as (level name, event)."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def started(**kwargs: Any) -> tuple[MediaStream, UdpClock, FailingPort]:
    clock = UdpClock()
    kwargs.setdefault("media_timeout", None)
    stream = MediaStream(clock, ssrc=0x1234, rng=random.Random(7), **kwargs)
    stream.start()
    return stream, clock, clock.ports[0]


@pytest.mark.parametrize("failure", SEND_ERRORS)
def test_stop_completes_when_the_rtcp_bye_cannot_be_sent(failure, logged):
    limit = MediaStreamLimit(maximum=1)
    stream, clock, port = started(limit=limit, rtcp_interval=5.0)
    stream.send_silence_when_idle()
    stream.configure(params())
    clock.advance(0.1)
    assert len(clock.ports) == 2  # RTP and, without rtcp-mux, RTCP on its own socket (the BYE's)
    for p in clock.ports:
        p.failure = failure
    results: list[object] = []
    stream.stop().addBoth(results.append)
    assert results == [None]
    assert port.closed and clock.ports[1].closed and limit.active == 0
    assert len(pacer_for(clock)) == 0 and not clock.getDelayedCalls()
    assert stream.stats.send_failed == 1
    assert sum(1 for e in logged if "not sent" in e.get("log_format", "")) == 1
    assert not [e for e in logged if e.get("log_failure") is not None]


@pytest.mark.parametrize("failure", SEND_ERRORS)
def test_a_refused_packet_is_dropped_and_counted_and_the_stream_recovers(failure, logged):
    stream, clock, port = started()
    stream.send_silence_when_idle()
    port.failure = failure
    stream.configure(params())
    played = stream.play(bytes(2 * 8 * 100))  # 100 ms: five frames, all refused
    for _ in range(10):
        clock.advance(0.02)
    failed = stream.stats.send_failed
    assert failed >= 9 and stream.stats.packets_sent == 0  # one a slot (20 ms)
    assert played.called and played.result is True  # the frames were lost, as a network loses them
    assert pacer_for(clock).deadline(stream) is not None  # still pacing
    assert sum(1 for e in logged if "not sent" in e.get("log_format", "")) == 1  # logged once
    assert not [e for e in logged if e.get("log_failure") is not None]

    port.failure = None
    stream.configure(params(GOOD))  # a re-INVITE gives an address the socket can send to
    again = stream.play(bytes(2 * 8 * 40))
    for _ in range(5):
        clock.advance(0.02)
    assert again.called and again.result is True
    assert stream.stats.packets_sent >= 5 and {addr for _, addr in port.written} == {GOOD}
    assert stream.stats.send_failed == failed
    stream.stop()


def test_failures_are_logged_once_per_thousand():
    stream, clock, port = started()
    stream.send_silence_when_idle()
    port.failure = PermissionError(errno.EACCES, "Permission denied")
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        stream.configure(params())
        for _ in range(2100):
            clock.advance(0.02)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert 2000 <= stream.stats.send_failed < 2200
    assert [e["n"] for e in events if "not sent" in e.get("log_format", "")] == [1, 1000, 2000]
    stream.stop()


def test_an_unexpected_error_in_a_slot_does_not_lose_the_stream(logged):
    """Whatever pace() raises, the Pacer keeps the stream while it has something to send."""
    stream, clock, port = started()
    raised = []

    def trace(direction: str, data: bytes, local: object, peer: object) -> None:
        if not raised:
            raised.append(data)
            raise RuntimeError("a trace hook failed")

    stream.trace = trace
    stream.configure(params())
    played = stream.play(bytes(2 * 8 * 100))
    for _ in range(8):
        clock.advance(0.02)
    assert raised and played.called and played.result is True
    assert stream.stats.packets_sent == 4  # the frame being sent when the hook raised is lost
    assert len([e for e in logged if e.get("log_failure") is not None]) == 1
    # pacing ended with the audio, and starts again on the next play()
    assert pacer_for(clock).deadline(stream) is None
    again = stream.play(bytes(2 * 8 * 40))
    for _ in range(4):
        clock.advance(0.02)
    assert again.called and again.result is True and stream.stats.packets_sent == 6
    stream.stop()


def test_an_error_on_every_slot_ends_no_stream_and_pacing_resumes_when_it_stops(logged):
    stream, clock, port = started()
    stream.send_silence_when_idle()
    failing = [True]

    def trace(direction: str, data: bytes, local: object, peer: object) -> None:
        if failing[0]:
            raise RuntimeError("broken hook")

    stream.trace = trace
    stream.configure(params())
    for _ in range(50):
        clock.advance(0.02)
    assert stream.stats.packets_sent == 0 and pacer_for(clock).deadline(stream) is not None
    assert len([e for e in logged if e.get("log_failure") is not None]) == 1  # logged once, not per slot
    failing[0] = False
    for _ in range(5):
        clock.advance(0.02)
    assert stream.stats.packets_sent >= 4
    stream.stop()

