"""Tests for txsipua.ua.audio.CallAudio on a real MediaStream, a fake clock and a fake datagram transport.

Everything is driven by ``task.Clock``: prompts, barge-in, digit collection
with its timeouts, the async frame stream from a coroutine, paced sending,
and the memory of a 10-minute recording streamed to a file.
"""

from __future__ import annotations

import math
import random
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.testing import FakeDatagramTransport
from zope.interface import implementer

from txsipua.errors import LocalProtocolError
from txsipua.media import g711
from txsipua.media.audio import IAudioSink, MemorySink, PCMSource, SilenceSource, ToneSource
from txsipua.media.dtmf import dtmf_packets
from txsipua.media.offer_answer import PCMU, MediaParams
from txsipua.media.rtp import RtpPacket
from txsipua.media.wav import read_wav
from txsipua.net.rtp import MediaStream
from txsipua.ua.audio import SEND_QUEUE, SEND_QUEUE_MAX, CallAudio

REMOTE = ("127.0.0.1", 40000)
PARAMS = MediaParams(remote_address=REMOTE[0], remote_port=REMOTE[1], codec=PCMU, telephone_event_pt=101,
                     direction="sendrecv", local_telephone_event_pt=101)


def setup() -> tuple[CallAudio, MediaStream, task.Clock, FakeDatagramTransport]:
    """A configured stream on a fake clock with a CallAudio attached."""
    clock = task.Clock()
    stream = MediaStream(clock, ssrc=0x1234, rng=random.Random(7), media_timeout=None)
    transport = FakeDatagramTransport()
    stream.makeConnection(transport)
    stream.configure(PARAMS)
    audio = CallAudio(clock)
    audio.attach(stream)
    return audio, stream, clock, transport


def audio_sent(transport: FakeDatagramTransport) -> list[RtpPacket]:
    return [p for p in (RtpPacket.parse(d) for d, _ in transport.written) if p.payload_type == 0]


def tone(ms: int, freq: float = 1000.0, amplitude: int = 8000) -> bytes:
    n = 8 * ms
    return struct.pack(f"<{n}h", *(round(amplitude * math.sin(2 * math.pi * freq * i / 8000)) for i in range(n)))


def receive(stream: MediaStream, seq: int, pcm: bytes, ssrc: int = 99) -> None:
    stream.datagramReceived(RtpPacket(0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc,
                                      payload=g711.ulaw_encode(pcm)).to_bytes(), REMOTE)


def press(stream: MediaStream, digit: str, ts: int) -> None:
    for packet in dtmf_packets(digit, timestamp=ts, ssrc=99):
        stream.datagramReceived(packet.to_bytes(), REMOTE)


def test_a_prompt_plays_paced_and_fires_done() -> None:
    """A 100 ms prompt: 5 packets at 20 ms steps (then the burst ends after its hangover); Deferred "done"."""
    audio, stream, clock, transport = setup()
    results: list[str] = []
    audio.play(ToneSource(1000.0, 0.1)).addCallback(results.append)
    clock.advance(0)
    for _ in range(12):
        clock.advance(0.02)
    packets = audio_sent(transport)
    assert results == ["done"]
    assert 5 <= len(packets) <= 5 + 6  # the prompt, then at most the hangover's silence
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert g711.ulaw_decode(packets[0].payload) == g711.ulaw_decode(g711.ulaw_encode(tone(20)))
    count = len(transport.written)
    clock.advance(1.0)
    assert len(transport.written) == count  # nothing to send: the stream is quiet


@pytest.mark.parametrize("how", ["stop", "cancel"])
def test_stopping_a_prompt_really_stops_it(how: str) -> None:
    """stop_playing() or cancelling the Deferred: no more of the prompt is sent."""
    audio, stream, clock, transport = setup()
    outcome: list[Any] = []
    d = audio.play(ToneSource(1000.0, 10.0))
    d.addBoth(outcome.append)
    clock.advance(0)
    for _ in range(5):
        clock.advance(0.02)
    if how == "stop":
        audio.stop_playing()
        assert outcome == ["stopped"]
    else:
        d.cancel()
        assert isinstance(outcome[0].value, defer.CancelledError)
    assert not audio.playing
    for _ in range(50):
        clock.advance(0.02)
    loud = [p for p in audio_sent(transport) if max(abs(s) for s in struct.unpack("<160h", g711.ulaw_decode(p.payload))) > 1000]
    assert len(loud) <= 7  # what was sent before the stop (and one read ahead), not 10 s of tone


