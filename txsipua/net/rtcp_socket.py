"""The RTCP socket of a stream without ``rtcp-mux``: RTP on an even port, RTCP on the next one (RFC 3550 §11).

Theory of operation:

- A peer that does not multiplex (RFC 5761) sends its RTCP to our RTP port
  + 1, unless our SDP names another port with ``a=rtcp`` (RFC 3605).  So a
  stream that sends RTCP binds its sockets as a pair when it starts, before
  anyone knows whether ``rtcp-mux`` will be negotiated: RTP on an even port
  and RTCP on the odd port after it.  :func:`bind_pair` does that; with port
  0 it asks the system for a port and tries again (at most
  :data:`PAIR_ATTEMPTS` times) while the port is odd or the next one is taken.
- Our SDP therefore never needs ``a=rtcp``: the RTCP port is always the
  default one (RFC 3605 §2.1 makes the attribute optional then), which is
  also what every peer without RFC 3605 support expects.
- The pair counts as *one* stream for
  :class:`~txsipua.net.media_limits.MediaStreamLimit`.
- :class:`RtcpProtocol` is the RTCP socket's datagram protocol: it hands
  every datagram to the stream's RTCP entry
  (:meth:`~txsipua.net.rtp_receive.RtpReceiver.rtcp_datagram_received`),
  which filters the source (latching as for RTP, RFC 4961), removes SRTCP
  protection and feeds the same :class:`~txsipua.media.rtcp.RtcpSession` as
  multiplexed RTCP.  The socket is read like the RTP ones: through the
  process's :class:`~txsipua.net.rtp_sockets.RtpSockets` on a real reactor,
  ``listenUDP`` elsewhere.
- When the negotiation settles on ``rtcp-mux``, the stream closes its RTCP
  socket and sends and hears RTCP on the RTP port only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol

__all__ = ["PAIR_ATTEMPTS", "RtcpProtocol", "bind_pair"]

#: How many system-chosen ports :func:`bind_pair` tries before giving up.
PAIR_ATTEMPTS = 32


class RtcpProtocol(DatagramProtocol):
    """The datagram protocol of an RTCP socket: every datagram goes to ``receive(data, addr)``.

    Args:
        receive: the stream's RTCP entry, called as ``receive(data, (host, port))``.
    """

    def __init__(self, receive: Callable[[bytes, Any], object]) -> None:
        self._receive = receive

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802 - Twisted's name
        """Hand one datagram to the stream."""
        self._receive(data, addr)


def bind_pair(listen: Callable[[int, Any], Any], port: int, rtp: Any, rtcp: Any,
              attempts: int = PAIR_ATTEMPTS) -> tuple[Any, Any]:
    """Bind ``rtp`` on an even port and ``rtcp`` on the next one (RFC 3550 §11).

    Args:
        listen: ``listen(port, protocol)`` binds one UDP socket and returns its
            listening port (``getHost().port``, ``stopListening()``).
        port: the RTP port to bind (then RTCP on ``port + 1``, even or odd as
            given), or 0 for an even port the system chooses.
        rtp: the RTP datagram protocol.
        rtcp: the RTCP datagram protocol.
        attempts: with ``port`` 0, how many ports to try.

    Returns:
        ``(rtp_listening, rtcp_listening)``.

    Raises:
        twisted.internet.error.CannotListenError: a socket cannot be opened
            (no descriptor left), ``port + 1`` is taken, or with ``port`` 0 no
            free even/odd pair was found in ``attempts`` tries.  Nothing stays
            bound then.
    """
    for _ in range(attempts if port == 0 else 1):
        rtp_listening = listen(port, rtp)
        number = int(rtp_listening.getHost().port)
        if port == 0 and number % 2:
            rtp_listening.stopListening()
            continue
        try:
            rtcp_listening = listen(number + 1, rtcp)
        except CannotListenError:
            rtp_listening.stopListening()
            if port != 0:
                raise
            continue
        except BaseException:
            rtp_listening.stopListening()
            raise
        return rtp_listening, rtcp_listening
    raise CannotListenError("", port, OSError(f"no free even/odd RTP/RTCP port pair in {attempts} tries"))
