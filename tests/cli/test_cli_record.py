"""``txsipua call --record`` still records what the peer sends, now that recording is opt-in."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path
from typing import Any

import pytest_twisted
from clirun import HOST, Cli, account_file
from twisted.internet import task

from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

REPO = Path(__file__).resolve().parents[2]


def tone(ms: int) -> bytes:
    n = 8 * ms
    return struct.pack(f"<{n}h", *(round(8000 * math.sin(2 * math.pi * 500 * i / 8000)) for i in range(n)))


@pytest_twisted.inlineCallbacks
def test_call_record_writes_the_peers_audio(tmp_path: Path) -> Any:
    from twisted.internet import reactor

    callee = UserAgent(reactor, Configuration(), None, UDPTransport(reactor, HOST, 0))
    _, port = yield callee.start()

    def on_incoming(incoming: Any) -> None:
        call = incoming.answer()
        call.media.play(tone(600))

    callee.on_incoming_call = on_incoming
    acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:{port}")
    record = tmp_path / "heard.wav"
    proc = Cli(["call", f"sip:bob@{HOST}:{port}", "--account", str(acct), "--duration", "1.0",
                "--record", str(record), "--bind", f"{HOST}:0"], REPO)
    try:
        for _ in range(300):
            if proc.proc.poll() is not None:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        assert proc.wait() == 0, proc
    finally:
        proc.stop()
        yield callee.stop()
    with wave.open(str(record)) as w:
        frames = w.readframes(w.getnframes())
    loud = sum(1 for (s,) in struct.iter_unpack("<h", frames) if abs(s) > 2000)
    assert loud > 8 * 300, (len(frames), loud)  # at least 300 ms of the tone's peaks arrived


@pytest_twisted.inlineCallbacks
def test_call_record_includes_early_media(tmp_path: Path) -> Any:
    """The callee sends 183 with SDP and plays a tone before answering (silence after): the tone,
    heard only as early media, is in the recording."""
    from twisted.internet import reactor

    callee = UserAgent(reactor, Configuration(), None, UDPTransport(reactor, HOST, 0))
    _, port = yield callee.start()

    def on_incoming(incoming: Any) -> None:
        call = incoming.early_media()
        call.media.play(tone(600))
        reactor.callLater(0.9, lambda: incoming.answer() if incoming.pending else None)

    callee.on_incoming_call = on_incoming
    acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:{port}")
    record = tmp_path / "early.wav"
    proc = Cli(["call", f"sip:bob@{HOST}:{port}", "--account", str(acct), "--duration", "0.3",
                "--record", str(record), "--bind", f"{HOST}:0"], REPO)
    try:
        for _ in range(300):
            if proc.proc.poll() is not None:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        assert proc.wait() == 0, proc
    finally:
        proc.stop()
        yield callee.stop()
    with wave.open(str(record)) as w:
        frames = w.readframes(w.getnframes())
    loud = sum(1 for (s,) in struct.iter_unpack("<h", frames) if abs(s) > 2000)
    assert loud > 8 * 300, (len(frames), loud)  # at least 300 ms of the early tone's peaks
