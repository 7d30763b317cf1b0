"""Identifier generation: branches, tags, Call-IDs and cnonces (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3).

The pure core never reads :mod:`random` itself: every identifier comes from an
injected :class:`IdGenerator` whose ``token`` callable supplies the randomness.
Production code uses the default (:class:`RandomHex`, the kernel's CSPRNG); tests use
:class:`SequentialIds`, whose output is predictable.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs

BRANCH_MAGIC_COOKIE = "z9hG4bK"
"""The prefix of every RFC 3261 branch parameter (§8.1.1.7)."""


class RandomHex:
    """``token(nbytes) -> str``: hex digits of :func:`os.urandom` output, read 4 KiB at a time.

    The same randomness as :func:`secrets.token_hex` (the kernel's CSPRNG), with
    one system call per 256 tokens of 8 bytes instead of one per token: a busy
    UAS makes a tag and a branch or two per call.  The default instance drops
    its buffer in a forked child, so parent and child never hand out the same
    digits.
    """

    __slots__ = ("_hex", "_pos", "_chunk")

    def __init__(self, chunk: int = 4096) -> None:
        self._chunk = chunk
        self._hex = ""
        self._pos = 0

    def forget(self) -> None:
        """Drop the digits read ahead (a forked child must not reuse its parent's)."""
        self._hex = ""
        self._pos = 0

    def __call__(self, nbytes: int) -> str:
        n = 2 * nbytes
        pos = self._pos
        end = pos + n
        if end > len(self._hex):
            self._hex = os.urandom(max(self._chunk, nbytes)).hex()
            pos, end = 0, n
        self._pos = end
        return self._hex[pos:end]


_random_hex = RandomHex()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random_hex.forget)


@attrs.define
class IdGenerator:
    """Makes the random identifiers SIP needs.

    Attributes:
        token: a callable ``token(nbytes) -> str`` returning ``2 * nbytes``
            lower-case hex digits of randomness (the default is
            :class:`RandomHex`: :func:`os.urandom` digits). Every identifier below is built from it,
            so the whole generator is deterministic when ``token`` is.
    """

    token: Callable[[int], str] = _random_hex

    def branch(self) -> str:
        """A new Via branch: the magic cookie then 64 random bits (RFC 3261 §8.1.1.7).

        Returns:
            e.g. ``"z9hG4bK5f0c3e2a9b1d7c44"``; unique per transaction.
        """
        return BRANCH_MAGIC_COOKIE + self.token(8)

    def tag(self) -> str:
        """A new From/To tag with 64 random bits (RFC 3261 §19.3 asks for at least 32)."""
        return self.token(8)

    def call_id(self, host: str = "") -> str:
        """A new Call-ID, ``<96 random bits>@host`` (RFC 3261 §8.1.1.4).

        Args:
            host: the local host name or address to append; omitted when empty.
        """
        local = self.token(12)
        return f"{local}@{host}" if host else local

    def cnonce(self) -> str:
        """A new digest client nonce with 64 random bits (RFC 7616 §3.4, issue 3's minimum)."""
        return self.token(8)


@attrs.define
class SequentialIds(IdGenerator):
    """A deterministic :class:`IdGenerator` for tests: tokens count up from ``start``.

    ``SequentialIds().branch()`` is ``"z9hG4bK0000000000000001"``, the next
    call gives ``...0002``, and so on; every token has the length the real one
    would have (``2 * nbytes`` hex digits).

    Attributes:
        counter: the last number handed out.
    """

    counter: int = 0
    token: Callable[[int], str] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.token = self._next

    def _next(self, nbytes: int) -> str:
        self.counter += 1
        return format(self.counter, f"0{2 * nbytes}x")[-2 * nbytes :]


__all__ = ["BRANCH_MAGIC_COOKIE", "IdGenerator", "RandomHex", "SequentialIds"]
