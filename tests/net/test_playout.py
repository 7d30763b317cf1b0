"""Playout through MediaStream.play_out: jitter buffer and concealment on the shared pacer, with loss injected."""

from __future__ import annotations

import math
import random
from array import array

from twisted.internet import task

from txsipua.media.offer_answer import PCMU, MediaParams
from txsipua.net.pacer import Pacer
from txsipua.net.rtp import MediaStream

A = ("127.0.0.1", 40000)
B = ("127.0.0.1", 40002)


class LossyWire:
    """Delivers A's datagrams to ``peer`` after 0-30 ms, dropping 10 % (seeded)."""

    def __init__(self, clock: task.Clock, peer: MediaStream, rng: random.Random) -> None:
        self.clock, self.peer, self.rng = clock, peer, rng
        self.sent = self.dropped = 0

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent += 1
        if self.rng.random() < 0.10:
            self.dropped += 1
            return
        self.clock.callLater(self.rng.uniform(0, 0.03), self.peer.datagramReceived, data, A)


def test_ten_percent_loss_and_jitter_play_out_without_gaps_longer_than_a_frame() -> None:
    """4 s of a 1 kHz tone with 10 % loss and 30 ms jitter: the playout frames have no quiet run over 20 ms."""
    clock = task.Clock()
    pacer = Pacer(clock)
    receiver = MediaStream(clock, ssrc=2, rng=random.Random(2), media_timeout=None, pacer=pacer, limit=None)
    receiver.makeConnection(LossyWire(clock, receiver, random.Random(0)))  # type: ignore[arg-type]
    receiver.configure(MediaParams(A[0], A[1], PCMU, None, "recvonly"))
    sender = MediaStream(clock, ssrc=1, rng=random.Random(1), media_timeout=None, pacer=pacer, limit=None)
    wire = LossyWire(clock, receiver, random.Random(5))
    sender.makeConnection(wire)  # type: ignore[arg-type]
    sender.configure(MediaParams(B[0], B[1], PCMU, None, "sendonly"))
    frames: list[bytes] = []
    receiver.play_out(frames.append)
    tone = array("h", (int(8000 * math.sin(2 * math.pi * 1000 * i / 8000)) for i in range(8000 * 4))).tobytes()
    sender.play(tone)
    for _ in range(4600):
        clock.advance(0.001)
    assert 10 <= wire.dropped <= 35 and wire.sent == 200
    playout = receiver.playout
    assert playout is not None and playout.buffer.stats.concealed >= wire.dropped - playout.buffer.stats.skipped
    pcm = array("h")
    pcm.frombytes(b"".join(frames))
    start = next(i for i, v in enumerate(pcm) if abs(v) > 1000)
    end = max(i for i, v in enumerate(pcm) if abs(v) > 1000)
    body = pcm[start:end]
    assert len(body) >= 8000 * 3.8
    longest = run = 0
    for w in range(0, len(body) - 40, 40):  # 5 ms windows
        quiet = math.sqrt(sum(v * v for v in body[w : w + 40]) / 40) < 300
        run = run + 40 if quiet else 0
        longest = max(longest, run)
    assert longest <= 160
