"""Caps on media streams: each holds a UDP socket, so an INVITE flood must not exhaust them.

:class:`MediaStreamLimit` counts streams started and not stopped; by default every
:class:`~txsipua.net.rtp.MediaStream` of the process shares :data:`DEFAULT_LIMIT` (set its
``maximum`` to change the cap).  A stream that cannot start, at the cap or because the socket
cannot be opened (no file descriptor left, port taken), raises :class:`MediaUnavailable`, which
an incoming call turns into 503 with Retry-After.  A stream that sends RTCP holds two sockets
until ``rtcp-mux`` is negotiated (RTP and RTCP on the next port, RFC 3550 §11); it is still one
stream here.
"""

from __future__ import annotations

import attrs

from txsipua.errors import MediaUnavailable

__all__ = ["DEFAULT_LIMIT", "MAX_MEDIA_STREAMS", "MediaStreamLimit", "MediaUnavailable"]

#: Default cap on streams started and not stopped, process-wide (:data:`DEFAULT_LIMIT`).
MAX_MEDIA_STREAMS = 512


@attrs.define
class MediaStreamLimit:
    """A cap on the media streams open at once (each holds a UDP socket).

    Attributes:
        maximum: streams that may be started and not yet stopped.
        active: streams holding a slot now.
        refused: :meth:`acquire` calls refused since creation.
    """

    maximum: int = MAX_MEDIA_STREAMS
    active: int = 0
    refused: int = 0

    def acquire(self) -> bool:
        """Take a slot; False (and counted in :attr:`refused`) when none is free."""
        if self.active >= self.maximum:
            self.refused += 1
            return False
        self.active += 1
        return True

    def release(self) -> None:
        """Give a slot back."""
        self.active = max(0, self.active - 1)


#: The limit every :class:`MediaStream` shares unless given its own (``limit=``).
DEFAULT_LIMIT = MediaStreamLimit()
