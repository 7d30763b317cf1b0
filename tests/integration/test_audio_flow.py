"""Audio really flows between two txsipua user agents on loopback, checked by signal (issue 11).

alice calls bob through the test proxy.  alice's ``call.audio`` plays a 1 kHz
tone; bob's received frames (an ``async for`` over ``call.audio.frames()``)
and bob's recording streamed to a WAV file have their energy at 1 kHz
(Goertzel), not at 2 kHz nor at bob's own 600 Hz tone.  DTMF goes both ways
and arrives as the same digits through ``collect_digits``.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import pytest_twisted
from loopback import eventually, registered_pair, settled, within
from twisted.internet import defer

from txsipua.media.audio import ToneSource
from txsipua.media.wav import read_wav


def tone_power(pcm: bytes, freq: float, rate: int = 8000) -> float:
    """The share of the signal's energy at ``freq`` (Goertzel, normalised: a pure tone gives about 1)."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    energy = sum(x * x for x in samples) or 1
    return power / (energy * len(samples) / 2)


@pytest_twisted.inlineCallbacks
def test_tone_frames_recording_and_dtmf_between_two_uas(reactor: Any, proxy: Any, make_ua: Any,
                                                        tmp_path: Path) -> Any:
    """1 kHz from alice is heard at 1 kHz by bob (frames and file); digits both ways via collect_digits."""
    alice, bob, callee = yield registered_pair(reactor, proxy, make_ua)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    bob_call = incoming.call
    yield within(reactor, bob_call.confirmed)
    recording = bob_call.audio.record(tmp_path / "bob-heard.wav")
    heard: list[bytes] = []

    async def listen() -> int:
        async for frame in bob_call.audio.frames(rate=8000):
            heard.append(frame)
            if len(heard) >= 20:
                break
        return len(heard)

    listening = defer.Deferred.fromCoroutine(listen())
    played = yield within(reactor, defer.gatherResults([
        call.audio.play(ToneSource(1000.0, 0.6)),
        bob_call.audio.play(ToneSource(600.0, 0.6)),
    ]))
    assert played == ["done", "done"]
    count = yield within(reactor, listening)
    assert count == 20
    received = b"".join(heard[3:])  # past the first packets
    assert tone_power(received, 1000.0) > 0.8, tone_power(received, 1000.0)
    assert tone_power(received, 2000.0) < 0.05 and tone_power(received, 600.0) < 0.05
    # DTMF both ways, RFC 4733, collected as the same digits
    bob_digits = bob_call.audio.collect_digits(max_digits=4, timeout=3.0, inter_digit_timeout=2.0)
    alice_digits = call.audio.collect_digits(max_digits=3, timeout=3.0, inter_digit_timeout=2.0)
    yield within(reactor, defer.gatherResults([call.send_dtmf("12*#"), bob_call.send_dtmf("907")]))
    got = yield within(reactor, defer.gatherResults([bob_digits, alice_digits]))
    assert got == ["12*", "907"]
    assert got[0].reason == "terminator" and got[1].reason == "max"
    reason = yield within(reactor, call.hangup())
    assert reason == "hangup"
    yield within(reactor, bob_call.ended)
    assert recording.closed
    pcm, rate = read_wav(tmp_path / "bob-heard.wav", rate=None)
    assert rate == 8000 and len(pcm) >= 25 * 320
    yield eventually(reactor, lambda: not call.audio.playing, 1.0, "prompts over")
    assert tone_power(pcm[5 * 320 : 25 * 320], 1000.0) > 0.8
    yield settled(reactor, alice, bob)
