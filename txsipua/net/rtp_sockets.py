"""Every RTP socket of a process read through one reactor reader, in bounded batches (Linux epoll).

Theory of operation:

- A process with 500 calls has 500 RTP sockets.  Read the usual way (one
  Twisted ``udp.Port`` each) every datagram costs a reactor event, a logging
  context, a ``recvfrom`` and a second ``recvfrom`` that fails with
  ``EAGAIN``; and one reactor iteration handles *every* ready socket before
  it runs a timer again, so the one :class:`~txsipua.net.pacer.Pacer` of the
  process is late whenever a few hundred datagrams arrive together.
- :class:`RtpSockets` holds the RTP sockets of one reactor in an epoll set
  of its own and registers that set's descriptor with the reactor as one
  reader.  When the reactor says the set is readable, :meth:`RtpSockets.doRead`
  asks the set for at most ``budget`` ready sockets and reads *one*
  datagram from each (level-triggered: a socket holding more is reported
  again), handing it to the socket's protocol (``datagramReceived``), then
  returns to the reactor, which runs its due timers (the pacer) before the
  next batch.  A timer waits for at most one batch, whatever the number of
  streams.
- :class:`RtpPort` is the transport of one socket: ``write(datagram, addr)``
  (``sendto``; an address is checked to be an IP literal once per new
  destination, as Twisted's ports do), ``getHost()`` and ``stopListening()``;
  a protocol attached to it sees what it sees with ``reactor.listenUDP``
  (``makeConnection``, ``datagramReceived``, ``doStop``).  A datagram the
  kernel cannot queue (``EAGAIN``, ``ENOBUFS``: a full socket buffer) is
  dropped and counted in :attr:`RtpPort.dropped`, as a network would drop
  it, instead of failing the sender.
- :func:`rtp_sockets_for` gives the set shared by the streams of one real
  POSIX reactor on a platform with epoll, and None elsewhere (other
  platforms, memory reactors and clocks of the tests): the streams then
  bind with ``reactor.listenUDP`` as before.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import weakref
from typing import Any

from twisted.internet import abstract, defer, error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["DEFAULT_BUDGET", "MAX_DATAGRAM", "RtpPort", "RtpSockets", "rtp_sockets_for"]

#: Datagrams read per reactor turn at most (then the reactor runs its due timers).
DEFAULT_BUDGET = 64
#: The largest datagram read, octets (Twisted's ``udp.Port`` default).
MAX_DATAGRAM = 8192
_DROPPED = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)


class RtpPort:
    """One UDP socket of an :class:`RtpSockets`: the datagram transport of one stream.

    Attributes:
        socket: the bound, non-blocking socket.
        protocol: the ``DatagramProtocol`` its datagrams go to.
        dropped: datagrams not sent because the socket's buffer was full.
    """

    def __init__(self, owner: RtpSockets, sock: socket.socket, protocol: Any) -> None:
        self._owner = owner
        self.socket = sock
        self.protocol = protocol
        self.dropped = 0
        self._checked: Any = None  # the last destination found to be an IP literal
        host, port = sock.getsockname()[:2]
        self._host = (IPv6Address if sock.family == socket.AF_INET6 else IPv4Address)("UDP", host, port)
        self._fileno = sock.fileno()

    def fileno(self) -> int:
        """The socket's descriptor (-1 once stopped)."""
        return self._fileno

    def getHost(self) -> IPv4Address | IPv6Address:  # noqa: N802 - Twisted's name
        """The bound address (``.host``, ``.port``)."""
        return self._host

    def write(self, datagram: bytes, addr: Any) -> None:
        """Send one datagram to ``addr`` (``(host, port)``, ``host`` an IP literal).

        Raises:
            twisted.internet.error.InvalidAddressError: ``host`` is not an IP
                address (no name is ever resolved here).
            twisted.internet.error.MessageLengthError: the datagram is too long.
            OSError: any other socket error but a refused or full destination.
        """
        if addr != self._checked:
            host = addr[0]
            if not (abstract.isIPAddress(host) or abstract.isIPv6Address(host)):
                raise error.InvalidAddressError(host, "write() only accepts IP addresses, not hostnames")
            if self.socket.family == socket.AF_INET and not abstract.isIPAddress(host):
                raise error.InvalidAddressError(host, "IPv6 address given to an IPv4 socket")
            self._checked = addr
        try:
            self.socket.sendto(datagram, addr)
        except OSError as e:
            if e.errno in _DROPPED:
                self.dropped += 1
            elif e.errno == errno.EINTR:
                self.write(datagram, addr)
            elif e.errno == errno.EMSGSIZE:
                raise error.MessageLengthError("message too long") from None
            elif e.errno != errno.ECONNREFUSED:  # an ICMP error of an earlier datagram: UDP goes on
                raise

    def stopListening(self) -> defer.Deferred[None]:  # noqa: N802 - Twisted's name
        """Close the socket and detach the protocol (``doStop``); idempotent. Fires at once."""
        if self._fileno >= 0:
            self._owner.remove(self)
            self._fileno = -1
            self.socket.close()
            self.protocol.doStop()
        return defer.succeed(None)

    loseConnection = stopListening  # noqa: N815 - Twisted's name


