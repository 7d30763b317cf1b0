"""RtpSockets: every RTP socket of a reactor read through one epoll reader, at most ``budget`` datagrams a turn."""

from __future__ import annotations

import errno
import select
import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import error, task
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock

from txsipua.media.offer_answer import make_answer, make_offer, negotiate
from txsipua.net.media_limits import MediaUnavailable
from txsipua.net.rtp import MediaStream
from txsipua.net.rtp_sockets import RtpPort, RtpSockets, rtp_sockets_for

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="RtpSockets needs Linux epoll")


class Readers:
    """Just the reactor calls RtpSockets makes: addReader and removeReader."""

    def __init__(self) -> None:
        self.readers: list[Any] = []

    def addReader(self, reader: Any) -> None:  # noqa: N802
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:  # noqa: N802
        self.readers.remove(reader)


class Collect(DatagramProtocol):
    def __init__(self, fail: bool = False) -> None:
        self.got: list[tuple[bytes, Any]] = []
        self.started = self.stopped = 0
        self.fail = fail

    def startProtocol(self) -> None:  # noqa: N802
        self.started += 1

    def stopProtocol(self) -> None:  # noqa: N802
        self.stopped += 1

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        self.got.append((data, addr))
        if self.fail:
            raise RuntimeError("a protocol that fails")


@pytest.fixture
def sender() -> Any:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


def wait_readable(*ports: RtpPort) -> None:
    """Until every port has a datagram queued (loopback delivery is all but immediate)."""
    for port in ports:
        assert select.select([port.socket], [], [], 2.0)[0], "nothing arrived on loopback"


def test_listen_attaches_the_protocol_and_the_reader_goes_with_the_last_socket() -> None:
    reactor = Readers()
    sockets = RtpSockets(reactor)
    a, b = Collect(), Collect()
    pa = sockets.listen(0, a, "127.0.0.1")
    pb = sockets.listen(0, b, "127.0.0.1")
    assert reactor.readers == [sockets] and len(sockets) == 2
    assert a.transport is pa and a.started == 1 and pa.getHost().port > 0 and pa.getHost().host == "127.0.0.1"
    assert sockets.fileno() >= 0
    pa.stopListening()
    pa.stopListening()  # idempotent
    assert a.stopped == 1 and a.transport is None and pa.fileno() == -1
    assert reactor.readers == [sockets] and len(sockets) == 1
    d = pb.stopListening()
    assert d.called and reactor.readers == [] and len(sockets) == 0
    pc = sockets.listen(0, Collect(), "127.0.0.1")  # readable again
    assert reactor.readers == [sockets]
    pc.loseConnection()
    assert reactor.readers == []


def test_a_turn_reads_one_datagram_per_ready_socket_and_at_most_budget(sender: socket.socket) -> None:
    """Five ready sockets (one with two datagrams), budget 3: each turn reads at most 3, one per socket."""
    sockets = RtpSockets(Readers(), budget=3)
    protocols = [Collect() for _ in range(5)]
    ports = [sockets.listen(0, p, "127.0.0.1") for p in protocols]
    for i, port in enumerate(ports):
        sender.sendto(b"first %d" % i, ("127.0.0.1", port.getHost().port))
    sender.sendto(b"second 0", ("127.0.0.1", ports[0].getHost().port))
    wait_readable(*ports)
    seen = [0] * 5
    for turn in range(1, 4):
        sockets.doRead()
        counts = [len(p.got) for p in protocols]
        assert sockets.reads == sum(counts) <= 3 * turn
        assert all(now - before <= 1 for now, before in zip(counts, seen, strict=True))  # one per socket a turn
        seen = counts
    assert seen == [2, 1, 1, 1, 1] and sockets.reads == 6  # the backlog of socket 0 on a later turn
    assert [d for d, _ in protocols[0].got] == [b"first 0", b"second 0"]
    assert protocols[0].got[0][1] == sender.getsockname()
    sockets.doRead()  # nothing ready: nothing read
    assert sockets.reads == 6 and sockets.turns == 4
    for port in ports:
        port.stopListening()


def test_a_failing_protocol_is_logged_and_the_others_still_read(sender: socket.socket) -> None:
    sockets = RtpSockets(Readers())
    bad, good = Collect(fail=True), Collect()
    pbad, pgood = sockets.listen(0, bad, "127.0.0.1"), sockets.listen(0, good, "127.0.0.1")
    sender.sendto(b"x", ("127.0.0.1", pbad.getHost().port))
    sender.sendto(b"y", ("127.0.0.1", pgood.getHost().port))
    wait_readable(pbad, pgood)
    sockets.doRead()
    assert bad.got and good.got == [(b"y", sender.getsockname())]
    pbad.stopListening()
    pgood.stopListening()


def test_a_protocol_closing_another_socket_mid_turn(sender: socket.socket) -> None:
    """A socket closed by a protocol earlier in the same turn is skipped, not read."""
    sockets = RtpSockets(Readers())
    first, second = Collect(), Collect()
    p1, p2 = sockets.listen(0, first, "127.0.0.1"), sockets.listen(0, second, "127.0.0.1")
    first.datagramReceived = lambda data, addr: p2.stopListening()  # type: ignore[method-assign]
    second.datagramReceived = lambda data, addr: p1.stopListening()  # type: ignore[method-assign]
    sender.sendto(b"x", ("127.0.0.1", p1.getHost().port))
    sender.sendto(b"y", ("127.0.0.1", p2.getHost().port))
    wait_readable(p1, p2)
    sockets.doRead()
    assert sockets.reads == 1 and len(sockets) == 1
    for p in (p1, p2):
        p.stopListening()
    assert len(sockets) == 0