def test_the_stream_level_play_cancel_stops_too() -> None:
    """MediaStream.play's Deferred cancelled: its audio leaves the queue (the issue's "prompt plays on")."""
    _, stream, clock, transport = setup()
    d = stream.play(tone(2000))
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    clock.advance(0)
    clock.advance(0.02)
    d.cancel()
    sent = len(transport.written)
    for _ in range(20):
        clock.advance(0.02)
    assert len(transport.written) == sent


def test_dtmf_barge_in_stops_the_prompt_and_the_digit_is_collected() -> None:
    """barge_in_dtmf: an RFC 4733 digit ends the prompt ("dtmf"); collect_digits then gets it first."""
    audio, stream, clock, _ = setup()
    played: list[str] = []
    audio.play(ToneSource(1000.0, 5.0), barge_in_dtmf=True).addCallback(played.append)
    clock.advance(0.1)
    press(stream, "4", 8000)
    assert played == ["dtmf"]
    got: list[Any] = []
    audio.collect_digits(max_digits=3, timeout=5, inter_digit_timeout=2).addCallback(got.append)
    press(stream, "2", 9000)
    audio.digit_received("9", via="info")  # the SIP INFO path feeds the same collector
    assert got == ["429"] and got[0].reason == "max"


def test_voice_barge_in_needs_energy_for_several_frames() -> None:
    """barge_in_voice: two loud frames are not enough, three in a row stop the prompt ("voice")."""
    audio, stream, clock, _ = setup()
    played: list[str] = []
    audio.play(SilenceSource(5.0), barge_in_voice=True, voice_frames=3).addCallback(played.append)
    clock.advance(0.02)
    receive(stream, 1, tone(20, 300))
    receive(stream, 2, tone(20, 300))
    receive(stream, 3, bytes(320))  # a quiet frame resets the count
    receive(stream, 4, tone(20, 300))
    receive(stream, 5, tone(20, 300))
    assert played == []
    receive(stream, 6, tone(20, 300))
    assert played == ["voice"]


def test_collect_digits_timeouts_terminator_and_end_of_call() -> None:
    """First-digit and inter-digit timeouts on the clock; "#" ends without being kept; the call's end cancels."""
    audio, stream, clock, _ = setup()
    got: list[Any] = []
    audio.collect_digits(max_digits=5, timeout=4.0, inter_digit_timeout=2.0).addCallback(got.append)
    clock.advance(3.9)
    press(stream, "1", 100)
    clock.advance(1.9)
    press(stream, "2", 200)
    clock.advance(2.0)
    assert got == ["12"] and got[0].reason == "timeout"
    audio.collect_digits(max_digits=5).addCallback(got.append)
    for i, d in enumerate("34#"):
        press(stream, d, 300 + i)
    assert got[1] == "34" and got[1].reason == "terminator"
    second = audio.collect_digits(max_digits=5)
    failed: list[Any] = []
    audio.collect_digits().addErrback(failed.append)  # one at a time
    assert failed
    second.addCallback(got.append)
    audio.digit_received("7", via="info")
    audio.end()
    assert got[2] == "7" and got[2].reason == "cancelled"
    assert clock.getDelayedCalls() == []


def test_frames_async_iterator_from_a_coroutine() -> None:
    """``async for frame in audio.frames()`` in a Twisted coroutine gets the received frames, then ends."""
    audio, stream, clock, _ = setup()
    got: list[bytes] = []

    async def consume() -> int:
        async for frame in audio.frames(rate=8000):
            got.append(frame)
        return len(got)

    done = defer.Deferred.fromCoroutine(consume())
    frames = [tone(20, 400 + 100 * i) for i in range(3)]
    for i, f in enumerate(frames):
        receive(stream, i, f)
    assert got == [g711.ulaw_decode(g711.ulaw_encode(f)) for f in frames]
    assert not done.called
    audio.end()
    assert done.result == 3


def test_frames_at_16k_and_the_drop_policy() -> None:
    """frames(rate=16000) resamples (soxr); a reader slower than real time loses the oldest frames."""
    pytest.importorskip("soxr", reason="soxr (the [audio] extra) is not installed")
    audio, stream, clock, _ = setup()
    wide = audio.frames(rate=16000, max_frames=10)
    for i in range(40):
        receive(stream, i, tone(20))
    assert len(wide) == 10 and wide.dropped >= 25
    frame = defer.Deferred.fromCoroutine(wide.__anext__()).result
    assert len(frame) == 640


