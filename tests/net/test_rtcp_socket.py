"""RTCP on its own socket when rtcp-mux is not negotiated: even/odd port pairs, reports both ways (RFC 3550 §11)."""

from __future__ import annotations

import random
import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError

from txsipua.media.offer_answer import PCMU, MediaParams
from txsipua.media.rtcp import Goodbye, parse_compound
from txsipua.media.sdes import SrtpParams
from txsipua.media.srtp import available as srtp_available
from txsipua.net.media_limits import MediaStreamLimit, MediaUnavailable
from txsipua.net.rtcp_socket import RtcpProtocol, bind_pair
from txsipua.net.rtp import MediaStream
from txsipua.net.rtp_ports import stream_factory

PEER = "192.0.2.50"
SUITE = "AES_CM_128_HMAC_SHA1_80"


class FakePort:
    def __init__(self, owner: PortClock, port: int, protocol: Any) -> None:
        self.owner = owner
        self.number = port
        self.protocol = protocol
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.closed = False

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))

    def getHost(self) -> IPv4Address:  # noqa: N802 - Twisted's name
        return IPv4Address("UDP", "127.0.0.1", self.number)

    def stopListening(self) -> None:  # noqa: N802 - Twisted's name
        assert not self.closed
        self.closed = True
        del self.owner.bound[self.number]
        self.protocol.doStop()