def test_write_sends_and_checks_the_address_once(sender: socket.socket) -> None:
    sockets = RtpSockets(Readers())
    port = sockets.listen(0, Collect(), "127.0.0.1")
    port.write(b"hello", sender.getsockname())
    assert sender.recvfrom(100) == (b"hello", ("127.0.0.1", port.getHost().port))
    with pytest.raises(error.InvalidAddressError):
        port.write(b"x", ("example.com", 5004))  # never resolved
    with pytest.raises(error.InvalidAddressError):
        port.write(b"x", ("::1", 5004))  # an IPv6 address for an IPv4 socket
    port.stopListening()


class FakeSocket:
    """A socket whose sendto fails with a chosen errno."""

    family = socket.AF_INET

    def __init__(self, code: int) -> None:
        self.code = code

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 5004)

    def fileno(self) -> int:
        return 99

    def sendto(self, data: bytes, addr: Any) -> int:
        raise OSError(self.code, "fake")


def test_write_drops_on_a_full_buffer_ignores_refusals_and_raises_the_rest() -> None:
    for code in (errno.EAGAIN, errno.ENOBUFS):
        port = RtpPort(RtpSockets(Readers()), FakeSocket(code), Collect())  # type: ignore[arg-type]
        port.write(b"x", ("127.0.0.1", 9))
        assert port.dropped == 1
    refused = RtpPort(RtpSockets(Readers()), FakeSocket(errno.ECONNREFUSED), Collect())  # type: ignore[arg-type]
    refused.write(b"x", ("127.0.0.1", 9))
    assert refused.dropped == 0
    big = RtpPort(RtpSockets(Readers()), FakeSocket(errno.EMSGSIZE), Collect())  # type: ignore[arg-type]
    with pytest.raises(error.MessageLengthError):
        big.write(b"x", ("127.0.0.1", 9))
    other = RtpPort(RtpSockets(Readers()), FakeSocket(errno.EPERM), Collect())  # type: ignore[arg-type]
    with pytest.raises(PermissionError):
        other.write(b"x", ("127.0.0.1", 9))


def test_listen_refuses_names_and_taken_ports(sender: socket.socket) -> None:
    sockets = RtpSockets(Readers())
    with pytest.raises(error.InvalidAddressError):
        sockets.listen(0, Collect(), "localhost")
    with pytest.raises(error.CannotListenError):
        sockets.listen(sender.getsockname()[1], Collect(), "127.0.0.1")
    assert len(sockets) == 0
    with pytest.raises(ValueError):
        RtpSockets(Readers(), budget=0)


def test_ipv6_sockets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    sockets = RtpSockets(Readers())
    try:
        port = sockets.listen(0, Collect(), "::1")
    except error.CannotListenError:
        pytest.skip("::1 cannot be bound here")
    assert port.getHost().host == "::1" and port.socket.family == socket.AF_INET6
    port.stopListening()


def test_only_real_posix_reactors_get_one() -> None:
    """Clocks and memory reactors (the tests' fakes) bind with listenUDP as before."""
    from twisted.internet import reactor

    assert rtp_sockets_for(task.Clock()) is None
    assert rtp_sockets_for(MemoryReactorClock()) is None
    mine = rtp_sockets_for(reactor)
    assert isinstance(mine, RtpSockets) and rtp_sockets_for(reactor) is mine


def test_a_stream_whose_port_is_taken_is_media_unavailable(sender: socket.socket) -> None:
    from twisted.internet import reactor

    stream = MediaStream(reactor, port=sender.getsockname()[1], limit=None)
    with pytest.raises(MediaUnavailable):
        stream.start()


@pytest_twisted.inlineCallbacks
def test_streams_on_the_real_reactor_share_the_reader() -> Any:
    """Two streams on the running reactor: RtpPort transports, audio both ways, sockets released on stop."""
    from twisted.internet import reactor

    sockets = rtp_sockets_for(reactor)
    assert sockets is not None
    before = len(sockets)
    a, b = MediaStream(reactor, limit=None), MediaStream(reactor, limit=None)
    offer = make_offer("127.0.0.1", a.start(), session_id=1)
    answer = make_answer(offer, "127.0.0.1", b.start(), session_id=2)
    a.configure(negotiate(offer, answer))
    b.configure(negotiate(answer, offer))
    assert isinstance(a.transport, RtpPort) and isinstance(b.transport, RtpPort) and len(sockets) == before + 2
    try:
        yield a.play(bytes(320 * 5))
        yield b.play(bytes(320 * 5))
        yield task.deferLater(reactor, 0.1, lambda: None)
        assert a.stats.packets_received == 5 and b.stats.packets_received == 5
    finally:
        yield a.stop()
        yield b.stop()
    assert len(sockets) == before and a.port == 0
