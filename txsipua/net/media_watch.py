"""The media timeout of one RTP stream: a call whose peer stopped sending is noticed once.

A :class:`MediaWatch` remembers when the stream last heard the peer (RTP or
RTCP that passed every check, SRTP included) and keeps one ``IDelayedCall``
armed at ``last heard + timeout`` while its stream says media is expected
(sendrecv, not held, a real peer address).  When it fires with nothing heard
meanwhile, it calls ``on_expired`` once (the stream logs it and the call
hangs up with BYE); media heard meanwhile re-arms it for the rest.  The
reactor is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["MediaWatch"]


class MediaWatch:
    """One stream's media timeout.

    Args:
        reactor: provides ``callLater`` and ``seconds``.
        timeout: seconds without media before ``on_expired``; None: never.
        expecting: says whether media is expected now.
        on_expired: called once when the timeout passes.

    Attributes:
        last_heard: when media was last heard, seconds (reactor time).
        expired: True once ``on_expired`` was called.
    """

    def __init__(self, reactor: Any, timeout: float | None, expecting: Callable[[], bool],
                 on_expired: Callable[[], object]) -> None:
        self._reactor = reactor
        self.timeout = timeout
        self._expecting = expecting
        self._on_expired = on_expired
        self._call: Any = None
        self.last_heard = 0.0
        self.expired = False

    def heard(self, now: float) -> None:
        """Media arrived at ``now`` (or a new negotiation starts a full timeout)."""
        self.last_heard = now

    def _armed(self) -> bool:
        return self.timeout is not None and not self.expired and self._expecting()

    def watch(self) -> None:
        """Arm the timeout when media is expected, disarm it otherwise."""
        if not self._armed():
            self.unwatch()
            return
        if self._call is None:
            assert self.timeout is not None
            delay = self.last_heard + self.timeout - self._reactor.seconds()
            self._call = self._reactor.callLater(max(0.0, delay), self._check)

    def unwatch(self) -> None:
        """Disarm the timeout."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _check(self) -> None:
        self._call = None
        if not self._armed():
            return
        assert self.timeout is not None
        if self._reactor.seconds() - self.last_heard < self.timeout:
            self.watch()  # media came meanwhile: wait for the rest
            return
        self.expired = True
        self._on_expired()
