"""MediaStream against outside peers: who is heard, how big a recording gets, media timeout, socket cap."""

from __future__ import annotations

import random

import attrs
import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.testing import FakeDatagramTransport, MemoryReactorClock

from txsipua.media import g711
from txsipua.media.dtmf import dtmf_packets
from txsipua.media.offer_answer import PCMU, MediaParams, make_answer, make_offer, negotiate
from txsipua.media.rtp import RtpPacket
from txsipua.net.rtp import MediaStream, MediaStreamLimit, MediaUnavailable

REMOTE = ("127.0.0.1", 40000)
OTHER_PORT = ("127.0.0.1", 40002)
OTHER_HOST = ("127.0.0.2", 40000)
FRAME = g711.ulaw_encode(b"\x10\x00" * 160)


def params(**changes) -> MediaParams:
    base = MediaParams(remote_address=REMOTE[0], remote_port=REMOTE[1], codec=PCMU, telephone_event_pt=101,
                       direction="sendrecv", local_telephone_event_pt=101)
    return attrs.evolve(base, **changes)


def stream_on_clock(**kwargs) -> tuple[MediaStream, task.Clock, FakeDatagramTransport]:
    clock = task.Clock()
    kwargs.setdefault("limit", None)
    stream = MediaStream(clock, ssrc=0x1234, rng=random.Random(3), **kwargs)
    transport = FakeDatagramTransport()
    stream.makeConnection(transport)
    return stream, clock, transport


def audio(seq: int, ts: int, ssrc: int = 7) -> bytes:
    return RtpPacket(0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload=FRAME).to_bytes()


def digit(d: str, ssrc: int = 7) -> list[bytes]:
    return [p.to_bytes() for p in dtmf_packets(d, timestamp=8000, ssrc=ssrc)]


# --- who is heard -----------------------------------------------------------

@pytest.mark.parametrize("source", [OTHER_PORT, OTHER_HOST])
def test_media_from_an_unnegotiated_source_is_dropped(source):
    """Audio and telephone events from another address or port never reach the recording or on_dtmf."""
    stream, _, _ = stream_on_clock(record=True)
    stream.configure(params())
    digits: list[str] = []
    stream.on_dtmf = digits.append
    stream.datagramReceived(audio(1, 160), source)
    for data in digit("5"):
        stream.datagramReceived(data, source)
    assert digits == [] and stream.recorded() == b""
    assert stream.stats.packets_received == 0 and stream.stats.dtmf_received == 0
    assert stream.stats.wrong_source == 1 + len(digit("5"))
    # the negotiated source is heard
    stream.datagramReceived(audio(1, 160), REMOTE)
    for data in digit("9"):
        stream.datagramReceived(data, REMOTE)
    assert digits == ["9"] and len(stream.recorded()) == 320


def test_nothing_is_heard_before_negotiation():
    stream, _, _ = stream_on_clock(record=True)
    digits: list[str] = []
    stream.on_dtmf = digits.append
    for data in digit("1"):
        stream.datagramReceived(data, REMOTE)
    assert digits == [] and stream.stats.wrong_source == len(digit("1"))


def test_ipv4_mapped_source_matches_and_names_never_do():
    stream, _, _ = stream_on_clock()
    stream.configure(params())
    stream.datagramReceived(audio(1, 0), ("::ffff:127.0.0.1", REMOTE[1]))
    assert stream.stats.packets_received == 1
    stream.configure(params(remote_address="media.example.com"))
    stream.datagramReceived(audio(2, 160), REMOTE)
    assert stream.stats.packets_received == 1 and stream.stats.wrong_source == 1


def test_latch_follows_the_first_source_and_sends_there():
    """latch=True: the first source heard is kept (and sent to); a third one is still refused."""
    stream, clock, transport = stream_on_clock(latch=True)
    stream.configure(params(remote_address="192.0.2.10"))
    stream.datagramReceived(audio(1, 0), OTHER_HOST)
    assert stream.latched == OTHER_HOST and stream.stats.packets_received == 1
    stream.datagramReceived(audio(2, 160), OTHER_PORT)
    assert stream.stats.wrong_source == 1
    stream.play(b"\x00\x00" * 160)
    clock.advance(0)
    assert [addr for _, addr in transport.written] == [OTHER_HOST]
    # a new negotiation forgets the latch
    stream.configure(params(remote_address="192.0.2.11"))
    assert stream.latched is None
    stream.datagramReceived(audio(3, 320), OTHER_PORT)
    assert stream.latched == OTHER_PORT