@implementer(IReadDescriptor)
class RtpSockets:
    """The RTP sockets of one reactor, read through one epoll set in batches of ``budget``.

    Args:
        reactor: a POSIX reactor (``addReader``, ``removeReader``).
        budget: datagrams read per reactor turn at most.

    Attributes:
        budget: as given.
        reads: datagrams read so far.
        turns: reactor turns that read (``doRead`` calls).
    """

    log = Logger()

    def __init__(self, reactor: Any, budget: int = DEFAULT_BUDGET) -> None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1, not {budget!r}")
        self._reactor = reactor
        self.budget = budget
        self._epoll: Any = None
        self._ports: dict[int, RtpPort] = {}
        self._reading = False
        self.reads = 0
        self.turns = 0

    def __len__(self) -> int:
        """The number of open sockets."""
        return len(self._ports)

    def listen(self, port: int, protocol: Any, interface: str = "") -> RtpPort:
        """Bind a UDP socket on ``interface``:``port`` (0: any free port) for ``protocol``.

        The protocol is attached as ``reactor.listenUDP`` would
        (``makeConnection``: ``startProtocol`` runs).

        Raises:
            twisted.internet.error.InvalidAddressError: ``interface`` is not an IP address.
            twisted.internet.error.CannotListenError: the socket cannot be made
                or bound (port taken, no descriptor left).
        """
        if abstract.isIPv6Address(interface):
            family = socket.AF_INET6
        elif abstract.isIPAddress(interface) or not interface:
            family = socket.AF_INET
        else:
            raise error.InvalidAddressError(interface, "not an IPv4 or IPv6 address")
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as e:
            raise error.CannotListenError(interface, port, e) from e
        try:
            sock.setblocking(False)
            sock.bind((interface, port))
            if self._epoll is None:
                self._epoll = select.epoll()
            self._epoll.register(sock.fileno(), select.EPOLLIN)
        except OSError as e:
            sock.close()
            raise error.CannotListenError(interface, port, e) from e
        rtp_port = RtpPort(self, sock, protocol)
        self._ports[rtp_port.fileno()] = rtp_port
        if not self._reading:
            self._reading = True
            self._reactor.addReader(self)
        protocol.makeConnection(rtp_port)
        return rtp_port

    def remove(self, port: RtpPort) -> None:
        """Forget ``port`` (its :meth:`RtpPort.stopListening` calls this); the reader goes with the last one."""
        if self._ports.pop(port.fileno(), None) is None:
            return
        with contextlib.suppress(OSError, ValueError):  # closed already
            self._epoll.unregister(port.fileno())
        if not self._ports and self._reading:
            self._reading = False
            self._reactor.removeReader(self)

    # --- IReadDescriptor ----------------------------------------------------

    def fileno(self) -> int:
        """The epoll set's descriptor (what the reactor watches)."""
        return self._epoll.fileno() if self._epoll is not None else -1

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        """The prefix of the reactor's log lines about this reader."""
        return "RtpSockets"

    def doRead(self) -> None:  # noqa: N802 - Twisted's name
        """Read one datagram from each of at most ``budget`` ready sockets; give each to its protocol."""
        self.turns += 1
        ports = self._ports
        for fd, _ in self._epoll.poll(0, self.budget):
            port = ports.get(fd)
            if port is None:  # closed by a protocol earlier in this batch
                continue
            try:
                data, addr = port.socket.recvfrom(MAX_DATAGRAM)
            except OSError:  # EAGAIN, or a pending ICMP error (ECONNREFUSED...) now cleared
                continue
            self.reads += 1
            try:
                port.protocol.datagramReceived(data, addr[:2])
            except Exception:
                self.log.failure("an RTP protocol failed on a datagram")

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted's name
        """The reactor dropped this reader (shutting down): readable again on the next :meth:`listen`."""
        self._reading = False


_SETS: weakref.WeakKeyDictionary[Any, RtpSockets] = weakref.WeakKeyDictionary()


def rtp_sockets_for(reactor: Any) -> RtpSockets | None:
    """The :class:`RtpSockets` shared by the streams of ``reactor``, or None where it cannot work.

    None unless ``reactor`` is a real POSIX reactor (Twisted's
    ``PosixReactorBase``: epoll, poll, select or asyncio) on a platform with
    ``select.epoll``; the caller then binds with ``reactor.listenUDP``.
    """
    from twisted.internet.posixbase import PosixReactorBase

    if not hasattr(select, "epoll") or not isinstance(reactor, PosixReactorBase):
        return None
    sockets = _SETS.get(reactor)
    if sockets is None:
        sockets = _SETS[reactor] = RtpSockets(reactor)
    return sockets
