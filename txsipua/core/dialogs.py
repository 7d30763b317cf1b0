"""The dialog table: every call usage of a user agent, by key (RFC 3261 §12, §13.3.1.4).

Theory of operation
-------------------
A received request or response finds its call in O(1):

* by dialog id ``(Call-ID, local tag, remote tag)`` (§12): in-dialog
  requests, the ACK of a 2xx, retransmitted 2xx responses.  The remote tag
  is ``""`` when the peer gave none (an RFC 2543 peer's 2xx, §12.1.2);
* by INVITE server transaction, while the INVITE awaits its final response:
  a CANCEL (§9.2);
* by INVITE server transaction, while its 2xx awaits the ACK: Timer L (the
  ACK timeout, §13.3.1.4) names the transaction and finds its session here,
  never by scanning the sessions.

The table holds usages as opaque objects; it never reads their attributes.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from txsipua.core.transaction import ServerTransaction

DialogKey = tuple[str, str, str]
"""``(Call-ID, local tag, remote tag)``."""

S = TypeVar("S")


class DialogTable(Generic[S]):
    """Sessions by dialog id, by unanswered INVITE and by 2xx awaiting its ACK."""

    __slots__ = ("_by_id", "_unanswered", "_awaiting_ack")

    def __init__(self) -> None:
        self._by_id: dict[DialogKey, S] = {}
        self._unanswered: dict[ServerTransaction, S] = {}
        self._awaiting_ack: dict[ServerTransaction, S] = {}

    def __len__(self) -> int:
        """The number of dialogs."""
        return len(self._by_id)

    # --------------------------------------------------------- dialog ids
    def add(self, key: DialogKey, session: S) -> None:
        """Enter ``session`` under its dialog id."""
        self._by_id[key] = session

    def get(self, key: DialogKey) -> S | None:
        """The session of dialog ``key``, or ``None``."""
        return self._by_id.get(key)

    def discard(self, key: DialogKey, session: S) -> None:
        """Remove dialog ``key`` if it is ``session``'s."""
        if self._by_id.get(key) is session:
            del self._by_id[key]

    # -------------------------------------------------- unanswered INVITEs
    def add_unanswered(self, transaction: ServerTransaction, session: S) -> None:
        """``session`` answers the INVITE of ``transaction`` (a CANCEL may still apply, §9.2)."""
        self._unanswered[transaction] = session

    def pop_unanswered(self, transaction: ServerTransaction) -> S | None:
        """Forget and return the session of an unanswered INVITE, or ``None``."""
        return self._unanswered.pop(transaction, None)

    # ------------------------------------------------- 2xx awaiting an ACK
    def await_ack(self, transaction: ServerTransaction, session: S) -> None:
        """``session`` sent a 2xx on ``transaction`` and waits for its ACK (§13.3.1.4)."""
        self._awaiting_ack[transaction] = session

    def pop_awaiting_ack(self, transaction: ServerTransaction) -> S | None:
        """Forget and return the session whose 2xx on ``transaction`` awaited an ACK, or ``None``."""
        return self._awaiting_ack.pop(transaction, None)


__all__ = ["DialogKey", "DialogTable"]
