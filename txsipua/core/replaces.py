"""An INVITE with Replaces: which of our dialogs it replaces, or why it is refused (RFC 3891 §3).

Theory of operation
-------------------
:func:`find_replaced` is asked by :class:`~txsipua.core.uas.UasCore` for a
new INVITE carrying a Replaces header field.  It looks the dialog up by id
in the dialog table, the Replaces ``to-tag`` being our local tag and its
``from-tag`` our remote tag, and applies RFC 3891 §3:

==========================================================  ==========
the INVITE has more than one Replaces, or one that does      400
not parse
no dialog of ours has that id                                481
the dialog has ended or is ending (our BYE out)              603
``early-only`` and the dialog is confirmed                   486
a confirmed dialog (or one whose 2xx awaits its ACK)         replaced
==========================================================  ==========

An early dialog we did not initiate (we have not answered the INVITE) is not
in the dialog table, so it gets 481 as §3 requires.  An early dialog we
initiated is not tracked by tag either: it gets 481 too (§3 lets the UA
accept it and CANCEL the original INVITE; we do not).

The replaced session is handed to the application with the new call
(:class:`~txsipua.core.events.IncomingCall` ``replaces``); once the new call
is up the application (by default :mod:`txsipua.ua.transfer`) ends the old
one with BYE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from txsipua.core.invite import Phase
from txsipua.errors import ParseError
from txsipua.sip.event_headers import Replaces
from txsipua.sip.message import Request

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.dialogs import DialogTable
    from txsipua.core.invite import InviteSession

_LIVE = frozenset({Phase.ACCEPTED, Phase.CONFIRMED})


def find_replaced(dialogs: DialogTable[InviteSession], request: Request) -> InviteSession | tuple[int, str]:
    """The session ``request``'s Replaces names, or ``(status, reason)`` to refuse it with.

    Args:
        dialogs: the dialog table.
        request: a new INVITE with a Replaces header field.
    """
    values = request.headers.get_all("Replaces")
    if len(values) != 1:
        return (400, "INVITE with more than one Replaces")
    try:
        replaces = Replaces.parse(values[0])
    except ParseError as e:
        return (400, f"Bad Replaces ({e.detail})")
    session = dialogs.get((replaces.call_id, replaces.to_tag, replaces.from_tag))
    if session is None:
        return (481, "Call/Transaction Does Not Exist (no dialog to replace)")
    if session.phase not in _LIVE:
        return (603, "Declined (the dialog to replace has ended)")
    if replaces.early_only:
        return (486, "Busy Here (early-only, and the dialog is confirmed)")
    return session


__all__ = ["find_replaced"]
