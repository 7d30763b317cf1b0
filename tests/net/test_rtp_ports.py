"""RTP sockets in a port range and symmetric RTP (txsipua.net.rtp_ports)."""

from __future__ import annotations

import socket

import pytest
from twisted.internet import reactor

from txsipua.net.media_limits import MediaStreamLimit, MediaUnavailable
from txsipua.net.rtp_ports import candidate_ports, stream_factory


def test_even_ports_first_from_the_start_wrapping() -> None:
    assert candidate_ports(10000, 10005, 10003) == [10004, 10000, 10002, 10003, 10005, 10001]
    assert candidate_ports(10000, 10000, 10000) == [10000]


def test_no_range_and_no_latch_keeps_the_default() -> None:
    assert stream_factory(None, False) is None


def free_pair() -> int:
    """An even port P such that P and P+1 are free now (best effort)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p % 2 == 0 and p < 65535:
            return p
    pytest.skip("no even free port found")


def test_a_taken_port_is_skipped_and_a_full_range_refused() -> None:
    """The even port is taken: the odd one is used; both taken: MediaUnavailable; the slot is given back."""
    port = free_pair()
    limit = MediaStreamLimit(maximum=10)
    make = stream_factory((port, port + 1), True, limit=limit)
    assert make is not None
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        blocker.bind(("127.0.0.1", port))
        stream = make(reactor, "127.0.0.1")
        try:
            assert stream.port == port + 1 and limit.active == 1
            with pytest.raises(MediaUnavailable, match="no free RTP port"):
                make(reactor, "127.0.0.1")
            assert limit.active == 1
        finally:
            stream.stop()
    finally:
        blocker.close()
    assert limit.active == 0


def test_symmetric_rtp_latches() -> None:
    """symmetric_rtp builds latching streams (RFC 4961): the first source heard is answered."""
    from txsipua.media.offer_answer import PCMU, MediaParams

    make = stream_factory(None, True, limit=MediaStreamLimit(maximum=2))
    assert make is not None
    stream = make(reactor, "127.0.0.1")
    try:
        stream.configure(MediaParams(remote_address="192.0.2.50", remote_port=4000, codec=PCMU, telephone_event_pt=None, direction="sendrecv"))
        stream.datagramReceived(b"\x80\x00\x00\x01" + bytes(8) + bytes(160), ("127.0.0.1", 4567))
        assert stream.latched == ("127.0.0.1", 4567) and stream.stats.packets_received == 1
        stream.datagramReceived(b"\x80\x00\x00\x02" + bytes(8) + bytes(160), ("127.0.0.1", 9999))
        assert stream.stats.wrong_source == 1  # the filter stands after the latch
    finally:
        stream.stop()
