"""A connection talks to its owner only through :class:`~txsipua.net.stream.ConnectionOwner`.

An owner that implements nothing but that protocol drives a :class:`SIPStreamProtocol`
through accept, a framed message, and loss; :class:`StreamDriver` satisfies it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger
from twisted.python.failure import Failure

from txsipua.core.useragent import UserAgentCore
from txsipua.net.stream import ConnectionOwner, SIPStreamProtocol, StreamDriver

PING_THEN_OPTIONS = (
    b"\r\n\r\n"
    b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.40:5060;branch=z9hG4bK-o1\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:eve@example.org>;tag=e1\r\nTo: <sip:bob@example.com>\r\n"
    b"Call-ID: o1@192.0.2.40\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


class Owner:
    """Only the ConnectionOwner members; records every call."""

    log = Logger()
    handshake_timeout: float | None = None
    idle_timeout: float | None = 30.0
    message_timeout: float | None = None
    first_message_timeout: float | None = None
    max_message_size = 4096

    def __init__(self, admit: bool = True) -> None:
        self.reactor = MemoryReactorClock()
        self.calls: list[tuple[str, Any]] = []
        self._admit = admit

    def admit(self, conn: SIPStreamProtocol, peer: Any) -> bool:
        self.calls.append(("admit", peer))
        if self._admit:
            conn.counted = True
        return self._admit

    def release(self, conn: SIPStreamProtocol) -> None:
        self.calls.append(("release", None))

    def connection_opened(self, peer: Any, conn: SIPStreamProtocol) -> None:
        self.calls.append(("opened", peer))

    def connection_closed(self, peer: Any, conn: SIPStreamProtocol) -> None:
        self.calls.append(("closed", peer))

    def message_received(self, data: bytes, peer: Any) -> None:
        self.calls.append(("message", (data[:7], peer)))

    def connection_failed(self, destination: Any) -> None:
        self.calls.append(("failed", destination))


def accept(owner: ConnectionOwner) -> tuple[SIPStreamProtocol, StringTransport]:
    conn = SIPStreamProtocol(owner, outbound=False)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    conn.makeConnection(transport)
    return conn, transport


def test_a_connection_uses_only_the_owner_protocol() -> None:
    owner = Owner()
    conn, transport = accept(owner)
    conn.dataReceived(PING_THEN_OPTIONS)
    assert transport.value() == b"\r\n"  # the keepalive pong
    conn.connectionLost(Failure(ConnectionLost()))
    peer = ("127.0.0.1", 40000)
    assert owner.calls == [
        ("admit", peer), ("opened", peer), ("message", (b"OPTIONS", peer)),
        ("release", None), ("closed", peer), ("failed", peer),
    ]
    assert conn.framer.max_size == 4096


def test_a_refused_connection_is_closed_and_reads_nothing() -> None:
    owner = Owner(admit=False)
    conn, transport = accept(owner)
    assert transport.disconnecting
    conn.dataReceived(PING_THEN_OPTIONS)
    conn.connectionLost(Failure(ConnectionLost()))
    assert owner.calls == [("admit", ("127.0.0.1", 40000))]


def test_stream_driver_is_a_connection_owner() -> None:
    core = UserAgentCore(local=("127.0.0.1", 5060), transport="TCP", reliable=True)
    drv: ConnectionOwner = StreamDriver(MemoryReactorClock(), core, lambda e: None)
    for name in ("admit", "release", "connection_opened", "connection_closed", "message_received",
                 "connection_failed", "reactor", "log", "handshake_timeout", "idle_timeout", "max_message_size",
                 "message_timeout", "first_message_timeout"):
        assert hasattr(drv, name), name