def test_send_paces_the_producer_and_bounds_the_queue() -> None:
    """send(): fires at once under SEND_QUEUE frames, waits above, drops the oldest past SEND_QUEUE_MAX."""
    audio, stream, clock, transport = setup()
    waits = [audio.send(tone(20)) for _ in range(SEND_QUEUE + 5)]
    assert all(d.called for d in waits[: SEND_QUEUE - 1]) and not waits[-1].called
    clock.advance(0)
    for _ in range(10):
        clock.advance(0.02)
    assert all(d.called for d in waits)
    assert len(audio_sent(transport)) >= 10
    for _ in range(SEND_QUEUE_MAX + 20):
        audio.send(tone(20))
    assert audio.send_dropped >= 19


def test_send_and_prompt_are_mixed() -> None:
    """A prompt and sent frames at once: the packets carry their sum."""
    audio, stream, clock, transport = setup()
    audio.play(PCMSource(struct.pack("<160h", *[1000] * 160)))
    audio.send(struct.pack("<160h", *[2000] * 160))
    clock.advance(0)
    first = struct.unpack("<160h", g711.ulaw_decode(audio_sent(transport)[0].payload))
    assert all(2900 < s < 3100 for s in first)


def feed_ten_minutes(stream: MediaStream, clock: task.Clock) -> int:
    """Feed 10 minutes of 20 ms packets; returns the heap's growth over the last minute, octets.

    Nine minutes run untraced (tracemalloc slows Python tenfold), the last one
    traced: memory that grows with the call (16 kB/s in RAM) shows as about
    960 kB there; a flat one as a few kB.
    """
    payload = g711.ulaw_encode(tone(20))

    def feed(start: int, count: int) -> None:
        for i in range(start, start + count):
            stream.datagramReceived(RtpPacket(0, i & 0xFFFF, (i * 160) & 0xFFFFFFFF, 99,
                                              payload=payload).to_bytes(), REMOTE)
            clock.advance(0.02)

    feed(0, 27_000)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        feed(27_000, 3_000)
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_over_ten_minutes_recorded_to_a_file(tmp_path: Path) -> None:
    """10 minutes of packets with call.audio.record(path) and stream.record_to(path): the heap stays flat."""
    audio, stream, clock, _ = setup()
    audio.record(tmp_path / "audio.wav")
    stream.record_to(tmp_path / "stream.wav")
    grown = feed_ten_minutes(stream, clock)
    assert grown < 100_000, grown  # flat: a call recorded in RAM would grow 960 kB in that minute
    stream.stop()
    for name in ("audio.wav", "stream.wav"):
        pcm, rate = read_wav(tmp_path / name, rate=None)
        assert rate == 8000 and len(pcm) == 30_000 * 320, name


def test_a_bounded_memory_sink_also_stays_flat() -> None:
    """MemorySink(max_seconds=2) on the hub over 10 minutes holds two seconds."""
    audio, stream, clock, _ = setup()
    sink = audio.add_sink(MemorySink(8000, max_seconds=2.0))
    grown = feed_ten_minutes(stream, clock)
    assert grown < 100_000 and len(sink.pcm()) == 2 * 16_000


def test_play_chained_from_a_play_callback_keeps_one_packet_per_slot() -> None:
    """stream.play(b) from play(a)'s callback: still one packet per 20 ms, timestamps distinct, no timer left."""
    _, stream, clock, transport = setup()
    stream.play(tone(100)).addCallback(lambda _: stream.play(tone(100, 500)))
    clock.advance(0)
    counts = []
    for _ in range(12):
        clock.advance(0.02)
        counts.append(len(transport.written))
    assert counts[-1] == 10 and all(b - a <= 1 for a, b in zip([1, *counts], counts, strict=False))
    assert len(clock.getDelayedCalls()) == 0
    stamps = [RtpPacket.parse(d).timestamp for d, _ in transport.written]
    assert len(set(stamps)) == 10


def test_a_bad_wav_prompt_raises_at_once(tmp_path: Path) -> None:
    """play(WavSource(bad)) raises WavError before anything is queued; a good one at 16 kHz is read at its rate."""
    from txsipua.errors import WavError
    from txsipua.media.audio import WavSource
    from txsipua.media.wav import write_wav

    audio, stream, clock, transport = setup()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(WavError):
        audio.play(WavSource(bad))
    assert not audio.playing
    good = tmp_path / "wide.wav"
    write_wav(good, bytes(640 * 5), rate=16000)
    assert WavSource(good, rate=None).rate == 16000