class PortClock(task.Clock):
    """A task.Clock with listenUDP: port 0 gets the next of ``system`` ports; bound or ``taken`` ports fail."""

    def __init__(self, system: list[int], taken: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.system = list(system)
        self.taken = set(taken)
        self.bound: dict[int, FakePort] = {}

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> FakePort:  # noqa: N802,N803
        if port == 0:
            port = self.system.pop(0)
        if port in self.taken or port in self.bound:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        fake = self.bound[port] = FakePort(self, port, protocol)
        protocol.makeConnection(fake)
        return fake


def params(**changes: Any) -> MediaParams:
    values: dict[str, Any] = {"remote_address": PEER, "remote_port": 4000, "codec": PCMU,
                              "telephone_event_pt": None, "direction": "sendrecv"}
    values.update(changes)
    return MediaParams(**values)


def stream(clock: PortClock, **kwargs: Any) -> MediaStream:
    kwargs.setdefault("limit", None)
    return MediaStream(clock, ssrc=0x1234, rng=random.Random(3), media_timeout=None, **kwargs)


def report(clock: Any, ssrc: int = 0x9999) -> bytes:
    """A peer's compound RTCP packet (an SR with SDES) as its own RtcpSession would make it."""
    from txsipua.media.reception import MediaStats, ReceptionStatistics
    from txsipua.media.rtcp import RtcpSession

    session = RtcpSession(ssrc, "peer@192.0.2.50", 8000)
    return session.report(clock.seconds(), packets_sent=10, octets_sent=1600, rtp_timestamp=1234, sent=True,
                          reception=ReceptionStatistics(MediaStats()))


# --- bind_pair, with fakes -----------------------------------------------------------------------


def test_bind_pair_skips_odd_system_ports_and_a_taken_next_port() -> None:
    """Port 0: an odd port, then an even one whose next is taken, are given back; the next even/odd pair is kept."""
    clock = PortClock([41001, 41010, 41020], taken=(41011,))
    rtp, rtcp = RtcpProtocol(lambda d, a: None), RtcpProtocol(lambda d, a: None)
    a, b = bind_pair(clock.listenUDP, 0, rtp, rtcp)
    assert (a.getHost().port, b.getHost().port) == (41020, 41021)
    assert sorted(clock.bound) == [41020, 41021] and a.protocol is rtp and b.protocol is rtcp


def test_bind_pair_with_a_given_port_fails_whole_when_the_next_is_taken() -> None:
    clock = PortClock([], taken=(41001,))
    with pytest.raises(CannotListenError):
        bind_pair(clock.listenUDP, 41000, RtcpProtocol(print), RtcpProtocol(print))
    assert clock.bound == {}  # the RTP socket was closed again


def test_bind_pair_gives_up_after_its_attempts_holding_nothing() -> None:
    clock = PortClock([41001, 41003, 41005])
    with pytest.raises(CannotListenError, match="no free even/odd"):
        bind_pair(clock.listenUDP, 0, RtcpProtocol(print), RtcpProtocol(print), attempts=3)
    assert clock.bound == {}


# --- MediaStream's pair, with fakes ------------------------------------------------------------


def test_a_stream_with_rtcp_binds_an_even_odd_pair_as_one_slot_and_stop_releases_both() -> None:
    limit = MediaStreamLimit(maximum=1)
    clock = PortClock([41001, 41002, 41004])
    s = stream(clock, rtcp_interval=5.0, limit=limit)
    assert s.start() == 41002 and s.rtcp_port == 41003
    assert sorted(clock.bound) == [41002, 41003] and limit.active == 1
    with pytest.raises(MediaUnavailable, match="too many"):  # the pair was one stream of the cap
        stream(clock, rtcp_interval=5.0, limit=limit).start()
    assert sorted(clock.bound) == [41002, 41003]
    s.stop()
    assert clock.bound == {} and limit.active == 0 and s.rtcp_port is None


def test_a_stream_without_rtcp_binds_one_socket() -> None:
    clock = PortClock([41001])
    s = stream(clock)
    assert s.start() == 41001 and s.rtcp_port is None and sorted(clock.bound) == [41001]
    s.stop()


def test_a_taken_rtcp_port_refuses_the_stream_and_gives_the_slot_back() -> None:
    limit = MediaStreamLimit(maximum=2)
    clock = PortClock([], taken=(41001,))
    with pytest.raises(MediaUnavailable):
        stream(clock, port=41000, rtcp_interval=5.0, limit=limit).start()
    assert clock.bound == {} and limit.active == 0


def test_negotiated_rtcp_mux_closes_the_rtcp_socket() -> None:
    """With rtcp-mux RTCP goes to and from the RTP port only, as before (RFC 5761)."""
    clock = PortClock([41000])
    s = stream(clock, rtcp_interval=5.0)
    s.start()
    s.configure(params(rtcp_mux=True))
    assert s.rtcp_port is None and sorted(clock.bound) == [41000]
    rtp = clock.bound[41000]
    s.stop()
    byes = [addr for d, addr in rtp.written if any(isinstance(p, Goodbye) for p in parse_compound(d))]
    assert byes == [(PEER, 4000)]  # the RTCP BYE, on the RTP port


def test_rtcp_goes_from_the_rtcp_socket_to_the_peers_rtcp_port() -> None:
    """The peer's a=rtcp port when it gave one (RFC 3605), else its RTP port + 1; the BYE too, before closing."""
    for rtcp_port, expected in ((None, 4001), (5555, 5555)):
        clock = PortClock([41000])
        s = stream(clock, rtcp_interval=5.0)
        s.start()
        s.configure(params(rtcp_port=rtcp_port))
        rtp, rtcp = clock.bound[41000], clock.bound[41001]
        clock.advance(10.0)  # the first reports
        s.stop()
        assert rtp.written == [] and rtcp.closed
        assert rtcp.written and {addr for _, addr in rtcp.written} == {(PEER, expected)}
        assert any(isinstance(p, Goodbye) for p in parse_compound(rtcp.written[-1][0]))


def test_rtcp_heard_on_the_rtcp_socket_only_from_the_peers_rtcp_address() -> None:
    clock = PortClock([41000])
    s = stream(clock, rtcp_interval=5.0)
    s.start()
    s.configure(params(rtcp_port=5555))
    sock = clock.bound[41001].protocol
    sock.datagramReceived(report(clock), (PEER, 4001))  # not the a=rtcp port: dropped
    sock.datagramReceived(report(clock), ("198.51.100.7", 5555))
    assert s.stats.wrong_source == 2 and s.stats.rtcp == 0
    sock.datagramReceived(report(clock), (PEER, 5555))
    assert s.stats.rtcp == 1 and s.rtcp_stats is not None and s.rtcp_stats.reports_received == 1
    assert s.rtcp_stats.remote_cname == "peer@192.0.2.50"
    s.stop()
    sock.datagramReceived(report(clock), (PEER, 5555))  # stopped: ignored
    assert s.stats.rtcp == 1


def test_symmetric_rtp_latches_the_rtcp_source_too() -> None:
    """latch=True: RTCP from an unexpected source (a NAT's) is heard and answered there (RFC 4961)."""
    clock = PortClock([41000])
    s = stream(clock, rtcp_interval=5.0, latch=True)
    s.start()
    s.configure(params())
    sock = clock.bound[41001].protocol
    sock.datagramReceived(report(clock), ("203.0.113.9", 17001))
    sock.datagramReceived(report(clock), ("203.0.113.9", 17999))  # not the latched one
    assert s.stats.rtcp == 1 and s.stats.wrong_source == 1
    assert s.latched is None  # no RTP heard: RTP and RTCP latch each on its own
    s.stop()
    assert clock.bound == {}


def test_symmetric_rtcp_sends_to_the_latched_rtcp_source() -> None:
    clock = PortClock([41000])
    s = stream(clock, rtcp_interval=5.0, latch=True)
    s.start()
    s.configure(params())
    rtcp = clock.bound[41001]
    rtcp.protocol.datagramReceived(report(clock), ("203.0.113.9", 17001))
    clock.advance(10.0)
    assert rtcp.written and {addr for _, addr in rtcp.written} == {("203.0.113.9", 17001)}
    s.stop()


def test_a_range_with_rtcp_uses_even_ports_whose_next_is_in_the_range() -> None:
    port = free_pair()
    limit = MediaStreamLimit(maximum=4)
    make = stream_factory((port, port + 1), False, limit=limit, rtcp_interval=5.0)
    assert make is not None
    from twisted.internet import reactor

    s = make(reactor, "127.0.0.1")
    try:
        assert (s.port, s.rtcp_port, limit.active) == (port, port + 1, 1)
        with pytest.raises(MediaUnavailable, match="no free RTP port"):  # port + 1 alone cannot be a pair
            make(reactor, "127.0.0.1")
    finally:
        s.stop()
    assert limit.active == 0


def free_pair() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            p = probe.getsockname()[1]
        if p % 2 == 0 and p < 65534:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                    a.bind(("127.0.0.1", p))
                    b.bind(("127.0.0.1", p + 1))
                return p
            except OSError:
                continue
    pytest.skip("no free even/odd port pair found")


# --- two streams on the real reactor -------------------------------------------------------------


class Early(random.Random):
    """Draws every RTCP interval factor at its low end plus ``lag`` (reports 1.25 s after start, then 2.5 s)."""

    def __init__(self, seed: int, lag: float) -> None:
        super().__init__(seed)
        self.lag = lag

    def uniform(self, a: float, b: float) -> float:
        return a + self.lag


def eventually(reactor: Any, check: Any, timeout: float) -> defer.Deferred[None]:
    @defer.inlineCallbacks
    def poll() -> Any:
        deadline = reactor.seconds() + timeout
        while not check():
            if reactor.seconds() > deadline:
                raise AssertionError("timed out")
            yield task.deferLater(reactor, 0.05, lambda: None)

    return poll()


@pytest.mark.parametrize("srtp", [False, True], ids=["rtcp", "srtcp"])
@pytest_twisted.inlineCallbacks
def test_two_streams_without_mux_exchange_reports_on_their_rtcp_sockets(srtp: bool) -> None:
    """Real sockets: each side hears the other's reports on RTP port + 1 and measures the round trip."""
    if srtp and not srtp_available():
        pytest.skip("SRTP needs pip install 'txsipua[srtp]'")
    from twisted.internet import reactor

    key_a, key_b = bytes(range(30)), bytes(range(50, 80))
    a = MediaStream(reactor, ssrc=1, rng=Early(1, 0.0), media_timeout=None, limit=None, rtcp_interval=5.0)
    b = MediaStream(reactor, ssrc=2, rng=Early(2, 0.02), media_timeout=None, limit=None, rtcp_interval=5.0)
    sent: list[tuple[int, tuple[str, int], bytes]] = []
    a.trace = lambda d, data, local, peer: sent.append((local[1], peer, data)) if d == "send" else None
    try:
        for s in (a, b):
            s.start()
            assert s.port % 2 == 0 and s.rtcp_port == s.port + 1
        a.configure(MediaParams("127.0.0.1", b.port, PCMU, None, "sendrecv",
                                srtp=SrtpParams(SUITE, key_a, key_b) if srtp else None))
        b.configure(MediaParams("127.0.0.1", a.port, PCMU, None, "sendrecv",
                                srtp=SrtpParams(SUITE, key_b, key_a) if srtp else None))
        for s in (a, b):
            s.send_silence_when_idle()
        yield eventually(reactor, lambda: all(s.rtcp_stats and s.rtcp_stats.round_trip is not None
                                              for s in (a, b)), 8.0)
        for s in (a, b):
            stats = s.rtcp_stats
            assert stats is not None and stats.reports_received >= 1 and stats.round_trip is not None
            assert 0 <= stats.round_trip < 0.5 and stats.remote_cname == "txsipua@127.0.0.1"
            assert s.stats.wrong_source == 0 and s.stats.srtp_failed == 0 and s.stats.rtcp >= 1
        reports = [(local, peer, data) for local, peer, data in sent if 200 <= data[1] <= 204]
        assert reports and {(local, peer) for local, peer, _ in reports} == {(a.rtcp_port, ("127.0.0.1", b.rtcp_port))}
        if srtp:  # SRTCP: E flag and index after the (encrypted) packet, then a 10-octet tag (RFC 3711 §3.4)
            assert all(data[-14] & 0x80 for _, _, data in reports)
    finally:
        yield a.stop()
        yield b.stop()
