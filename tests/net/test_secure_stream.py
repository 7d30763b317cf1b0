"""SRTP and RTCP on MediaStream, two streams joined in memory on one task.Clock (RFC 3711, RFC 3550, RFC 5761)."""

from __future__ import annotations

import math
import random
from array import array
from typing import Any

import pytest
from twisted.internet import task

from txsipua.media.codecs import PCMU as G711U
from txsipua.media.offer_answer import PCMU, MediaParams
from txsipua.media.rtcp import Goodbye, parse_compound
from txsipua.media.sdes import SrtpParams
from txsipua.media.srtp import available as srtp_available
from txsipua.net.pacer import Pacer
from txsipua.net.rtp import MediaStream

A = ("127.0.0.1", 40000)
B = ("127.0.0.1", 40002)
SUITE = "AES_CM_128_HMAC_SHA1_80"
KEY_A, KEY_B, WRONG = bytes(range(30)), bytes(range(50, 80)), bytes(range(200, 230))

needs_srtp = pytest.mark.skipif(not srtp_available(), reason="SRTP needs pip install 'txsipua[srtp]'")


class Wire:
    """Delivers what one stream writes to the other, as if sent from ``source``."""

    def __init__(self, source: tuple[str, int], peers: dict[tuple[str, int], MediaStream]) -> None:
        self.source = source
        self.peers = peers
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))
        peer = self.peers.get(addr)
        if peer is not None:
            peer.datagramReceived(data, self.source)


def pair(srtp_a: SrtpParams | None = None, srtp_b: SrtpParams | None = None, *, mux: bool = True,
         rtcp: float | None = None) -> tuple[MediaStream, MediaStream, task.Clock]:
    """Two configured streams A <-> B on one clock."""
    clock = task.Clock()
    clock.advance(1000.0)
    pacer = Pacer(clock)
    peers: dict[tuple[str, int], MediaStream] = {}
    streams = []
    for me, other, srtp, seed in ((A, B, srtp_a, 1), (B, A, srtp_b, 2)):
        s = MediaStream(clock, ssrc=seed, rng=random.Random(seed), media_timeout=None, pacer=pacer, limit=None,
                        rtcp_interval=rtcp)
        s.makeConnection(Wire(me, peers))  # type: ignore[arg-type]
        peers[me] = s
        streams.append((s, other, srtp))
    for s, other, srtp in streams:
        s.configure(MediaParams(other[0], other[1], PCMU, None, "sendrecv", rtcp_mux=mux, srtp=srtp))
    return streams[0][0], streams[1][0], clock


def tone(seconds: float) -> bytes:
    """A 1 kHz tone at 8000 Hz."""
    return array("h", (int(8000 * math.sin(2 * math.pi * 1000 * i / 8000)) for i in range(int(8000 * seconds)))).tobytes()


def run(clock: task.Clock, seconds: float) -> None:
    """Advance the clock in 1 ms steps."""
    for _ in range(int(seconds * 1000)):
        clock.advance(0.001)


@needs_srtp
def test_srtp_carries_the_tone_and_is_encrypted_on_the_wire() -> None:
    """Matching keys: B hears A's tone (by signal); the payload on the wire is not the G.711 payload."""
    a, b, clock = pair(SrtpParams(SUITE, KEY_A, KEY_B), SrtpParams(SUITE, KEY_B, KEY_A))
    heard: list[bytes] = []
    b.on_audio = heard.append
    a.play(tone(0.2))
    run(clock, 0.3)
    assert b.stats.packets_received == 10 and b.stats.srtp_failed == 0
    pcm = array("h")
    pcm.frombytes(b"".join(heard))
    rms = math.sqrt(sum(x * x for x in pcm) / len(pcm))
    assert rms > 4000  # the tone, not noise
    wire: Any = a.transport
    data, _ = wire.written[0]
    assert len(data) == 12 + 160 + 10  # RTP header, payload, 80-bit tag
    encoder, _ = G711U.coders()
    assert data[12:172] != encoder.encode(tone(0.2)[:320])  # encrypted


@needs_srtp
def test_wrong_key_drops_and_counts_every_packet() -> None:
    """B holds the wrong key for A: nothing is decoded, every packet is counted in srtp_failed and logged once."""
    a, b, clock = pair(SrtpParams(SUITE, KEY_A, KEY_B), SrtpParams(SUITE, KEY_B, WRONG))
    heard: list[bytes] = []
    b.on_audio = heard.append
    a.play(tone(0.2))
    run(clock, 0.3)
    assert heard == [] and b.stats.packets_received == 0
    assert b.stats.srtp_failed == 10


