"""The receive fast path equals the slow one: plain_fields against RtpPacket.parse, and a stream fed both ways."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.testing import FakeDatagramTransport

from txsipua.errors import ParseError
from txsipua.media.offer_answer import PCMU, MediaParams
from txsipua.media.rtp import RtpPacket, plain_fields
from txsipua.net import rtp_receive
from txsipua.net.rtp import MediaStream

REMOTE = ("127.0.0.1", 40000)

packets = st.builds(
    RtpPacket,
    payload_type=st.sampled_from([0, 8, 18, 101, 127]),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    payload=st.binary(max_size=40),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=3).map(tuple),
    extension=st.none() | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=8).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.sampled_from([0, 0, 1, 4]),
)


def fields(packet: RtpPacket) -> tuple[int, bool, int, int, int, bytes]:
    return packet.payload_type, packet.marker, packet.sequence, packet.timestamp, packet.ssrc, packet.payload


@given(packets)
def test_plain_fields_read_what_parse_reads(packet: RtpPacket) -> None:
    """A packet without CSRC, extension or padding is read by the fast path, with parse's fields; others are not."""
    data = packet.to_bytes()
    fast = plain_fields(data)
    plain = not packet.csrcs and packet.extension is None and not packet.padding
    if plain:
        assert fast == fields(RtpPacket.parse(data)) == fields(packet)
    else:
        assert fast is None


@given(st.binary(max_size=48))
def test_plain_fields_never_accept_what_parse_refuses(data: bytes) -> None:
    """On any datagram: the fast path gives parse's fields, or leaves the datagram to parse."""
    fast = plain_fields(data)
    if fast is None:
        assert len(data) < 12 or data[0] != 0x80
        return
    assert fast == fields(RtpPacket.parse(data))


def test_plain_fields_of_short_or_other_versions() -> None:
    assert plain_fields(b"\x80" * 11) is None
    assert plain_fields(b"\x40" + bytes(20)) is None  # version 1
    assert plain_fields(b"\x80\x80" + bytes(10)) == (0, True, 0, 0, 0, b"")
    with pytest.raises(ParseError):
        RtpPacket.parse(b"\x40" + bytes(20))


def stream() -> tuple[MediaStream, list[bytes], list[str]]:
    s = MediaStream(task.Clock(), ssrc=1, rng=random.Random(3), media_timeout=None, limit=None)
    s.makeConnection(FakeDatagramTransport())
    s.configure(MediaParams(remote_address=REMOTE[0], remote_port=REMOTE[1], codec=PCMU, telephone_event_pt=101,
                            direction="sendrecv", local_telephone_event_pt=101))
    audio: list[bytes] = []
    digits: list[str] = []
    s.on_audio = audio.append
    s.on_dtmf = digits.append
    return s, audio, digits


received = st.lists(
    st.builds(
        RtpPacket,
        payload_type=st.sampled_from([0, 8, 101, 13]),
        sequence=st.integers(0, 40),
        timestamp=st.integers(0, 40).map(lambda n: n * 160),
        ssrc=st.sampled_from([5, 6]),
        marker=st.booleans(),
        payload=st.binary(min_size=4, max_size=20),
        csrcs=st.just(()),
        extension=st.just(None),
        padding=st.just(0),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(received)
def test_a_stream_fed_by_the_fast_path_ends_where_the_slow_path_ends(sequence: list[RtpPacket]) -> None:
    """Stats (loss, duplicates, jitter, SSRC changes, invalid), audio and digits equal with the fast path off."""
    fast, fast_audio, fast_digits = stream()
    slow, slow_audio, slow_digits = stream()
    original = rtp_receive.plain_fields
    for n, packet in enumerate(sequence):
        data = packet.to_bytes()
        fast._reactor.advance(0.02 + 0.001 * (n % 3))  # type: ignore[attr-defined]
        slow._reactor.advance(0.02 + 0.001 * (n % 3))  # type: ignore[attr-defined]
        fast.datagramReceived(data, REMOTE)
        rtp_receive.plain_fields = lambda data: None  # type: ignore[assignment]
        try:
            slow.datagramReceived(data, REMOTE)
        finally:
            rtp_receive.plain_fields = original
    assert attrs.asdict(fast.stats) == attrs.asdict(slow.stats)
    assert fast_audio == slow_audio and fast_digits == slow_digits


def test_the_fast_path_is_the_one_taken(monkeypatch: Any) -> None:
    """A plain packet is read without RtpPacket.parse (the point of the fast path)."""
    s, audio, _ = stream()

    def refuse(data: bytes) -> RtpPacket:
        raise AssertionError("the slow path was taken")

    monkeypatch.setattr(RtpPacket, "parse", staticmethod(refuse))
    s.datagramReceived(RtpPacket(0, 1, 160, 5, payload=b"\xff" * 160).to_bytes(), REMOTE)
    assert s.stats.packets_received == 1 and len(audio) == 1
