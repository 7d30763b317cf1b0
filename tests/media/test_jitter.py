"""The adaptive jitter buffer (txsipua.media.jitter): order, loss concealment, adaptation, by signal."""

from __future__ import annotations

import math
import random
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from txsipua.media.codecs import PCMU
from txsipua.media.jitter import JitterBuffer, PlayoutState

FRAME = 0.02
TICKS = 160


def tone_frames(count: int, freq: float = 1000.0) -> list[bytes]:
    """``count`` 20 ms frames of a sine at 8000 Hz, 16-bit LE, amplitude 8000."""
    samples = array("h", (int(8000 * math.sin(2 * math.pi * freq * i / 8000)) for i in range(160 * count)))
    raw = samples.tobytes()
    return [raw[320 * k : 320 * (k + 1)] for k in range(count)]


def rms(pcm: bytes) -> float:
    """Root mean square of 16-bit PCM."""
    s = array("h")
    s.frombytes(pcm)
    return math.sqrt(sum(x * x for x in s) / max(1, len(s)))


def run(arrivals: list[tuple[float, int, bytes]], duration: float,
        jb: JitterBuffer | None = None) -> tuple[JitterBuffer, list[str], list[bytes]]:
    """Push ``(arrival, timestamp, payload)`` at their times and pop every 20 ms; decode with G.711 + PLC."""
    jb = jb or JitterBuffer(8000, TICKS)
    encoder, decoder = PCMU.coders()
    arrivals = sorted(arrivals, key=lambda a: a[0])
    kinds: list[str] = []
    out: list[bytes] = []
    i = 0
    steps = int(duration / FRAME)
    for step in range(steps):
        now = step * FRAME
        while i < len(arrivals) and arrivals[i][0] <= now:
            jb.push(arrivals[i][1], arrivals[i][2], arrivals[i][0])
            i += 1
        frame = jb.pop(now)
        kinds.append(frame.kind)
        if frame.kind == "audio":
            assert frame.payload is not None
            out.append(decoder.decode(frame.payload))
        elif frame.kind == "concealed":
            out.append(decoder.conceal(160))
        else:
            out.append(bytes(320))
    del encoder
    return jb, kinds, out


def packets(frames: list[bytes], *, start_ts: int = 1000) -> list[tuple[int, bytes]]:
    """(timestamp, PCMU payload) per frame."""
    encoder, _ = PCMU.coders()
    return [((start_ts + k * TICKS) & 0xFFFFFFFF, encoder.encode(f)) for k, f in enumerate(frames)]


def test_in_order_stream_plays_every_frame_after_the_target_delay() -> None:
    """A punctual stream: silence for the target delay, then every frame as audio, none concealed."""
    pk = packets(tone_frames(50))
    jb, kinds, _ = run([(0.001 + k * FRAME, ts, p) for k, (ts, p) in enumerate(pk)], 1.5)
    first = kinds.index("audio")
    assert 1 <= first <= 3
    assert kinds[first : first + 50] == ["audio"] * 50
    assert jb.stats.played == 50 and jb.stats.late == 0
    assert kinds[first + 50 :].count("concealed") <= 10  # the tail fades out over max_silence
    assert jb.state is PlayoutState.WAITING  # the talkspurt ended: back to waiting


def test_reordered_packets_play_in_timestamp_order() -> None:
    """Pairs of packets swapped in flight come out in order."""
    pk = packets(tone_frames(20))
    arrivals = []
    for k, (ts, p) in enumerate(pk):
        swap = 1 if k % 2 == 0 else -1
        arrivals.append((0.001 + (k + swap) * FRAME + 0.0005 * k, ts, p))
    jb = JitterBuffer(8000, TICKS, min_delay=0.06)
    jb, kinds, _ = run(arrivals, 1.0, jb)
    first = kinds.index("audio")
    assert kinds[first : first + 20] == ["audio"] * 20
    assert jb.stats.played == 20 and jb.stats.late == 0


def test_ten_percent_loss_with_jitter_leaves_no_gap_longer_than_one_frame() -> None:
    """10 % loss and up to 30 ms jitter: every output frame after the start carries the tone's energy."""
    rng = random.Random(11)
    frames = tone_frames(500)
    pk = packets(frames)
    arrivals = [(k * FRAME + rng.uniform(0, 0.03), ts, p) for k, (ts, p) in enumerate(pk) if rng.random() >= 0.10]
    lost = len(pk) - len(arrivals)
    assert 35 <= lost <= 65
    jb, kinds, out = run(arrivals, 500 * FRAME + 0.5)
    first = kinds.index("audio")
    last = len(kinds) - 1 - kinds[::-1].index("audio")
    body = out[first : last + 1]
    level = rms(frames[0])
    # by signal: no run of near-silence longer than one frame (160 samples) in the playout
    pcm = array("h")
    pcm.frombytes(b"".join(body))
    longest = run_len = 0
    window = 40  # 5 ms windows
    for w in range(0, len(pcm) - window, window):
        quiet = math.sqrt(sum(x * x for x in pcm[w : w + window]) / window) < level / 20
        run_len = run_len + window if quiet else 0
        longest = max(longest, run_len)
    assert longest <= 160
    st_ = jb.stats
    assert st_.played + st_.late + st_.duplicates + st_.dropped + len(jb) == len(arrivals)
    assert st_.played >= len(arrivals) - 10
    assert st_.concealed >= lost - st_.skipped