def test_the_hub_and_its_frame_streams_are_sinks() -> None:
    """verifyObject: CallAudio (what the stream pushes to) and FrameStream provide IAudioSink at their rates."""
    from zope.interface.verify import verifyObject

    from txsipua.media.audio import IAudioSink

    audio, _, _, _ = setup()
    assert verifyObject(IAudioSink, audio) and audio.rate == 8000
    frames = audio.frames()
    assert verifyObject(IAudioSink, frames) and frames.rate == 8000


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["send", "burst", "tick", "play", "stop", "digit", "collect", "hold", "resume"]),
                max_size=40))
def test_any_interleaving_leaves_nothing_pending_after_the_end(ops: list[str]) -> None:
    """Whatever the order of orders: at most one packet per 20 ms, and end() fires every Deferred."""
    audio, stream, clock, transport = setup()
    pending: list[defer.Deferred[Any]] = []
    clock.advance(0)
    start = clock.seconds()
    for op in ops:
        if op == "send":
            pending.append(audio.send(tone(20)))
        elif op == "burst":
            pending.extend(audio.send(tone(20)) for _ in range(SEND_QUEUE_MAX + 5))
        elif op == "tick":
            clock.advance(0.02)
        elif op == "play":
            pending.append(audio.play(ToneSource(1000.0, 0.1), barge_in_dtmf=True))
        elif op == "stop":
            audio.stop_playing()
        elif op == "digit":
            audio.digit_received("5", via="info")
        elif op == "collect":
            d = audio.collect_digits(max_digits=3, timeout=0.1)
            d.addErrback(lambda f: f.trap(LocalProtocolError))
            pending.append(d)
        elif op == "hold":
            stream.hold()
        else:
            stream.resume()
    packets = len(audio_sent(transport))
    assert packets <= (clock.seconds() - start) / 0.02 + 2
    audio.end()
    assert all(d.called for d in pending)
    for d in pending:
        d.addErrback(lambda f: None)


@implementer(IAudioSink)
class _Failing:
    """A sink whose write always raises."""

    rate = 8000

    def __init__(self) -> None:
        self.writes = 0
        self.closed = False

    def write(self, frame: bytes) -> None:
        self.writes += 1
        raise OSError("the speaker is gone")

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("where", ["call-audio", "stream"])
def test_a_failing_sink_is_detached_after_its_first_failure(where: str) -> None:
    """A sink whose write raises is written once, logged once (with the traceback), then no more; others go on."""
    from twisted.logger import globalLogPublisher

    audio, stream, clock, _ = setup()
    failures: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None:
            failures.append(event)

    bad, good = _Failing(), MemorySink(8000)
    if where == "call-audio":
        audio.add_sink(bad)
        audio.add_sink(good)
    else:
        stream.add_sink(bad)
        stream.add_sink(good)
    globalLogPublisher.addObserver(observe)
    try:
        for seq in range(50):
            receive(stream, seq, tone(20))
            clock.advance(0.02)
    finally:
        globalLogPublisher.removeObserver(observe)
    assert bad.writes == 1
    assert len(failures) == 1 and failures[0]["log_failure"].check(OSError)
    assert len(good.pcm()) == 50 * 320


@pytest.mark.parametrize("hook", ["prompt", "on_digit", "later"])
def test_collect_with_flush_after_a_dtmf_barge_in_discards_the_barging_digit(hook: str) -> None:
    """The digit that barged in is type-ahead: collect_digits(flush=True) from the prompt's Deferred,
    from on_digit or later does not return it; the next digit is what it collects."""
    audio, stream, clock, _ = setup()
    got: list[Any] = []

    def collect(*_: Any) -> None:
        audio.collect_digits(max_digits=1, timeout=5, flush=True).addCallback(got.append)

    prompt = audio.play(ToneSource(1000.0, 5.0), barge_in_dtmf=True)
    if hook == "prompt":
        prompt.addCallback(collect)
    elif hook == "on_digit":
        heard: list[str] = []

        def on_digit(digit: str, via: str) -> None:
            heard.append(digit)
            if len(heard) == 1:
                collect()

        audio.on_digit = on_digit
    clock.advance(0.1)
    press(stream, "4", 8000)
    assert prompt.called
    if hook == "later":
        collect()
    assert got == []
    press(stream, "7", 9000)
    assert got == ["7"]
