"""Wideband calls between two txsipua UAs, checked by signal: a 5 kHz tone arrives at 5 kHz (G.722, Opus)."""

from __future__ import annotations

import math
from array import array
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from loopback import Callee, Proxy, account, eventually, settled, within
from twisted.internet import defer

from txsipua.media.codecs import G722, OPUS, AudioCodec
from txsipua.media.wav import read_wav


def audio_resampling() -> bool:
    """True when soxr (the ``audio`` extra) is installed: frames at a rate other than the codec's need it."""
    try:
        import soxr  # noqa: F401
    except ImportError:
        return False
    return True


def goertzel(pcm: bytes, rate: int, freq: float) -> float:
    """Relative power of ``freq`` in 16-bit PCM (Goertzel), normalised by the total power."""
    x = array("h")
    x.frombytes(pcm)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    total = sum(v * v for v in x) or 1
    return power / (total * len(x) / 2)


def sine(freq: float, rate: int, seconds: float, amplitude: int = 8000) -> bytes:
    """16-bit LE mono PCM of a sine."""
    return array("h", (int(amplitude * math.sin(2 * math.pi * freq * i / rate))
                       for i in range(int(rate * seconds)))).tobytes()


@pytest.mark.parametrize("codec", [G722, OPUS], ids=["G722", "opus"])
@pytest_twisted.inlineCallbacks
def test_wideband_call_carries_a_5khz_tone(reactor: Any, proxy: Proxy, make_ua: Any, codec: AudioCodec) -> None:
    """alice offers only the wideband codec; bob's playout gets the tone with its energy at 5 kHz, not 1 kHz."""
    if not codec.available():
        pytest.skip(f"{codec.name} needs pip install 'txsipua[{codec.extra}]'")
    alice = yield make_ua(account("alice", proxy), codecs=(codec.name, "PCMU"))
    bob = yield make_ua(account("bob", proxy), codecs=(codec.name, "PCMU"))
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    callee = Callee(bob)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    bob_call = incoming.call
    yield within(reactor, bob_call.confirmed)
    assert call.media_params.codec.name.lower() == codec.name.lower()
    assert bob_call.media.codec is codec and bob_call.media.sample_rate == codec.sample_rate
    frames: list[bytes] = []
    bob_call.media.play_out(frames.append)
    rate = codec.sample_rate
    played = yield within(reactor, call.media.play(sine(5000, rate, 0.6), rate=rate), 5.0)
    assert played is True
    yield eventually(reactor, lambda: len(frames) >= 30, 3.0, "playout frames")
    pcm = b"".join(frames[5:28])  # inside the tone, past the codec's start-up
    assert goertzel(pcm, rate, 5000) > 0.5
    assert goertzel(pcm, rate, 1000) < 0.01
    assert bob_call.media.stats.invalid == 0
    yield within(reactor, call.hangup())
    yield within(reactor, bob_call.ended)
    yield settled(reactor, alice, bob)


@pytest.mark.parametrize("codec", [G722, OPUS], ids=["G722", "opus"])
@pytest_twisted.inlineCallbacks
def test_call_audio_keeps_the_wideband_band(reactor: Any, proxy: Proxy, make_ua: Any, codec: AudioCodec,
                                            tmp_path: Path) -> None:
    """call.audio runs at the codec's rate: 5 kHz sent at 16 kHz arrives at 5 kHz in frames(rate=16000) and the recording."""
    if not codec.available():
        pytest.skip(f"{codec.name} needs pip install 'txsipua[{codec.extra}]'")
    if not audio_resampling():
        pytest.skip("resampling needs pip install 'txsipua[audio]' (soxr)")
    alice = yield make_ua(account("alice", proxy), codecs=(codec.name, "PCMU"))
    bob = yield make_ua(account("bob", proxy), codecs=(codec.name, "PCMU"))
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    callee = Callee(bob)
    call = yield within(reactor, alice.call("sip:bob@example.com"))
    incoming = yield within(reactor, callee.arrived)
    bob_call = incoming.call
    yield within(reactor, bob_call.confirmed)
    assert bob_call.audio.rate == codec.sample_rate and call.audio.rate == codec.sample_rate
    recording = bob_call.audio.record(tmp_path / "heard.wav")
    heard: list[bytes] = []
    tone = sine(5000, 16000, 1.0)

    async def listen() -> None:
        async for frame in bob_call.audio.frames(rate=16000):
            heard.append(frame)
            if len(heard) >= 40:
                break

    async def talk() -> None:
        for i in range(0, len(tone), 640):
            await call.audio.send(tone[i : i + 640], rate=16000)

    listening = defer.Deferred.fromCoroutine(listen())
    yield within(reactor, defer.Deferred.fromCoroutine(talk()), 5.0)
    yield within(reactor, listening, 5.0)
    pcm = b"".join(heard[8:35])  # inside the tone, past the codec's start-up
    assert goertzel(pcm, 16000, 5000) > 0.5, goertzel(pcm, 16000, 5000)
    assert goertzel(pcm, 16000, 1000) < 0.01 and goertzel(pcm, 16000, 3000) < 0.01
    yield within(reactor, call.hangup())
    yield within(reactor, bob_call.ended)
    assert recording.closed
    wav, wav_rate = read_wav(tmp_path / "heard.wav", rate=None)
    assert wav_rate == codec.sample_rate
    yield settled(reactor, alice, bob)