def test_late_packets_raise_the_delay_and_duplicates_are_dropped() -> None:
    """A packet after its playout time is late (discarded, delay raised); a duplicate is counted once."""
    jb = JitterBuffer(8000, TICKS, min_delay=0.02)
    jb.push(0, b"a", 0.0)
    jb.push(0, b"a", 0.001)
    assert jb.stats.duplicates == 1
    assert jb.pop(0.02).kind == "audio"
    jb.push(320, b"c", 0.03)
    before = jb.target
    assert jb.pop(0.04).kind == "concealed"  # ts 160 missing while 320 waits
    jb.push(160, b"b", 0.045)  # too late
    assert jb.stats.late == 1 and jb.target > before


def test_long_silence_returns_to_waiting_and_restarts() -> None:
    """After max_silence without packets, playout waits; the next packet starts a new talkspurt."""
    jb = JitterBuffer(8000, TICKS, max_silence=0.1)
    jb.push(0, b"x", 0.0)
    kinds = [jb.pop(0.02 * k).kind for k in range(1, 12)]
    assert kinds[0] == "audio" and "silence" in kinds and jb.state is PlayoutState.WAITING
    jb.push(2400, b"y", 0.3)
    assert [jb.pop(0.3 + 0.02 * k).kind for k in range(1, 4)].count("audio") == 1
    assert jb.stats.restarts == 2


def test_buffer_is_bounded() -> None:
    """A flood of future packets keeps at most 2 * max_delay of frames."""
    jb = JitterBuffer(8000, TICKS, max_delay=0.1)
    for k in range(1000):
        jb.push(k * TICKS, b"p", 0.0)
    assert jb.buffered <= 0.25 and jb.stats.dropped >= 980


def test_bad_arguments() -> None:
    """Rates must be positive and the delays ordered."""
    with pytest.raises(ValueError):
        JitterBuffer(0, 160)
    with pytest.raises(ValueError):
        JitterBuffer(8000, 160, min_delay=0.5, max_delay=0.1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2), st.integers(0, 60), st.booleans()), max_size=80))
def test_any_arrival_pattern_plays_in_order_without_error(events: list[tuple[float, int, bool]]) -> None:
    """Whatever arrives when: playout timestamps only move forward while playing, never crash."""
    jb = JitterBuffer(8000, TICKS)
    arrivals = sorted((t, (0xFFFFF000 + n * TICKS) & 0xFFFFFFFF, b"z") for t, n, _ in events)
    i = 0
    previous: int | None = None
    for step in range(120):
        now = step * FRAME
        while i < len(arrivals) and arrivals[i][0] <= now:
            jb.push(arrivals[i][1], arrivals[i][2], arrivals[i][0])
            i += 1
        frame = jb.pop(now)
        if frame.kind == "silence":
            previous = None
            continue
        if previous is not None:
            assert (frame.timestamp - previous) & 0xFFFFFFFF < 0x80000000
        previous = frame.timestamp
    # the bound the module promises is on what is held: at most 2 * max_delay worth of frames
    # (plus two); ``buffered`` is the span up to the newest packet, gaps included, which a sparse
    # arrival (n=0 and n=41 after a silence) stretches past that without holding more packets
    assert len(jb) * jb.frame <= 2 * jb.max_delay + 2 * jb.frame + 1e-9


class JitterWalk(RuleBasedStateMachine):
    """Every input in every state of the jitter buffer: invariants hold whatever the order.

    Inputs: a packet in order, a duplicate, a late one, one after a gap, one far ahead,
    and a pop (once per frame time).  States: WAITING (empty or holding packets) and
    PLAYING (the next frame present, missing, or nothing buffered).
    """

    def __init__(self) -> None:
        super().__init__()
        self.jb = JitterBuffer(8000, TICKS, max_delay=0.2, max_silence=0.1)
        self.now = 0.0
        self.ts = 0
        self.last_played: int | None = None
        self.pushed = 0
        self.states: set[tuple[PlayoutState, bool]] = set()

    def _push(self, ts: int) -> None:
        self.states.add((self.jb.state, bool(len(self.jb))))
        self.jb.push(ts & 0xFFFFFFFF, b"p", self.now)
        self.pushed += 1

    @rule()
    def in_order(self) -> None:
        self.ts += TICKS
        self._push(self.ts)

    @rule()
    def duplicate(self) -> None:
        self._push(self.ts)

    @rule()
    def late(self) -> None:
        self._push(self.ts - 20 * TICKS)

    @rule(gap=st.integers(2, 6))
    def after_gap(self, gap: int) -> None:
        self.ts += gap * TICKS
        self._push(self.ts)

    @rule()
    def far_ahead(self) -> None:
        self.ts += 500 * TICKS
        self._push(self.ts)

    @rule(frames=st.integers(1, 8))
    def pop(self, frames: int) -> None:
        for _ in range(frames):
            self.states.add((self.jb.state, bool(len(self.jb))))
            self.now += FRAME
            frame = self.jb.pop(self.now)
            assert frame.kind in ("audio", "concealed", "silence")
            if frame.kind == "silence":
                self.last_played = None
                continue
            if self.last_played is not None:
                assert (frame.timestamp - self.last_played) & 0xFFFFFFFF < 0x80000000
            self.last_played = frame.timestamp

    @invariant()
    def bounded_and_accounted(self) -> None:
        s = self.jb.stats
        assert len(self.jb) <= int(2 * self.jb.max_delay / self.jb.frame) + 2  # the bound on packets held
        assert s.played + s.late + s.duplicates + s.dropped + len(self.jb) == self.pushed
        assert self.jb.min_delay <= self.jb.target <= self.jb.max_delay


JitterWalk.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
test_jitter_walk = JitterWalk.TestCase
