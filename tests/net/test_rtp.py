"""Tests for txsipua.net.rtp.MediaStream: pacing on a fake clock, then two streams on loopback."""

from __future__ import annotations

import math
import random
import struct

import attrs
import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.testing import FakeDatagramTransport

from txsipua.errors import LocalProtocolError
from txsipua.media import g711
from txsipua.media.dtmf import DtmfEvent, dtmf_packets
from txsipua.media.offer_answer import (
    PCMA,
    PCMU,
    Codec,
    MediaParams,
    make_answer,
    make_offer,
    negotiate,
)
from txsipua.media.rtp import RtpPacket
from txsipua.media.wav import read_wav, write_wav
from txsipua.net.rtp import MediaStream

REMOTE = ("127.0.0.1", 40000)


def tone(ms: int, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """A sine tone as 16-bit little-endian PCM at 8000 Hz."""
    n = 8 * ms
    return struct.pack(f"<{n}h", *(round(amplitude * math.sin(2 * math.pi * freq * i / 8000)) for i in range(n)))


def samples(pcm: bytes) -> list[int]:
    """Unpack 16-bit little-endian PCM."""
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def params(**changes) -> MediaParams:
    """Parameters sending PCMU to REMOTE with telephone-event 101."""
    base = MediaParams(remote_address=REMOTE[0], remote_port=REMOTE[1], codec=PCMU, telephone_event_pt=101,
                       direction="sendrecv", local_telephone_event_pt=101)
    return attrs.evolve(base, **changes)


def fake_stream(**kwargs) -> tuple[MediaStream, task.Clock, FakeDatagramTransport]:
    """A stream on a fake clock and a fake datagram transport: no sockets (no media timeout unless asked)."""
    kwargs.setdefault("media_timeout", None)
    clock = task.Clock()
    stream = MediaStream(clock, ssrc=0x1234, rng=random.Random(7), **kwargs)
    transport = FakeDatagramTransport()
    stream.makeConnection(transport)
    return stream, clock, transport


def sent(transport: FakeDatagramTransport) -> list[RtpPacket]:
    """Packets written so far, parsed; all must go to REMOTE."""
    assert {addr for _, addr in transport.written} <= {REMOTE}
    return [RtpPacket.parse(data) for data, _ in transport.written]


def test_play_is_paced_every_20ms():
    """One packet per 20 ms on the injected clock; timestamps +160, sequence +1, marker first only."""
    stream, clock, transport = fake_stream()
    stream.configure(params())
    audio = tone(200)
    done = stream.play(audio)
    results: list[bool] = []
    done.addCallback(results.append)
    clock.advance(0)
    assert len(transport.written) == 1
    for i in range(1, 9):
        clock.advance(0.02)
        assert len(transport.written) == i + 1, i
        assert results == []
    clock.advance(0.02)
    assert results == [True]
    packets = sent(transport)
    assert len(packets) == 10
    assert [p.marker for p in packets] == [True] + [False] * 9
    assert all(p.payload_type == 0 and p.ssrc == 0x1234 and len(p.payload) == 160 for p in packets)
    assert [(p.sequence - packets[0].sequence) & 0xFFFF for p in packets] == list(range(10))
    assert [(p.timestamp - packets[0].timestamp) & 0xFFFFFFFF for p in packets] == [160 * i for i in range(10)]
    assert b"".join(p.payload for p in packets) == g711.ulaw_encode(audio)
    clock.advance(1)
    assert len(transport.written) == 10
    assert not clock.getDelayedCalls()
    assert stream.stats.packets_sent == 10 and stream.stats.octets_sent == 1600


def test_late_reactor_catches_up_without_drift():
    """If the clock jumps 50 ms, the two due frames go out at once and the schedule keeps its grid."""
    stream, clock, transport = fake_stream()
    stream.configure(params(codec=PCMA))
    stream.play(tone(200))
    clock.advance(0)
    clock.advance(0.05)  # slots at 0.02 and 0.04 are due
    assert len(transport.written) == 3
    clock.advance(0.01)  # slot at 0.06
    assert len(transport.written) == 4
    assert {p.payload_type for p in sent(transport)} == {8}


def test_peer_ptime_30ms_and_clamping():
    """The peer's ptime sets frame size and interval (30 ms: 240 samples); 1 ms is clamped to 10 ms."""
    stream, clock, transport = fake_stream()
    stream.configure(params(ptime=30))
    stream.play(tone(90))
    clock.advance(0)
    clock.advance(0.029)
    assert len(transport.written) == 1
    clock.advance(0.001)
    clock.advance(0.03)
    packets = sent(transport)
    assert [len(p.payload) for p in packets] == [240] * 3
    assert (packets[1].timestamp - packets[0].timestamp) & 0xFFFFFFFF == 240
    stream.configure(params(ptime=1))
    stream.play(tone(20))
    clock.advance(0)
    clock.advance(0.01)
    assert [len(p.payload) for p in sent(transport)[3:]] == [80, 80]


def test_reconfigure_mid_play_new_destination_and_ptime():
    """A re-INVITE moving the peer sends the rest there, starting a talkspurt; a new ptime re-grids."""
    stream, clock, transport = fake_stream()
    stream.configure(params())
    done = stream.play(tone(100))
    clock.advance(0)
    stream.configure(params(remote_port=40002))
    clock.advance(0.02)
    assert transport.written[-1][1] == ("127.0.0.1", 40002)
    assert RtpPacket.parse(transport.written[-1][0]).marker
    stream.configure(params(remote_port=40002, ptime=40))
    clock.advance(0)
    assert len(RtpPacket.parse(transport.written[-1][0]).payload) == 320
    for _ in range(3):
        clock.advance(0.04)
    assert done.result is True
    total = sum(len(RtpPacket.parse(d).payload) for d, _ in transport.written)
    assert total >= 800


def test_partial_last_frame_padded_and_second_play_continues_burst():
    """A 30 ms clip is two packets (the last padded with silence); a queued clip follows without marker."""
    stream, clock, transport = fake_stream()
    stream.configure(params())
    first = stream.play(tone(30))
    second = stream.play(tone(20))
    clock.advance(0)
    clock.advance(0.02)
    assert first.called and not second.called
    clock.advance(0.02)
    assert second.called
    packets = sent(transport)
    assert len(packets) == 3
    assert packets[1].payload[80:] == g711.ulaw_encode(bytes(160))
    assert [p.marker for p in packets] == [True, False, False]


def test_new_burst_after_silence_has_marker_and_clock_timestamp():
    """After idle time the next burst sets the marker and its timestamp advances with the clock."""
    stream, clock, transport = fake_stream()
    stream.configure(params())
    stream.play(tone(20))
    clock.advance(0)
    clock.advance(1.0)
    stream.play(tone(20))
    clock.advance(0)
    a, b = sent(transport)
    assert b.marker
    assert (b.timestamp - a.timestamp) & 0xFFFFFFFF == 8000


def test_play_waits_for_configure_and_direction():
    """Audio queued before configure, or while recvonly, is sent once allowed."""
    stream, clock, transport = fake_stream()
    done = stream.play(tone(40))
    clock.advance(1)
    assert transport.written == []
    stream.configure(params(direction="recvonly"))
    clock.advance(1)
    assert transport.written == []
    stream.configure(params())
    clock.advance(0)
    clock.advance(0.02)
    assert done.called and len(transport.written) == 2


def test_hold_pauses_and_resume_continues():
    """hold() stops sending mid-clip; resume() sends the rest, with a marker."""
    stream, clock, transport = fake_stream()
    stream.configure(params())
    done = stream.play(tone(100))
    clock.advance(0)
    clock.advance(0.02)
    stream.hold()
    clock.advance(1)
    assert len(transport.written) == 2 and not done.called
    stream.resume()
    clock.advance(0)
    for _ in range(2):
        clock.advance(0.02)
    assert done.called
    packets = sent(transport)
    assert len(packets) == 5
    assert packets[2].marker


def test_send_dtmf_packets_and_audio_pauses():
    """Digits preempt audio; each digit is start/updates/3 ends with one timestamp; then audio resumes."""
    stream, clock, transport = fake_stream()
    stream.configure(params(telephone_event_pt=96))
    audio = stream.play(tone(60))
    clock.advance(0)  # one audio packet
    digits = stream.send_dtmf("1#", duration_ms=60)
    for _ in range(40):
        clock.advance(0.02)
    assert digits.result is True and audio.result is True
    packets = sent(transport)
    kinds = ["a" if p.payload_type == 0 else "d" for p in packets]
    # 1 audio, digit 1 (2 updates + 3 ends), 3 silent slots, digit # (5 packets), 2 more audio
    assert "".join(kinds) == "a" + "d" * 5 + "d" * 5 + "aa"
    events = [(p, DtmfEvent.parse(p.payload)) for p in packets if p.payload_type == 96]
    first, second = events[:5], events[5:]
    assert [e.event for _, e in first] == [1] * 5 and [e.event for _, e in second] == [11] * 5
    assert [e.end for _, e in first] == [False, False, True, True, True]
    assert len({p.timestamp for p, _ in first}) == 1 and len({p.timestamp for p, _ in second}) == 1
    assert first[0][0].marker and second[0][0].marker
    # the second digit starts 3 silent slots after the first ends
    assert (second[0][0].timestamp - first[0][0].timestamp) & 0xFFFFFFFF == 160 * (5 + 3)
    seqs = [p.sequence for p in packets]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == list(range(len(packets)))
    assert stream.stats.dtmf_sent == 2


def test_send_dtmf_without_telephone_event_fails():
    """No telephone-event negotiated: the Deferred fails with LocalProtocolError; bad digits raise."""
    stream, _, _ = fake_stream()
    stream.configure(params(telephone_event_pt=None))
    failure = []
    stream.send_dtmf("1").addErrback(failure.append)
    assert failure[0].check(LocalProtocolError)
    with pytest.raises(ValueError):
        stream.send_dtmf("1x")


def test_configure_refuses_unknown_codec():
    """Only codecs of txsipua.media.codecs can be sent (G.729 is not one)."""
    stream, _, _ = fake_stream()
    with pytest.raises(LocalProtocolError):
        stream.configure(params(codec=Codec("G729", 18, 8000)))


def test_stop_fires_pending_with_false_and_flushes_dtmf(tmp_path):
    """stop(): pending play/dtmf Deferreds fire False, a digit without end is reported, WAV written."""
    stream, clock, transport = fake_stream()
    stream.configure(params())
    digits: list[str] = []
    stream.on_dtmf = digits.append
    path = tmp_path / "rec.wav"
    stream.record_to(path)
    # an audio packet and a digit whose end packets never come
    stream.datagramReceived(RtpPacket(0, 1, 0, 99, payload=g711.ulaw_encode(tone(20))).to_bytes(), REMOTE)
    stream.datagramReceived(dtmf_packets("9", timestamp=500, ssrc=99)[0].to_bytes(), REMOTE)
    played = stream.play(tone(100))
    clock.advance(0)
    d = stream.stop()
    assert played.result is False
    assert d.called
    assert digits == ["9"]
    # record_to streams: the file holds the received frame, written as it came
    assert read_wav(path)[0] == g711.ulaw_decode(g711.ulaw_encode(tone(20)))
    assert len(read_wav(path)[0]) == 320
    clock.advance(1)
    assert len(transport.written) == 1
    assert stream.play(b"\x00\x00").result is False


def test_receive_counts_loss_duplicates_and_garbage():
    """Loss from sequence gaps (with wrap), duplicates, RTCP and junk are counted; nothing raises."""
    stream, clock, _ = fake_stream()
    stream.configure(params())
    for seq in (65533, 65534, 1, 2, 2, 65535):  # 0 lost, 2 duplicated, 65535 late
        stream.datagramReceived(RtpPacket(0, seq, seq * 160 & 0xFFFFFFFF, 5, payload=b"\xff" * 160).to_bytes(),
                                REMOTE)
    stream.datagramReceived(b"junk", REMOTE)
    stream.datagramReceived(bytes.fromhex("80c80006") + bytes(24), REMOTE)
    s = stream.stats
    assert (s.packets_received, s.packets_lost, s.duplicates, s.invalid, s.rtcp) == (6, 1, 1, 1, 1)


def test_jitter_estimate():
    """RFC 3550 A.8: packets on time give zero jitter; every other one 5 ms late converges to 5 ms."""
    stream, clock, _ = fake_stream()
    stream.configure(params())
    start = clock.seconds()
    for i in range(250):
        late = 0.005 if i >= 50 and i % 2 else 0.0
        clock.advance(start + 0.02 * i + late - clock.seconds())
        stream.datagramReceived(RtpPacket(0, i, 160 * i, 5, payload=b"\xff" * 160).to_bytes(), REMOTE)
        if i == 49:
            assert stream.stats.jitter == pytest.approx(0.0, abs=1e-9)
    assert 0.0045 < stream.stats.jitter < 0.0051


def test_recording_places_audio_by_timestamp():
    """Reordered packets land in order; a lost packet becomes 20 ms of silence; PCMA decoded too."""
    stream, _, _ = fake_stream(record=True)
    stream.configure(params())
    frames = [tone(20, amplitude=1000 * (i + 1)) for i in range(4)]

    def packet(i: int, pt: int = 0) -> bytes:
        encode = g711.ulaw_encode if pt == 0 else g711.alaw_encode
        return RtpPacket(pt, i, 1000 + 160 * i, 77, payload=encode(frames[i])).to_bytes()

    for data in (packet(0), packet(2, pt=8), packet(3)):
        stream.datagramReceived(data, REMOTE)
    rec = stream.recorded()
    assert len(rec) == 4 * 320
    assert rec[:320] == g711.ulaw_decode(g711.ulaw_encode(frames[0]))
    assert rec[320:640] == bytes(320)  # frame 1 lost
    assert rec[640:960] == g711.alaw_decode(g711.alaw_encode(frames[2]))
    stream.datagramReceived(packet(1), REMOTE)  # late arrival fills the hole
    assert stream.recorded()[320:640] == g711.ulaw_decode(g711.ulaw_encode(frames[1]))


def test_hold_stops_recording_but_still_counts():
    """While held, received audio is counted but not recorded."""
    stream, _, _ = fake_stream(record=True)
    stream.configure(params())
    stream.hold()
    stream.datagramReceived(RtpPacket(0, 1, 0, 5, payload=b"\xff" * 160).to_bytes(), REMOTE)
    assert stream.stats.packets_received == 1 and stream.recorded() == b""


def correlation(a: list[int], b: list[int]) -> float:
    """Normalised correlation of two equal-length signals."""
    num = sum(x * y for x, y in zip(a, b, strict=True))
    den = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    return num / den if den else 0.0


def two_streams(reactor) -> tuple[MediaStream, MediaStream]:
    """Two started streams on 127.0.0.1 negotiated through our own offer and answer."""
    a = MediaStream(reactor)
    b = MediaStream(reactor)
    a_port, b_port = a.start(), b.start()
    offer = make_offer("127.0.0.1", a_port, session_id=1)
    answer = make_answer(offer, "127.0.0.1", b_port, session_id=2)
    a.configure(negotiate(offer, answer))
    b.configure(negotiate(answer, offer))
    return a, b


@pytest_twisted.inlineCallbacks
def test_loopback_tone_is_received_and_correlates(tmp_path):
    """A plays 300 ms of tone to B over real UDP; B gets 15 packets and the same audio."""
    from twisted.internet import reactor

    a, b = two_streams(reactor)
    try:
        b.record_to(tmp_path / "b.wav")
        audio = tone(300, freq=700)
        path = tmp_path / "tone.wav"
        write_wav(path, audio)
        result = yield a.play(path)
        assert result is True
        yield task.deferLater(reactor, 0.05, lambda: None)
        assert b.stats.packets_received == 15
        assert b.stats.packets_lost == 0
        assert a.stats.packets_sent == 15
    finally:
        yield a.stop()
        yield b.stop()
    rec = samples(read_wav(tmp_path / "b.wav")[0])  # record_to streamed it to the file
    assert len(rec) == 2400
    assert correlation(rec, samples(audio)) > 0.99


@pytest_twisted.inlineCallbacks
def test_loopback_dtmf_arrives_once_each():
    """Digits sent A->B over real UDP are reported once each, in order."""
    from twisted.internet import reactor

    a, b = two_streams(reactor)
    got: list[str] = []
    b.on_dtmf = got.append
    try:
        result = yield a.send_dtmf("1*#", duration_ms=40)
        assert result is True
        yield task.deferLater(reactor, 0.05, lambda: None)
        assert got == ["1", "*", "#"]
        assert b.stats.dtmf_received == 3
        assert b.stats.packets_received == a.stats.packets_sent == 12
    finally:
        yield a.stop()
        yield b.stop()


def test_a_stream_far_behind_skips_slots_but_keeps_its_place_on_the_grid():
    """Blocked 0.5 s, two streams 10 ms apart stay 10 ms apart (not re-aligned to send in one tick)."""
    clock = task.Clock()
    streams, transports = [], []
    for _ in range(2):
        stream = MediaStream(clock, ssrc=0x1234, rng=random.Random(7), media_timeout=None)
        transport = FakeDatagramTransport()
        stream.makeConnection(transport)
        stream.configure(params())
        streams.append(stream)
        transports.append(transport)
    streams[0].play(tone(2000))
    clock.advance(0.010)
    streams[1].play(tone(2000))
    for _ in range(10):
        clock.advance(0.001)
    clock.advance(0.5)  # the reactor was blocked
    assert all(s.stats.packets_skipped >= 24 for s in streams)  # every slot missed is counted (skipped)
    sent_at: list[list[float]] = [[], []]
    counts = [len(t.written) for t in transports]
    for _ in range(200):
        clock.advance(0.001)
        for i, t in enumerate(transports):
            if len(t.written) > counts[i]:
                sent_at[i].append(round(clock.seconds(), 3))
                counts[i] = len(t.written)
    phases = [{round(t * 1000) % 20 for t in times} for times in sent_at]
    assert len(sent_at[0]) >= 9 and len(sent_at[1]) >= 9
    assert phases[0] == {0} and phases[1] == {10}  # each on its own grid, as before the block