@needs_srtp
def test_plain_rtp_to_an_srtp_stream_is_dropped() -> None:
    """A sends plain RTP to B which expects SRTP: dropped and counted, never played."""
    a, b, clock = pair(None, SrtpParams(SUITE, KEY_B, KEY_A))
    a.play(tone(0.1))
    run(clock, 0.2)
    assert b.stats.packets_received == 0 and b.stats.srtp_failed == 5


@pytest.mark.parametrize("secure", [False, True], ids=["rtp", "srtp"])
def test_rtcp_reports_on_the_muxed_port_give_round_trip_and_loss(secure: bool) -> None:
    """With rtcp-mux both sides report every ~5 s; each learns the round trip and the other's view of it."""
    if secure and not srtp_available():
        pytest.skip("SRTP needs pip install 'txsipua[srtp]'")
    keys = (SrtpParams(SUITE, KEY_A, KEY_B), SrtpParams(SUITE, KEY_B, KEY_A)) if secure else (None, None)
    a, b, clock = pair(*keys, rtcp=5.0)
    a.play(tone(12.0))
    b.play(tone(12.0))
    run(clock, 12.0)
    for s in (a, b):
        stats = s.rtcp_stats
        assert stats is not None and stats.reports_sent >= 2 and stats.reports_received >= 2
        assert stats.round_trip is not None and stats.round_trip < 0.01  # memory wire: no delay
        assert stats.remote_fraction_lost == 0 and stats.remote_cname.startswith("txsipua@")
        assert s.stats.rtcp >= 2 and s.stats.srtp_failed == 0 and s.stats.invalid == 0


def test_rtcp_without_mux_goes_to_port_plus_one_and_bye_on_stop() -> None:
    """No rtcp-mux: reports go to the peer's RTP port + 1; stop() sends a last report with BYE."""
    a, _b, clock = pair(mux=False, rtcp=5.0)
    run(clock, 8.0)
    wire: Any = a.transport
    rtcp = [(d, addr) for d, addr in wire.written if addr == (B[0], B[1] + 1)]
    assert len(rtcp) >= 1
    a.stop()
    last, addr = wire.written[-1]
    assert addr == (B[0], B[1] + 1)
    assert any(isinstance(p, Goodbye) for p in parse_compound(last))


@needs_srtp
@pytest.mark.parametrize("kind", ["rtp", "rtcp"])
def test_a_packet_over_1500_octets_is_dropped_and_counted(kind: str) -> None:
    """libsrtp refuses packets over 1500 octets (a plain ValueError): dropped, counted in srtp_failed, logged once."""
    from twisted.logger import globalLogPublisher

    a, b, clock = pair(SrtpParams(SUITE, KEY_A, KEY_B), SrtpParams(SUITE, KEY_B, KEY_A))
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for n in range(5):
            if kind == "rtp":
                data = bytes([0x80, 0, 0, n, 0, 0, 0, n, 0, 0, 0, 1]) + bytes(1600)
            else:
                data = bytes([0x80, 200, 0x01, 0x95, 0, 0, 0, 1]) + bytes(1612)
            b.datagramReceived(data, A)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert b.stats.srtp_failed == 5 and b.stats.packets_received == 0 and b.stats.rtcp == 0
    assert not [e for e in events if e.get("log_failure") is not None]  # no Unhandled Error
    assert len([e for e in events if "SRTP" in str(e.get("log_format", ""))]) == 1
    a.play(tone(0.1))  # good packets still pass afterwards
    run(clock, 0.2)
    assert b.stats.packets_received == 5


@needs_srtp
def test_protecting_a_packet_over_1500_octets_drops_it() -> None:
    """An RTCP packet too long for libsrtp is not sent and is counted in srtp_send_failed; nothing raises."""
    a, b, clock = pair(SrtpParams(SUITE, KEY_A, KEY_B), SrtpParams(SUITE, KEY_B, KEY_A))
    wire: Any = a.transport
    before = len(wire.written)
    a.send_rtcp(bytes([0x80, 200, 0x01, 0x95, 0, 0, 0, 1]) + bytes(1612))
    assert len(wire.written) == before and a.stats.srtp_send_failed == 1
