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

No BYE before the ACK either when the application hangs up (RFC 3261 §15:
the callee "MUST NOT send a BYE on a confirmed dialog until it has received
an ACK for its 2xx response or until the server transaction times out"): a
hang-up in ACCEPTED is remembered as the phase HANGUP_PENDING; the BYE goes
when the ACK arrives, and if Timer L fires first the rule above applies (a
BYE only to a verified next hop, else the call ends without one).  Either
way the call ends with reason ``"hangup"``.

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
                | ACK      | BYE received  |
                |          v               | hangup(): nothing sent yet (§15)
                |      TERMINATED          v
                |          ^      +----------------+ ACK: BYE -> TERMINATING
                |          +------| HANGUP_PENDING | ACK timeout (Timer L): BYE if
                |     BYE received+----------------+ the next hop is the INVITE's
                v                                    source -> TERMINATING
          +-----------+
          | CONFIRMED |  (dialog phase: BYE, re-INVITE, ...)
          +-----------+

Reliable provisionals (RFC 3262, :mod:`txsipua.core.reliable`): when the
caller asks for them, ``ring()`` sends the 1xx reliably and enters the early
dialog, so a BYE in it ends the call in RINGING with 487 on the INVITE.  64*T1
without the PRACK rejects the INVITE with 500 (RINGING, or ACCEPTED or
HANGUP_PENDING while the 2xx waits for the PRACK of a 1xx that carried SDP; a
CANCEL in ACCEPTED then gets 487, and a hang-up waits for that PRACK like for
the ACK).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from txsipua.core import events as ev
from txsipua.core.dialog import Dialog, DialogState
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
    **{(p, I.ABORT): (A.ABORT, P.TERMINATED) for p in (P.RECEIVED, P.RINGING, P.ACCEPTED, P.HANGUP_PENDING)},
    (P.ACCEPTED, I.ACK): (A.CONFIRM, P.CONFIRMED),
    (P.ACCEPTED, I.ACK_TIMEOUT): (A.NO_ACK, P.TERMINATING),
    (P.ACCEPTED, I.BYE_RECEIVED): (A.END_BY_BYE, P.TERMINATED),
    (P.ACCEPTED, I.HANGUP): (A.NONE, P.HANGUP_PENDING),  # no BYE before the ACK (§15)
    (P.HANGUP_PENDING, I.ACK): (A.BYE_HANGUP, P.TERMINATING),
    (P.HANGUP_PENDING, I.ACK_TIMEOUT): (A.HANGUP_NO_ACK, P.TERMINATING),
    (P.HANGUP_PENDING, I.BYE_RECEIVED): (A.END_BY_BYE, P.TERMINATED),
    (P.RINGING, I.BYE_RECEIVED): (A.SEND_487, P.TERMINATED),  # BYE in the early dialog of a reliable 1xx
    (P.RINGING, I.PROVISIONAL_UNACKED): (A.REJECT_UNACKED, P.TERMINATED),  # RFC 3262 §3
    (P.ACCEPTED, I.PROVISIONAL_UNACKED): (A.REJECT_UNACKED, P.TERMINATED),  # the 2xx still waits for it
    (P.ACCEPTED, I.CANCEL): (A.SEND_487, P.TERMINATED),  # only while the 2xx waits for a PRACK
    (P.HANGUP_PENDING, I.PROVISIONAL_UNACKED): (A.REJECT_UNACKED, P.TERMINATED),  # hung up, 2xx still held
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
        self._held_2xx: tuple[bytes, str] | None = None
        self.start_reliable()  # RFC 3262: reliable provisionals when the caller asks

    # --------------------------------------------------------- actions
    def _final(self, status: int, reason: str | None, headers: Iterable[tuple[str, str]], now: float) -> None:
        host = self.host
        assert self.invite is not None
        resp = host.make_response(self.invite, status, reason, to_tag=self.local_tag, headers=headers)
        host.dialogs.pop_unanswered(self.transaction)
        self._held_2xx = None
        self.close_reliable(now)
        host.respond(self.transaction, resp, now)

    def a_send_1xx(self, now: float, arg: Any) -> None:
        """Send the provisional response."""
        status, body = arg
        host = self.host
        assert self.invite is not None
        resp = host.make_response(self.invite, status, to_tag=self.local_tag, body=body)
        if body:
            resp.headers.add("Content-Type", "application/sdp")
        if self.reliable is not None and status > 100:  # RFC 3262 §3
            self.enter_early(self.local_tag)
            self.reliable.send(resp, now)
            return
        host.respond(self.transaction, resp, now)

    def a_send_2xx(self, now: float, arg: Any) -> None:
        """Send the 2xx, enter the dialog (§12.1.1) and wait for the ACK."""
        if self.reliable is not None and self.reliable.holds_offer:
            self._held_2xx = arg  # RFC 3262 §3: not before the PRACK of a 1xx with SDP
            return
        body, content_type = arg
        host = self.host
        invite = self.invite
        assert invite is not None
        resp = host.make_response(invite, 200, to_tag=self.local_tag, body=body)
        if body:
            resp.headers.add("Content-Type", content_type)
        if body or self.local_sdp is None:
            self.local_sdp = body or None
        self.close_reliable(now)
        if self.dialog is not None:  # the early dialog of our reliable 1xx: now confirmed
            self.dialog.state = DialogState.CONFIRMED
            self._enter_dialog(self.dialog)
        else:
            self._enter_dialog(Dialog.from_uas_request(invite, self.local_tag))
        for name, value in self.timer_answer(invite, now):  # RFC 4028 §9
            resp.headers.add(name, value)
        self._expect_ack(invite.cseq.seq, self.transaction)
        host.dialogs.pop_unanswered(self.transaction)  # final: a CANCEL no longer applies (§9.2)
        host.respond(self.transaction, resp, now)

    def release_2xx(self, now: float) -> None:
        """The PRACK came: the 2xx that waited for it goes (RFC 3262 §3)."""
        held = self._held_2xx
        if (held is not None and self.phase in (Phase.ACCEPTED, Phase.HANGUP_PENDING)
                and not (self.reliable and self.reliable.holds_offer)):
            self._held_2xx = None
            self.a_send_2xx(now, held)

    def a_reject_unacked(self, now: float, arg: Any) -> None:
        """64*T1 without the PRACK of a reliable 1xx: 500, the call ends (RFC 3262 §3)."""
        self._final(500, "Reliable Provisional Response Not Acknowledged", (), now)
        self._end_reason = ("error", True)
        self.a_finish(now, None)

    def a_finish(self, now: float, arg: Any) -> None:
        """Also answer the INVITE 487 if its 2xx was still held for a PRACK (a BYE came first)."""
        if self._held_2xx is not None:
            self._final(487, None, (), now)
        super().a_finish(now, arg)

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
        self._end_unacked(now, ("no-ack", True))

    def a_hangup_no_ack(self, now: float, arg: Any) -> None:
        """Hung up while waiting for an ACK that never came: as :meth:`a_no_ack`, reason ``hangup``."""
        self._end_unacked(now, ("hangup", False))

    def _end_unacked(self, now: float, reason: tuple[str, bool]) -> None:
        if self._next_hop_is_source():
            self._bye(now, *reason)
        else:
            self._end_reason = reason
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
