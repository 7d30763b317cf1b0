"""examples/ivr_bot.py in process, on loopback: a txsipua caller talks to the bot.

The caller presses 4 while the prompt plays (barge-in), then 2 and #; speaks
(a 700 Hz tone) for 0.6 s and presses # again.  The bot reports the digits
"42", records the message to ``42-1.wav`` (energy at 700 Hz) and, with no
``call.transfer`` on the call, hangs up; with one, it transfers.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import struct
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from txsipua.media.audio import ToneSource
from txsipua.media.wav import read_wav
from txsipua.ua.account import Account
from txsipua.ua.call import Call
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

ROOT = Path(__file__).resolve().parents[1]


def load_bot() -> Any:
    spec = importlib.util.spec_from_file_location("example_ivr_bot", ROOT / "examples" / "ivr_bot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def power_at(pcm: bytes, freq: float, rate: int = 8000) -> float:
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    energy = sum(x * x for x in samples) or 1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (energy * len(samples) / 2)


@pytest.mark.parametrize("transfer", [False, True])
@pytest_twisted.inlineCallbacks
def test_ivr_bot_collects_records_and_ends_the_call(tmp_path: Path, monkeypatch: Any, transfer: bool) -> Any:
    """Digits by barge-in and collect_digits, a message recorded at 700 Hz, then BYE or call.transfer()."""
    from twisted.internet import reactor

    transferred: list[str] = []
    if transfer:
        def fake_transfer(self: Call, target: str) -> Any:  # what calls-xfer's REFER will do, then BYE
            transferred.append(target)
            return self.hangup()

        monkeypatch.setattr(Call, "transfer", fake_transfer, raising=False)
    elif hasattr(Call, "transfer"):
        monkeypatch.delattr(Call, "transfer")
    module = load_bot()
    args = argparse.Namespace(prompt=None, max_digits=4, digit_timeout=3.0, inter_digit_timeout=2.0,
                              record_dir=str(tmp_path), message_seconds=3.0,
                              transfer_to="sip:desk@example.com" if transfer else "")
    lines: list[str] = []
    bot = module.IvrBot(reactor, args, lines.append)
    bot_ua = UserAgent(reactor, Configuration(), None, UDPTransport(reactor, "127.0.0.1", 0))
    bot_ua.on_incoming_call = bot.on_incoming_call
    _, port = yield bot_ua.start()
    caller = UserAgent(reactor, Configuration(), Account("alice", "example.com"),
                       UDPTransport(reactor, "127.0.0.1", 0))
    yield caller.start()
    try:
        call = yield caller.call(f"sip:ivr@127.0.0.1:{port}").addTimeout(3, reactor)
        yield task.deferLater(reactor, 0.1, lambda: None)  # the prompt is playing
        yield call.send_dtmf("4").addTimeout(3, reactor)
        yield call.send_dtmf("2#").addTimeout(3, reactor)
        yield task.deferLater(reactor, 0.3, lambda: None)  # past the beep
        yield call.audio.play(ToneSource(700.0, 0.6)).addTimeout(3, reactor)
        yield call.send_dtmf("#").addTimeout(3, reactor)
        reason = yield call.ended.addTimeout(5, reactor)
        outcome = yield defer.gatherResults(bot.finished).addTimeout(5, reactor)
    finally:
        yield caller.stop()
        yield bot_ua.stop()
    assert reason == "bye"
    assert lines[0].startswith("call 1 from sip:alice@") and lines[1] == "digits 42 (terminator)"
    assert lines[2] == f"recorded {tmp_path / '42-1.wav'} (terminator)"
    if transfer:
        assert lines[3:] == ["transferred"] and transferred == ["sip:desk@example.com"]
        assert outcome == ["transferred"]
    else:
        assert lines[3:] == ["hung up"] and outcome == ["hung up"]
    pcm, rate = read_wav(tmp_path / "42-1.wav", rate=None)
    assert rate == 8000 and len(pcm) >= 0.5 * 16_000
    loud = max(range(0, len(pcm) - 3200, 320), key=lambda i: power_at(pcm[i : i + 3200], 700.0))
    assert power_at(pcm[loud : loud + 3200], 700.0) > 0.8  # the caller's "voice" is in the message
