"""The server INVITE usage: a call we receive (RFC 3261 §13.3, §9.2, §15).

Theory of operation
-------------------
:class:`InviteServerSession` answers one received INVITE on its INVITE server
transaction.  The application orders ``ring()``, ``accept()``, ``reject()``
or ``hangup()``; an order absent from :data:`SERVER_TABLE` in the current
phase raises :class:`~txsipua.errors.LocalProtocolError`.  Our To tag is
chosen when the session is made and used on every response.

A CANCEL before the final response is answered 487 on the INVITE (§9.2).
After the 2xx, the transaction layer retransmits it until the session reports
the ACK (§13.3.1.4, RFC 6026 Accepted); if Timer L fires first, the core
finds the session by the transaction in the dialog table and feeds
``ACK_TIMEOUT``.

No BYE to an unverified party before the ACK: §13.3.1.4 asks for a BYE when
the ACK never comes, but until an ACK arrives the peer's Contact is only a
claim: an INVITE can name a third party there, and the BYE (retransmitted up
to 11 times over UDP) would go to that party.  So before an ACK the BYE is
sent only when the dialog's next hop (first route, else the Contact) is the
address the INVITE came from, where the exchange has already been seen to
work and the BYE's answer can be checked; otherwise the call ends with reason
``"no-ack"`` and nothing is sent.  Once an ACK came (the ACK of a re-INVITE's
2xx missing later), the dialog is verified and the BYE is always sent.

The flow, with the dialog phase of :mod:`txsipua.core.invite`::

          INVITE received, 100 sent by the transaction
                   |
                   v     ring(): 1xx
              +----------+ ------> +---------+ ring(): 1xx
              | RECEIVED |         | RINGING |<--+
              +----------+         +---------+---+
                |  |  reject(): 300-699 | |
                |  |  hangup(): 603     | |
                |  |  CANCEL: 487       | |
                |  +--> TERMINATED <----+ |
                |                         |
                | accept(): 2xx           | accept(): 2xx
                v                         v
              +------------------------------+ ACK timeout (Timer L):
              |           ACCEPTED           | BYE if the next hop is the
              +------------------------------+ INVITE's source -> TERMINATING
                | ACK      | BYE received     | hangup: BYE -> TERMINATING
                v          v
          +-----------+  TERMINATED
          | CONFIRMED |  (dialog phase: BYE, re-INVITE, ...)
          +-----------+
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from txsipua.core import events as ev
from txsipua.core.dialog import Dialog
from txsipua.core.invite import DIALOG_TABLE, Input, InviteSession, Phase, Table
from txsipua.core.invite import Action as A
from txsipua.core.transaction import ServerTransaction
from txsipua.core.transport import Address, unbracket
from txsipua.errors import ParseError, ResolutionError
from txsipua.sip.message import Request

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.context import SessionHost

P = Phase
I = Input  # noqa: E741

SERVER_TABLE: Table = {
    (P.RECEIVED, I.RING): (A.SEND_1XX, P.RINGING),
    (P.RINGING, I.RING): (A.SEND_1XX, P.RINGING),
    **{(p, I.ACCEPT): (A.SEND_2XX, P.ACCEPTED) for p in (P.RECEIVED, P.RINGING)},
    **{(p, I.REJECT): (A.SEND_FINAL, P.TERMINATED) for p in (P.RECEIVED, P.RINGING)},
    **{(p, I.HANGUP): (A.DECLINE, P.TERMINATED) for p in (P.RECEIVED, P.RINGING)},
    **{(p, I.CANCEL): (A.SEND_487, P.TERMINATED) for p in (P.RECEIVED, P.RINGING)},
    **{(p, I.ABORT): (A.ABORT, P.TERMINATED) for p in (P.RECEIVED, P.RINGING, P.ACCEPTED)},
    (P.ACCEPTED, I.ACK): (A.CONFIRM, P.CONFIRMED),
    (P.ACCEPTED, I.ACK_TIMEOUT): (A.NO_ACK, P.TERMINATING),
    (P.ACCEPTED, I.BYE_RECEIVED): (A.END_BY_BYE, P.TERMINATED),
    (P.ACCEPTED, I.HANGUP): (A.BYE_HANGUP, P.TERMINATING),
    **DIALOG_TABLE,
}
"""The server INVITE usage (the figure above)."""


class InviteServerSession(InviteSession):
    """A call we receive (RFC 3261 §13.3); see the module docstring.

    Created by the core for each new INVITE it accepts, and announced with
    :class:`~txsipua.core.events.IncomingCall`.

    Attributes:
        transaction: the INVITE server transaction.
        source: the address the INVITE came from.
        local_tag: our To tag.
    """

    TABLE = SERVER_TABLE
    is_uac = False

    def __init__(self, host: SessionHost, invite: Request, transaction: ServerTransaction,
                 source: Address, identity: str | None = None) -> None:
        super().__init__(host, Phase.RECEIVED)
        self.invite = invite
        self.transaction = transaction
        self.source = source
        self.local_tag = host.ids.tag()
        self.identity = identity
        self.remote_sdp = invite.body or None

    # --------------------------------------------------------- actions
    def _final(self, status: int, reason: str | None, headers: Iterable[tuple[str, str]], now: float) -> None:
        host = self.host
        assert self.invite is not None
        resp = host.make_response(self.invite, status, reason, to_tag=self.local_tag, headers=headers)
        host.dialogs.pop_unanswered(self.transaction)
        host.respond(self.transaction, resp, now)

    def a_send_1xx(self, now: float, arg: Any) -> None:
        """Send the provisional response."""
        status, body = arg
        host = self.host
        assert self.invite is not None
        resp = host.make_response(self.invite, status, to_tag=self.local_tag, body=body)
        if body:
            resp.headers.add("Content-Type", "application/sdp")
        host.respond(self.transaction, resp, now)

    def a_send_2xx(self, now: float, arg: Any) -> None:
        """Send the 2xx, enter the dialog (§12.1.1) and wait for the ACK."""
        body, content_type = arg
        host = self.host
        invite = self.invite
        assert invite is not None
        resp = host.make_response(invite, 200, to_tag=self.local_tag, body=body)
        if body:
            resp.headers.add("Content-Type", content_type)
        self.local_sdp = body or None
        self._enter_dialog(Dialog.from_uas_request(invite, self.local_tag))
        self._expect_ack(invite.cseq.seq, self.transaction)
        host.dialogs.pop_unanswered(self.transaction)  # final: a CANCEL no longer applies (§9.2)
        host.respond(self.transaction, resp, now)

    def a_send_final(self, now: float, arg: Any) -> None:
        """Send the final non-2xx response the application chose."""
        status, reason, headers = arg
        self._final(status, reason, headers, now)
        self.a_finish(now, None)

    def a_decline(self, now: float, arg: Any) -> None:
        """Hung up before answering: 603 Decline."""
        self._final(603, None, (), now)
        self._end_reason = ("hangup", False)
        self.a_finish(now, None)

    def a_send_487(self, now: float, arg: Any) -> None:
        """Cancelled by the caller: 487 Request Terminated on the INVITE (§9.2)."""
        self._final(487, None, (), now)
        self._end_reason = ("cancelled", True)
        self.a_finish(now, None)

    def a_confirm(self, now: float, arg: Any) -> None:
        """The ACK came: the call is up (and its duration limited, if the core says so)."""
        self._limit_duration(now)
        self.host.emit(ev.CallConfirmed(self))

    def a_no_ack(self, now: float, arg: Any) -> None:
        """No ACK for our 2xx: BYE only to a verified next hop (module docstring), then end."""
        if self._next_hop_is_source():
            self._bye(now, "no-ack", True)
        else:
            self._end_reason = ("no-ack", True)
            self._step(Input.BYE_DONE, now)

    def _next_hop_is_source(self) -> bool:
        dialog = self.dialog
        if dialog is None:
            return False
        try:
            host, port = self.host.locate(dialog.next_hop())
        except (ResolutionError, ParseError):
            return False
        src_host, src_port = self.source
        return port == src_port and unbracket(host).lower() == unbracket(src_host).lower()


__all__ = ["SERVER_TABLE", "InviteServerSession"]