def test_without_latch_a_foreign_source_never_takes_over():
    stream, clock, transport = stream_on_clock()
    stream.configure(params())
    for i in range(5):
        stream.datagramReceived(audio(i, 160 * i), OTHER_PORT)
    assert stream.latched is None and stream.stats.wrong_source == 5
    stream.play(b"\x00\x00" * 160)
    clock.advance(0)
    assert [addr for _, addr in transport.written] == [REMOTE]


def test_ssrc_change_keeps_loss_and_continues_recording():
    """The peer restarts with a new SSRC: loss so far is kept, the recording continues at its end."""
    stream, _, _ = stream_on_clock(record=True)
    stream.configure(params())
    for seq in (10, 11, 13):  # one lost
        stream.datagramReceived(audio(seq, seq * 160), REMOTE)
    assert stream.stats.packets_lost == 1
    before = len(stream.recorded())
    stream.datagramReceived(audio(500, 999_999, ssrc=8), REMOTE)
    stream.datagramReceived(audio(501, 999_999 + 160, ssrc=8), REMOTE)
    assert stream.stats.ssrc_changes == 1
    assert stream.stats.packets_lost == 1
    assert len(stream.recorded()) == before + 640
    stream.datagramReceived(audio(503, 999_999 + 480, ssrc=8), REMOTE)
    assert stream.stats.packets_lost == 2


# --- recording size ---------------------------------------------------------

def test_recording_is_opt_in():
    stream, _, _ = stream_on_clock()
    stream.configure(params())
    stream.datagramReceived(audio(1, 0), REMOTE)
    assert stream.recorded() == b"" and stream.stats.packets_received == 1
    stream.start_recording()
    stream.datagramReceived(audio(2, 160), REMOTE)
    assert len(stream.recorded()) == 320


def test_timestamp_jumps_cannot_inflate_the_recording():
    """Each packet jumps 10 s ahead, 50 packets/s for 10 s: the recording stays about as long as the call."""
    stream, clock, _ = stream_on_clock(record=True)
    stream.configure(params())
    received = 0
    for i in range(500):
        data = audio(i, i * 80_000)
        received += len(data)
        stream.datagramReceived(data, REMOTE)
        clock.advance(0.02)
    held = len(stream.recorded())
    assert held <= 16_000 * (10 + 0.5)  # real time, 16 kB/s, plus a little slack
    assert held / received < 2 * 16_000 / 8_000 + 1  # not ~900x any more
    assert stream.stats.recording_gaps_cut >= 499


def test_silence_gap_is_kept_up_to_the_bound():
    """A 3 s silence (VAD) is filled with max_recording_gap of silence; a larger bound keeps it whole."""
    for bound, expected_gap in ((0.5, 0.5), (5.0, 3.0)):
        stream, clock, _ = stream_on_clock(record=True, max_recording_gap=bound)
        stream.configure(params())
        stream.datagramReceived(audio(1, 0), REMOTE)
        clock.advance(3.0)
        stream.datagramReceived(audio(2, 160 + 24_000), REMOTE)
        rec = stream.recorded()
        assert len(rec) == 320 + round(expected_gap * 16_000) + 320, bound
        assert rec[320:-320] == bytes(len(rec) - 640)


# --- media timeout ----------------------------------------------------------

def test_media_timeout_fires_once_after_silence():
    stream, clock, _ = stream_on_clock(media_timeout=30)
    fired: list[bool] = []
    stream.on_timeout = lambda: fired.append(True)
    stream.configure(params())
    for i in range(10):  # media for 10 s keeps it alive
        clock.advance(1)
        stream.datagramReceived(audio(i, 8000 * i), REMOTE)
    clock.advance(29.9)
    assert fired == []
    stream.datagramReceived(b"junk-from-elsewhere", OTHER_PORT)  # a foreign source does not count
    clock.advance(0.2)
    assert fired == [True]
    clock.advance(100)
    assert fired == [True] and not clock.getDelayedCalls()


def test_rtcp_counts_as_media():
    stream, clock, _ = stream_on_clock(media_timeout=5)
    fired: list[bool] = []
    stream.on_timeout = lambda: fired.append(True)
    stream.configure(params())
    for _ in range(4):
        clock.advance(4)
        stream.datagramReceived(bytes.fromhex("80c80006") + bytes(24), REMOTE)
    assert fired == []
    clock.advance(5)
    assert fired == [True]


@pytest.mark.parametrize("changes", [{"direction": "sendonly"}, {"direction": "recvonly"},
                                     {"direction": "inactive"}, {"remote_address": "0.0.0.0"}])
