"""Lateness and stalls of the RTP sender (txsipua.net.rtp_send): late judged when written, missed slots skipped."""

from __future__ import annotations

import random
import struct

import attrs
from twisted.internet import task
from twisted.internet.testing import FakeDatagramTransport

from txsipua.media.dtmf import DtmfEvent
from txsipua.media.offer_answer import PCMU, MediaParams
from txsipua.media.rtp import RtpPacket
from txsipua.net.pacer import Pacer
from txsipua.net.rtp import MediaStream

REMOTE = ("127.0.0.1", 40000)


def params(**changes) -> MediaParams:
    """Parameters sending PCMU to REMOTE with telephone-event 101."""
    base = MediaParams(remote_address=REMOTE[0], remote_port=REMOTE[1], codec=PCMU, telephone_event_pt=101,
                       direction="sendrecv", local_telephone_event_pt=101)
    return attrs.evolve(base, **changes)


def ramp(ms: int) -> bytes:
    """``ms`` of 8 kHz PCM whose every 20 ms frame differs (frame k holds the value 64 * k)."""
    return b"".join(struct.pack("<h", 64 * (i // 160)) * 160 for i in range(0, 8 * ms, 160))


class TimedTransport(FakeDatagramTransport):
    """A datagram transport noting the clock at each write, which may cost ``cost`` seconds of that clock."""

    def __init__(self, clock: task.Clock, cost: float = 0.0) -> None:
        super().__init__()
        self.clock = clock
        self.cost = cost
        self.times: list[float] = []

    def write(self, packet, addr=None):  # type: ignore[no-untyped-def]
        self.times.append(self.clock.seconds())
        self.clock.rightNow += self.cost  # the time the write takes (without running the clock's calls)
        return super().write(packet, addr)


def stream_on(clock: task.Clock, pacer: Pacer | None = None, cost: float = 0.0,
              ssrc: int = 0x1234) -> tuple[MediaStream, TimedTransport]:
    """A configured stream on ``clock`` (no sockets)."""
    stream = MediaStream(clock, ssrc=ssrc, rng=random.Random(ssrc), media_timeout=None, pacer=pacer, limit=None)
    transport = TimedTransport(clock, cost)
    stream.makeConnection(transport)
    stream.configure(params())
    return stream, transport


def packets(transport: TimedTransport) -> list[RtpPacket]:
    """The packets written, parsed."""
    return [RtpPacket.parse(data) for data, _ in transport.written]


def slot(at: float) -> int:
    """The index of the 20 ms slot a packet written at ``at`` was sent for (written within 1.5 ms of it)."""
    index = round(at / 0.02)
    assert abs(at - index * 0.02) < 0.0015, at
    return index


def run(clock: task.Clock, seconds: float, step: float = 0.001) -> None:
    """A punctual reactor: the clock advanced in small steps (to exact times: no drift of summed floats)."""
    start = clock.seconds()
    for k in range(1, round(seconds / step) + 1):
        clock.advance(start + k * step - clock.seconds())


def test_packets_written_late_in_a_long_tick_are_counted() -> None:
    """300 streams due in one tick, each write taking 50 µs: the streams served after 5 ms are counted late."""
    clock = task.Clock()
    pacer = Pacer(clock)
    streams = [stream_on(clock, pacer, cost=50e-6, ssrc=i) for i in range(300)]
    for stream, _ in streams:
        stream.play(bytes(320))  # one 20 ms frame each, all due at 0
    clock.advance(0)
    assert pacer.ticks == 1 and all(len(t.written) == 1 for _, t in streams)
    truly_late = sum(t.times[0] - 0.0 > 0.005 + 1e-9 for _, t in streams)
    assert 190 <= truly_late <= 200  # the 101st stream onwards left more than 5 ms after the deadline
    assert sum(s.stats.packets_late for s, _ in streams) == truly_late
    assert all(s.stats.packets_late == int(t.times[0] > 0.005 + 1e-9) for s, t in streams)


def test_lateness_is_read_per_slot_in_a_catch_up() -> None:
    """Slots due together (a 50 ms block) are judged each at its own write: only those truly > 5 ms late count."""
    clock = task.Clock()
    stream, transport = stream_on(clock, cost=0.0)
    stream.play(ramp(200))
    clock.advance(0)
    clock.advance(0.043)  # slots at 0.02 (23 ms late) and 0.04 (3 ms late) go out now
    assert len(transport.written) == 3
    assert stream.stats.packets_late == 1


def stalled_prompt(stall: float) -> tuple[MediaStream, task.Clock, TimedTransport, list[float]]:
    """A 4 s prompt started at 0, the reactor blocked for ``stall`` s at 1.0, run to 5.5 s."""
    clock = task.Clock()
    stream, transport = stream_on(clock)
    ended: list[float] = []
    stream.play(ramp(4000)).addCallback(lambda _: ended.append(clock.seconds()))
    clock.advance(0)
    run(clock, 1.0)
    clock.advance(stall)  # blocked: one jump, the pacer's tick fires once, at its end
    run(clock, 4.5 - stall)
    return stream, clock, transport, ended


def test_a_stall_skips_the_missed_slots() -> None:
    """Blocked 1 s: the 49 slots missed are skipped and counted, not sent late one after the other."""
    stream, clock, transport, ended = stalled_prompt(1.0)
    sent = packets(transport)
    assert stream.stats.packets_skipped == 49
    assert stream.stats.packets_late == 0  # the slot due at the stall's end is on time on this clock
    assert stream.stats.packets_sent == len(sent) == 200 - 49
    # the sequence number counts packets sent: no jump
    assert [(p.sequence - sent[0].sequence) & 0xFFFF for p in sent] == list(range(len(sent)))
    # no burst: one packet at the stall's end, then one every 20 ms
    times = transport.times
    assert sum(abs(t - 2.0) < 1e-6 for t in times) == 1
    gaps = [round(b - a, 6) for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) > 0.99 and all(0.019 <= g <= 0.021 for g in gaps if g < 0.5)  # the test clock's 1 ms steps


def test_timestamps_after_a_stall_follow_the_media_clock() -> None:
    """The RTP timestamp of every packet is its slot's time on the sampling clock (RFC 3550 §5.1), stall or not."""
    stream, clock, transport, _ = stalled_prompt(1.0)
    sent = packets(transport)
    base = sent[0].timestamp
    for packet, at in zip(sent, transport.times, strict=True):
        assert (packet.timestamp - base) & 0xFFFFFFFF == slot(at) * 160, at
    # and the Sender Report's timestamp (the clock's) agrees with the packets'
    last = sent[-1]
    assert (stream._sender_info(transport.times[-1])[2] - last.timestamp) & 0xFFFFFFFF == 0


def test_audio_of_skipped_slots_is_dropped_and_the_prompt_ends_on_time() -> None:
    """After a 1 s stall a 4 s prompt still ends at 4 s; each packet carries the frame of its own slot."""
    stream, clock, transport, ended = stalled_prompt(1.0)
    assert len(ended) == 1 and 3.97 <= ended[0] <= 4.0 + 1e-6
    for packet, at in zip(packets(transport), transport.times, strict=True):
        frame = slot(at)
        decoded = PCMU_DECODE(packet.payload)
        assert abs(decoded - 64 * frame) <= max(4, 64 * frame // 16), (at, decoded)


def PCMU_DECODE(payload: bytes) -> int:  # noqa: N802 - a constant-like helper
    """The first sample of a PCMU payload."""
    from txsipua.media import g711

    return struct.unpack("<h", g711.ulaw_decode(payload[:1]))[0]


def test_worse_stalls_count_more_not_less() -> None:
    """The share of slots not sent on time grows with the stall (it used to fall: one late per stall)."""
    shares = []
    for stall in (0.5, 1.0, 2.0):
        stream, *_ = stalled_prompt(stall)
        due = stream.stats.packets_sent + stream.stats.packets_skipped
        assert due == 200
        shares.append((stream.stats.packets_late + stream.stats.packets_skipped) / due)
    assert shares[0] < shares[1] < shares[2]


def test_a_short_delay_is_sent_late_not_skipped() -> None:
    """Slots less than 0.2 s late are still sent (counted late when > 5 ms), none skipped."""
    clock = task.Clock()
    stream, transport = stream_on(clock)
    stream.play(ramp(400))
    clock.advance(0)
    clock.advance(0.15)  # the 7 slots at 0.02-0.14 are due: sent at once, 130 to 10 ms late
    assert len(transport.written) == 8
    assert stream.stats.packets_skipped == 0 and stream.stats.packets_late == 7


def test_idle_silence_skipped_slots_are_counted() -> None:
    """Idle silence skips like audio: timestamps jump by the slots missed, which are counted."""
    clock = task.Clock()
    stream, transport = stream_on(clock)
    stream.send_silence_when_idle()
    clock.advance(0)
    run(clock, 0.1)
    clock.advance(0.5)
    run(clock, 0.1)
    sent = packets(transport)
    assert stream.stats.packets_skipped == 24
    base = sent[0].timestamp
    assert [(p.timestamp - base) & 0xFFFFFFFF for p in sent] == [160 * slot(t) for t in transport.times]
    assert [(p.sequence - sent[0].sequence) & 0xFFFF for p in sent] == list(range(len(sent)))


def events(transport: TimedTransport) -> list[tuple[RtpPacket, DtmfEvent, float]]:
    """The telephone-event packets written, with their events and write times."""
    return [(p, DtmfEvent.parse(p.payload), t) for p, t in zip(packets(transport), transport.times, strict=True)
            if p.payload_type == 101]


def test_dtmf_event_continues_with_the_right_durations_across_a_stall() -> None:
    """A 500 ms digit stalled 0.3 s: the packets after the skip carry their slots' durations, then 3 ends."""
    clock = task.Clock()
    stream, transport = stream_on(clock)
    digit = stream.send_dtmf("5", duration_ms=500)
    clock.advance(0)
    run(clock, 0.1)
    clock.advance(0.3)
    run(clock, 0.5)
    assert digit.result is True
    evs = events(transport)
    start = evs[0][0].timestamp
    assert all(p.timestamp == start for p, _, _ in evs)  # one event, one timestamp
    for _p, e, at in evs:
        if not e.end:
            assert e.duration == 160 * slot(at) + 160, at  # how long the tone has lasted at that slot
    assert [e.end for _, e, _ in evs][-3:] == [True] * 3 and sum(e.end for _, e, _ in evs) == 3
    assert all(e.duration == 4000 for _, e, _ in evs[-3:])
    assert stream.stats.packets_skipped == 14 and stream.stats.dtmf_sent == 1
    seqs = [p.sequence for p, _, _ in evs]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == list(range(len(evs)))


def test_dtmf_event_end_is_never_skipped() -> None:
    """A stall over a digit's end: its 3 end packets (full duration) still go out, then the audio behind it."""
    clock = task.Clock()
    stream, transport = stream_on(clock)
    digits = stream.send_dtmf("7", duration_ms=100)
    audio = stream.play(ramp(100))
    clock.advance(0)
    run(clock, 0.04)  # 3 of the 4 tone packets sent (durations 160, 320, 480)
    clock.advance(1.0)
    run(clock, 0.3)
    assert digits.result is True and audio.result is True
    evs = events(transport)
    assert [e.end for _, e, _ in evs] == [False] * 3 + [True] * 3
    assert all(e.duration == 800 for _, e, _ in evs[3:])
    assert len({p.timestamp for p, _, _ in evs}) == 1
    assert stream.stats.packets_skipped == 1  # the last tone packet (640) was due in the stall; the ends wait
    sent = packets(transport)
    assert [p.payload_type for p in sent] == [101] * 6 + [0] * 5
    assert [(p.sequence - sent[0].sequence) & 0xFFFF for p in sent] == list(range(11))
    # the ends went out from the stall's end, one a slot, and the audio after them
    assert [round(t, 3) for t in transport.times[3:7]] == [1.04, 1.06, 1.08, 1.1]


def test_a_stall_between_two_digits_keeps_the_second_on_the_clock() -> None:
    """Blocked across the pause after a digit: the next digit starts at its own slot's timestamp, its end is sent."""
    clock = task.Clock()
    stream, transport = stream_on(clock)
    digits = stream.send_dtmf("12", duration_ms=60)  # each: 2 tone packets + 3 ends; 3 silent slots between
    clock.advance(0)
    run(clock, 0.11)  # digit 1 (slots 0-4) sent, slot 5 silent
    clock.advance(0.3)  # slots 6-19 missed: 6, 7 silent, digit 2's tone (8, 9) dropped, its ends wait
    run(clock, 0.1)
    assert digits.result is True and stream.stats.dtmf_sent == 2
    evs = events(transport)
    first, second = evs[:5], evs[5:]
    assert [e.event for _, e, _ in second] == [2] * 3 and all(e.end and e.duration == 480 for _, e, _ in second)
    assert (second[0][0].timestamp - first[0][0].timestamp) & 0xFFFFFFFF == 160 * 8  # digit 2 was due at slot 8
    assert stream.stats.packets_skipped == 2
    # the slot due at the stall's end (20, at 0.40) leaves at once, 10 ms late; then slots 21, 22
    assert abs(second[0][2] - 0.41) < 1e-6 and [slot(t) for _, _, t in second[1:]] == [21, 22]
    assert stream.stats.packets_late == 1
