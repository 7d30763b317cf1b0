"""Caps on media streams: each holds a UDP socket, so an INVITE flood must not exhaust them.

:class:`MediaStreamLimit` counts streams started and not stopped; by default every
:class:`~txsipua.net.rtp.MediaStream` of the process shares :data:`DEFAULT_LIMIT` (set its
``maximum`` to change the cap).  A stream that cannot start, at the cap or because the socket
cannot be opened (no file descriptor left, port taken), raises :class:`MediaUnavailable`, which
an incoming call turns into 503 with Retry-After.
"""

from __future__ import annotations

import attrs

from txsipua.errors import LocalProtocolError

__all__ = ["DEFAULT_LIMIT", "MAX_MEDIA_STREAMS", "MediaStreamLimit", "MediaUnavailable"]

#: Default cap on streams started and not stopped, process-wide (:data:`DEFAULT_LIMIT`).
MAX_MEDIA_STREAMS = 512


class MediaUnavailable(LocalProtocolError):
    """No media stream can be opened now: the stream cap is reached or no socket is left.

    An incoming call is then declined with :attr:`status` and :attr:`headers`.

    Attributes:
        status: 503 (Service Unavailable, RFC 3261 §21.5.4).
        headers: ``(("Retry-After", seconds),)`` for the response (§20.33).
        retry_after: the seconds suggested in Retry-After.
    """

    status = 503

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers: tuple[tuple[str, str], ...] = (("Retry-After", str(retry_after)),)


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
