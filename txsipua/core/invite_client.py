"""The client INVITE usage: a call we place (RFC 3261 §13.2, §9.1, §15).

Theory of operation
-------------------
:class:`InviteClientSession` owns the INVITE's
:class:`~txsipua.core.uac.ClientOperation` (digest retries included) and
turns its outcomes into inputs of :data:`CLIENT_TABLE`.  A final 2xx is
classified before it is stepped: the first one makes the dialog
(``ANSWER``; a 2xx without a To tag, from an RFC 2543 peer, makes a dialog
whose remote tag is null, §12.1.2, and the ACK and BYE repeat its To), a
retransmission of it is ``ANSWER_AGAIN`` (our ACK is sent again,
§13.2.2.4), a 2xx of another dialog (a fork) is ``ANSWER_FORK`` (it is
ACKed, then BYEd), and a 2xx without a usable Contact is ``ANSWER_UNUSABLE``
(it is still ACKed so the peer stops retransmitting, and the call fails).

Hanging up before the answer cancels (§9.1): the CANCEL waits for the first
provisional response, and once we have hung up no challenge is answered any
more (a 401/407 racing the CANCEL is ACKed by the transaction and ends the
call: no new INVITE goes out).  A 2xx that crosses the CANCEL is ACKed and
BYEd.  64*T1 after the CANCEL without a final response the INVITE is given up
(its transaction destroyed); a 2xx arriving later still is ACKed and BYEd by
the core (:func:`ack_and_bye`).

The flow, with the dialog phase of :mod:`txsipua.core.invite`::

                  INVITE sent (sent again with credentials on 401/407)
                        |
                        v         1xx: report
                  +-----------+ ---------------> +------------+ 1xx: report
      +-----------|  CALLING  |                  | PROCEEDING |----+
      | hangup:   +-----------+                  +------------+<---+
      | no more         |                          |        |
      | retries         | 2xx: dialog, ACK,        | 2xx    | hangup: CANCEL,
      v                 | CallAnswered             |        | start 64*T1
  +---------+           v                          |        v
  | CANCEL  |     +-----------+ <------------------+  +------------+ 1xx: report
  | PENDING |     | CONFIRMED |                       | CANCELLING |----+
  +---------+     +-----------+---+ 2xx again: ACK    +------------+<---+
   |  |  |          |       ^     | again; 2xx of a    ^  |     |
   |  |  |          |       +-----+ fork: ACK, BYE it  |  |     | 487, or 401/407
   |  |  +----------|----------------------------------+  |     | (no retry):
   |  |  1xx: report, CANCEL, start 64*T1                 |     | CallEnded
   |  |             | hangup: BYE                         |     | "cancelled";
   |  | 2xx: ACK,   v                                     |     | 64*T1: give up
   |  | BYE  +-------------+ <--- 2xx: ACK, BYE ----------+     v
   |  +----->| TERMINATING |      (it crossed the CANCEL)     TERMINATED
   |         +-------------+
   |           | BYE answered or failed: CallEnded
   |           v
   +------> TERMINATED
   487, or 401/407 (no retry): CallEnded "cancelled"

  Before CONFIRMED, in every phase: another 300-699, a timeout, a transport
  or digest error end in TERMINATED with CallAttemptFailed; a 2xx without a
  usable Contact is ACKed, then the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from txsipua.core import builders
from txsipua.core import events as ev
from txsipua.core.dialog import Dialog
from txsipua.core.invite import (
    DIALOG_TABLE,
    Input,
    InviteSession,
    Phase,
    Table,
    dialog_hop_error,
    hop_host_of,
)
from txsipua.core.invite import Action as A
from txsipua.core.transport import Address, sips_needs_tls
from txsipua.core.uac import ClientOperation
from txsipua.errors import CallFailed, ParseError, RemoteProtocolError, ResolutionError
from txsipua.sip.message import Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.context import SessionHost

P = Phase
I = Input  # noqa: E741

_EARLY = (P.CALLING, P.PROCEEDING, P.CANCEL_PENDING, P.CANCELLING)

CLIENT_TABLE: Table = {
    (P.CALLING, I.PROVISIONAL): (A.EMIT_PROVISIONAL, P.PROCEEDING),
    (P.CALLING, I.ANSWER): (A.ANSWERED, P.CONFIRMED),
    (P.CALLING, I.HANGUP): (A.STOP_RETRIES, P.CANCEL_PENDING),
    (P.PROCEEDING, I.PROVISIONAL): (A.EMIT_PROVISIONAL, P.PROCEEDING),
    (P.PROCEEDING, I.ANSWER): (A.ANSWERED, P.CONFIRMED),
    (P.PROCEEDING, I.HANGUP): (A.SEND_CANCEL, P.CANCELLING),
    (P.CANCEL_PENDING, I.PROVISIONAL): (A.EMIT_AND_CANCEL, P.CANCELLING),
    (P.CANCEL_PENDING, I.ANSWER): (A.ANSWERED_AFTER_CANCEL, P.TERMINATING),
    (P.CANCELLING, I.PROVISIONAL): (A.EMIT_PROVISIONAL, P.CANCELLING),
    (P.CANCELLING, I.ANSWER): (A.ANSWERED_AFTER_CANCEL, P.TERMINATING),
    (P.CANCELLING, I.GIVE_UP): (A.ABANDON, P.TERMINATED),
    **{(p, I.ANSWER_UNUSABLE): (A.ACK_UNUSABLE, P.TERMINATED) for p in _EARLY},
    **{(p, I.FAILED): (A.FAIL_ERROR, P.TERMINATED) for p in _EARLY},
    **{(p, I.REJECTED): (A.FAIL_RESPONSE, P.TERMINATED) for p in _EARLY},
    **{(p, I.ABORT): (A.ABORT_CALL, P.TERMINATED) for p in _EARLY},
    (P.CALLING, I.REQUEST_TERMINATED): (A.FAIL_RESPONSE, P.TERMINATED),
    (P.PROCEEDING, I.REQUEST_TERMINATED): (A.FAIL_RESPONSE, P.TERMINATED),
    (P.CANCEL_PENDING, I.REQUEST_TERMINATED): (A.END_CANCELLED, P.TERMINATED),
    (P.CANCELLING, I.REQUEST_TERMINATED): (A.END_CANCELLED, P.TERMINATED),
    **{(p, I.ANSWER_AGAIN): (A.RESEND_ACK, p) for p in (P.CONFIRMED, P.TERMINATING, P.TERMINATED)},
    **{(p, I.ANSWER_FORK): (A.ACK_AND_BYE_FORK, p) for p in (P.CONFIRMED, P.TERMINATING, P.TERMINATED)},
    **DIALOG_TABLE,
}
"""The client INVITE usage (the figure above)."""


class _Quiet:
    """Owner of the BYE that ends a forked or late dialog: nobody waits for it."""

    def operation_provisional(self, operation: ClientOperation, response: Response, now: float) -> None:
        """Ignored."""

    def operation_final(self, operation: ClientOperation, response: Response, now: float) -> None:
        """Ignored."""

    def operation_failed(self, operation: ClientOperation, error: Exception, now: float) -> None:
        """Ignored."""


_QUIET = _Quiet()


def ack_and_bye(host: SessionHost, operation: ClientOperation, response: Response, now: float) -> None:
    """ACK a 2xx we do not want, then BYE its dialog (RFC 3261 §13.2.2.4, §15).

    For the 2xx of a fork after the first, or of an INVITE given up after its
    CANCEL.  Nothing is sent when no dialog can be made from the 2xx.  The
    ACK repeats only the credentials its next hop is trusted for.

    Args:
        host: the core seam.
        operation: the INVITE's operation (its request as last sent, and where
            it went: used when the dialog's next hop cannot be located).
        response: the 2xx.
        now: seconds, absolute.
    """
    invite = operation.request
    try:
        dialog = Dialog.from_uac_response(invite, response)
    except (RemoteProtocolError, ParseError):
        return
    if dialog_hop_error(dialog, "ACK", host.transport) is not None:
        return  # its next hop needs a transport we do not have: neither ACK nor BYE can go
    try:
        dest = host.locate(dialog.next_hop())
        hop_host = hop_host_of(dialog.next_hop())
    except (ResolutionError, ParseError):
        dest, hop_host = operation.destination, operation.hop_host
    ack = builders.build_2xx_ack(dialog, invite, via=host.via(host.ids.branch()), user_agent=host.user_agent,
                                 credentials=host.ack_credentials(operation.owner, invite, hop_host, dest))
    host.send_stateless(ack, dest, now)
    bye = dialog.create_request("BYE", via=host.via(""))
    ClientOperation(host, bye, dest, owner=_QUIET, authenticate=False).start(now)


class InviteClientSession(InviteSession):
    """A call we place (RFC 3261 §13.2); see the module docstring.

    Created by :meth:`~txsipua.core.useragent.UserAgentCore.invite`.
    """

    TABLE = CLIENT_TABLE
    is_uac = True

    def __init__(self, host: SessionHost, invite: Request, destination: Address, hop_host: str = "") -> None:
        super().__init__(host, Phase.CALLING)
        self.invite = invite
        self.local_sdp = invite.body or None
        for name, value in self.invite_timer_fields():  # RFC 4028 §7.1
            if name not in invite.headers:
                invite.headers.add(name, value)
        self._op = ClientOperation(host, invite, destination, owner=self, hop_host=hop_host)
        self._give_up_name = ("give-up", id(self))

    @property
    def invite_operation(self) -> ClientOperation:
        """The INVITE's :class:`~txsipua.core.uac.ClientOperation` (its request is the
        INVITE as last sent, credentials included)."""
        return self._op

    def start(self, now: float) -> None:
        """Send the INVITE."""
        self._op.start(now)

    # ------------------------------------------- outcomes of our requests
    def operation_provisional(self, operation: ClientOperation, response: Response, now: float) -> None:
        """A 1xx to our INVITE."""
        if operation is self._op and self.reliable_provisional(response, now):  # PRACK (RFC 3262 §4)
            self._step(Input.PROVISIONAL, now, response)

    def operation_final(self, operation: ClientOperation, response: Response, now: float) -> None:
        """A final response: classify it for the table (see the module docstring)."""
        if operation is not self._op:
            super().operation_final(operation, response, now)
            return
        status = response.status
        if status == 422 and self.retry_with_min_se(operation, response, now):
            return  # sent again with the Min-SE it names (RFC 4028 §7.1)
        if status >= 300:
            # after our hang-up a challenge is no longer answered: like a 487,
            # the INVITE ended as we asked (the transaction ACKed it)
            ended = status == 487 or (status in (401, 407) and not operation.retrying)
            self._step(Input.REQUEST_TERMINATED if ended else Input.REJECTED, now, response)
            return
        dialog = self.dialog
        if dialog is not None:
            same = (response.to_tag or "") == dialog.remote_tag
            self._step(Input.ANSWER_AGAIN if same else Input.ANSWER_FORK, now, response)
            return
        if self.ack is not None:  # the unusable 2xx again
            self._step(Input.ANSWER_AGAIN, now, response)
            return
        try:
            dialog = Dialog.from_uac_response(operation.request, response)
        except (RemoteProtocolError, ParseError):
            self._step(Input.ANSWER_UNUSABLE, now, response)
            return
        if dialog_hop_error(dialog, "ACK", self.host.transport) is not None:
            self._step(Input.ANSWER_UNUSABLE, now, response)  # its ACK cannot be sent: the call fails
            return
        self.adopt_early(dialog)  # CSeq goes on from its early dialog's PRACKs and UPDATEs
        self._step(Input.ANSWER, now, (response, dialog))

    def operation_failed(self, operation: ClientOperation, error: Exception, now: float) -> None:
        """Our INVITE, or one of our in-dialog requests, got no usable final response."""
        if operation is self._op:
            self._step(Input.FAILED, now, error)
        else:
            super().operation_failed(operation, error, now)

    # --------------------------------------------------------- actions
    def a_emit_provisional(self, now: float, response: Any) -> None:
        """Report the 1xx."""
        self.host.emit(ev.ProvisionalResponse(self, response))

    def a_emit_and_cancel(self, now: float, response: Any) -> None:
        """Report the 1xx, then send the CANCEL that waited for it (§9.1)."""
        self.host.emit(ev.ProvisionalResponse(self, response))
        self.a_send_cancel(now, None)

    def a_stop_retries(self, now: float, arg: Any) -> None:
        """Hung up before any 1xx: answer no further challenge; the CANCEL waits."""
        self._op.stop_retrying()

    def a_send_cancel(self, now: float, arg: Any) -> None:
        """Send the CANCEL (§9.1) and give the INVITE 64*T1 to end."""
        op = self._op
        op.stop_retrying()
        host = self.host
        cancel = builders.build_cancel(op.request, host.user_agent)
        ClientOperation(host, cancel, op.destination, owner=self, authenticate=False, keep_via=True).start(now)
        host.schedule(self._give_up_name, now + host.timers.t64, self._give_up)

    def _give_up(self, now: float) -> None:
        self._step(Input.GIVE_UP, now)

    def a_answered(self, now: float, arg: Any) -> None:
        """The call is answered: enter the dialog, ACK (§13.2.2.4), report."""
        response, dialog = arg
        self._take_answer(response, dialog, now)
        self._limit_duration(now)
        self.timer_from_response(response, now)  # RFC 4028 §7.2
        self.host.emit(ev.CallAnswered(self, response))

    def a_answered_after_cancel(self, now: float, arg: Any) -> None:
        """The 2xx crossed our CANCEL: enter the dialog, ACK it, then BYE (§15)."""
        response, dialog = arg
        self._take_answer(response, dialog, now)
        self._bye(now, "cancelled", False)

    def _take_answer(self, response: Response, dialog: Dialog, now: float) -> None:
        if response.body:
            self.remote_sdp = response.body
        self._enter_dialog(dialog)
        self._send_2xx_ack(self._op, response, now)

    def a_resend_ack(self, now: float, response: Any) -> None:
        """A retransmitted 2xx: the same ACK again (§13.2.2.4)."""
        self.resend_ack(response, now)

    def a_ack_and_bye_fork(self, now: float, response: Any) -> None:
        """A 2xx of another fork: ACK it, then BYE it (§13.2.2.4)."""
        op = self._op
        ack_and_bye(self.host, op, response, now)

    def a_ack_unusable(self, now: float, response: Any) -> None:
        """A 2xx no dialog can be made from: ACK it anyway (best effort), then the call fails.

        When the ACK's next hop needs a transport this user agent does not
        have (a ``sips`` Contact over UDP, ``transport=tcp`` over UDP...),
        nothing is sent and the call fails with that TransportError.
        """
        op = self._op
        invite = op.request
        target = invite.uri_text
        try:
            contacts = response.contact
            if contacts and not contacts[0].wildcard:
                target = str(contacts[0].uri)
        except ParseError:
            pass
        host = self.host
        try:
            ack = builders.build_ack(
                invite, response, via=host.via(host.ids.branch()), request_uri=target,
                credentials=host.ack_credentials(self, invite, op.hop_host, op.destination))
        except ParseError:
            ack = None
        error: Exception = RemoteProtocolError("2xx without a usable Contact")
        try:  # a 2xx that makes a dialog is here when that dialog's next hop cannot be reached
            refused = dialog_hop_error(Dialog.from_uac_response(invite, response), "ACK", host.transport)
        except (RemoteProtocolError, ParseError):
            refused = None
        if ack is not None:
            refused = refused or sips_needs_tls(ack, host.transport)
            if refused is None:
                self.ack, self.ack_destination = ack, op.destination
                host.send_stateless(ack, op.destination, now)
            else:
                self.ack, error = ack, refused  # remembered, never sent: the 2xx again is not ACKed
        host.emit(ev.CallAttemptFailed(self, error))
        self.a_finish(now, None)

    def a_fail_response(self, now: float, response: Any) -> None:
        """The INVITE was declined: the call attempt failed with its final response."""
        self.host.emit(ev.CallAttemptFailed(self, CallFailed(response, "call")))
        self.a_finish(now, None)

    def a_fail_error(self, now: float, error: Any) -> None:
        """The INVITE timed out, could not be sent, or could not be authenticated."""
        self.host.emit(ev.CallAttemptFailed(self, error))
        self.a_finish(now, None)

    def a_finish(self, now: float, arg: Any) -> None:
        """Also forget the §9.1 give-up deadline, if the CANCEL armed one."""
        self.host.cancel(self._give_up_name)
        super().a_finish(now, arg)

    def a_end_cancelled(self, now: float, arg: Any) -> None:
        """487 after our CANCEL: the call is over, as we asked."""
        self._end_reason = ("cancelled", False)
        self.a_finish(now, arg)

    def a_abandon(self, now: float, arg: Any) -> None:
        """64*T1 after the CANCEL without a final response: give the INVITE up (§9.1)."""
        self.host.abandon(self._op, now, remember=True)
        self._end_reason = ("cancelled", False)
        self.a_finish(now, arg)

    def a_abort_call(self, now: float, error: Any) -> None:
        """Aborted before the answer: ended as cancelled."""
        if self._end_reason is None:
            self._end_reason = ("cancelled", False)
        self.a_abort(now, error)


__all__ = ["CLIENT_TABLE", "InviteClientSession", "ack_and_bye"]