def test_media_timeout_is_off_while_on_hold(changes):
    """Either side on hold (the peer holding us sends sendonly: we are recvonly): no timeout."""
    stream, clock, _ = stream_on_clock(media_timeout=5)
    fired: list[bool] = []
    stream.on_timeout = lambda: fired.append(True)
    stream.configure(params(**changes))
    clock.advance(60)
    assert fired == [] and not clock.getDelayedCalls()
    stream.configure(params())  # back to sendrecv: a full timeout again
    clock.advance(4.9)
    assert fired == []
    clock.advance(0.2)
    assert fired == [True]


def test_media_timeout_off_while_held_and_stopped():
    stream, clock, _ = stream_on_clock(media_timeout=5)
    fired: list[bool] = []
    stream.on_timeout = lambda: fired.append(True)
    stream.configure(params())
    stream.hold()
    clock.advance(60)
    assert fired == []
    stream.resume()
    clock.advance(4)
    stream.stop()
    clock.advance(60)
    assert fired == [] and not clock.getDelayedCalls()


def test_media_timeout_none_disables():
    stream, clock, _ = stream_on_clock(media_timeout=None)
    stream.on_timeout = lambda: pytest.fail("no timeout expected")
    stream.configure(params())
    clock.advance(3600)
    assert not clock.getDelayedCalls()


# --- socket budget ----------------------------------------------------------

class UdpReactor(MemoryReactorClock):
    """A memory reactor with listenUDP: ports that bind nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.udp_ports: list[object] = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):  # noqa: N802
        reactor = self

        class Port:
            def getHost(self):  # noqa: N802
                return IPv4Address("UDP", interface, 20000 + len(reactor.udp_ports))

            def stopListening(self):  # noqa: N802
                reactor.udp_ports.remove(self)

        p = Port()
        self.udp_ports.append(p)
        return p


def test_stream_cap_refuses_with_503_and_stop_frees_the_slot():
    reactor = UdpReactor()
    limit = MediaStreamLimit(maximum=2)
    a, b, c = (MediaStream(reactor, limit=limit) for _ in range(3))
    a.start()
    b.start()
    with pytest.raises(MediaUnavailable) as info:
        c.start()
    assert info.value.status == 503 and ("Retry-After", "5") in info.value.headers
    assert limit.active == 2 and limit.refused == 1 and len(reactor.udp_ports) == 2
    a.stop()
    a.stop()  # idempotent: one slot back only
    assert limit.active == 1
    c.start()
    assert limit.active == 2


class NoSocketsReactor(MemoryReactorClock):
    """listenUDP fails like a process at its file-descriptor limit."""

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):  # noqa: N802
        raise CannotListenError(interface, port, OSError(24, "Too many open files"))


def test_no_socket_left_is_media_unavailable_and_holds_no_slot():
    limit = MediaStreamLimit(maximum=4)
    stream = MediaStream(NoSocketsReactor(), limit=limit)
    with pytest.raises(MediaUnavailable) as info:
        stream.start()
    assert info.value.status == 503 and "Too many open files" in str(info.value)
    assert limit.active == 0


@pytest_twisted.inlineCallbacks
def test_loopback_injected_dtmf_from_a_third_socket_is_ignored():
    """Real UDP: A and B negotiated; C sends telephone events and audio to B; only A's digits count."""
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol

    a = MediaStream(reactor, limit=None)
    b = MediaStream(reactor, limit=None, record=True)
    a_port, b_port = a.start(), b.start()
    offer = make_offer("127.0.0.1", a_port, session_id=1)
    answer = make_answer(offer, "127.0.0.1", b_port, session_id=2)
    a.configure(negotiate(offer, answer))
    b.configure(negotiate(answer, offer))
    got: list[str] = []
    b.on_dtmf = got.append
    intruder = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
    try:
        for data in digit("0", ssrc=666):
            intruder.write(data, ("127.0.0.1", b_port))
        for i in range(20):
            intruder.write(audio(i, 80_000 * i, ssrc=666), ("127.0.0.1", b_port))
        yield task.deferLater(reactor, 0.05, lambda: None)
        assert got == [] and b.recorded() == b""
        assert b.stats.wrong_source == 20 + len(digit("0"))
        yield a.send_dtmf("7", duration_ms=40)
        yield task.deferLater(reactor, 0.05, lambda: None)
        assert got == ["7"]
    finally:
        yield intruder.stopListening()
        yield a.stop()
        yield b.stop()
