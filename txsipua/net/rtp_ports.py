"""RTP sockets in a configured port range, with symmetric RTP for peers behind a NAT.

Theory of operation: a firewall or a static NAT often forwards only a range
of UDP ports to a phone, so :func:`stream_factory` builds the
``(reactor, host) -> MediaStream`` factory a call uses
(:class:`~txsipua.ua.media.CallMedia`'s ``stream_factory``) that binds the
first free port of ``(first, last)``, trying even ports first (RFC 3550
§11: RTP on an even port, RTCP on the next odd one) from a random point of
the range, so two calls started together rarely race for one port.  When
the streams send RTCP (``rtcp_interval``) each binds its RTCP socket on the
RTP port + 1 as well (:func:`~txsipua.net.rtcp_socket.bind_pair`), so only
RTP ports whose next port is in the range too are tried.

With ``symmetric`` the stream is built with ``latch=True``
(:class:`~txsipua.net.rtp.MediaStream`): it starts sending to the address
the peer's SDP gave, and once the peer's media arrives from another source
it latches to that source and sends there (RFC 4961 symmetric RTP, what a
peer behind a NAT needs).  The source filter of the stream is kept: after
the latch only the negotiated source and the latched one are heard.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from txsipua.net.media_limits import DEFAULT_LIMIT, MediaStreamLimit, MediaUnavailable

StreamFactory = Callable[[Any, str], Any]


def candidate_ports(first: int, last: int, start: int) -> list[int]:
    """The ports of ``first..last`` in the order to try: even ones from ``start`` on, wrapping, then odd ones.

    Args:
        first: the range's first port.
        last: the range's last port (inclusive).
        start: where to begin (any port of the range).
    """
    ports = list(range(first, last + 1))
    k = ports.index(start) if start in ports else 0
    rotated = ports[k:] + ports[:k]
    return [p for p in rotated if p % 2 == 0] + [p for p in rotated if p % 2 == 1]


def stream_factory(ports: tuple[int, int] | None, symmetric: bool, *,
                   limit: MediaStreamLimit | None = None,
                   rng: random.Random | None = None, **options: Any) -> StreamFactory | None:
    """The stream factory for a port range and symmetric RTP, or ``None`` for the defaults.

    Args:
        ports: ``(first, last)``, or ``None`` for any free port.
        symmetric: latch to the peer's media source (RFC 4961).
        limit: the :class:`~txsipua.net.media_limits.MediaStreamLimit`
            (the process-wide one by default).
        rng: where the first port tried is drawn from.
        options: more :class:`~txsipua.net.rtp.MediaStream` keyword arguments
            (``rtcp_interval``, ``media_timeout``).

    Returns:
        ``None`` when neither is asked for (the call keeps its default
        factory), else a callable ``(reactor, host) -> started MediaStream``
        raising :class:`~txsipua.net.media_limits.MediaUnavailable` when the
        stream cap is reached or every port of the range is taken.
    """
    if ports is None and not symmetric:
        return None
    chosen = limit if limit is not None else DEFAULT_LIMIT
    draw = rng or random.SystemRandom()

    def make(reactor: Any, host: str) -> Any:
        from txsipua.net.rtp import MediaStream

        if ports is None:
            stream = MediaStream(reactor, local_host=host, latch=symmetric, limit=chosen, **options)
            stream.start()
            return stream
        first, last = ports
        pair = options.get("rtcp_interval") is not None  # RTCP on port + 1: it must be in the range
        for port in candidate_ports(first, last, draw.randint(first, last)):
            if pair and port + 1 > last:
                continue
            stream = MediaStream(reactor, local_host=host, port=port, latch=symmetric, limit=chosen, **options)
            try:
                stream.start()
            except MediaUnavailable:
                if chosen.active >= chosen.maximum:
                    raise  # the cap, not the port: another port will not help
                continue
            return stream
        raise MediaUnavailable(f"no free RTP port in {first}-{last}")

    return make
