"""The INVITE session: one call on either side, run through its table (RFC 3261 §13-§15).

Theory of operation
-------------------
A call is an :class:`InviteSession`: :class:`~txsipua.core.invite_client.InviteClientSession`
when we sent the INVITE, :class:`~txsipua.core.invite_server.InviteServerSession`
when we received it.  Each side is one table ``{(Phase, Input): (Action,
next Phase)}`` drawn under its RFC flow in its module, in the style of
:mod:`txsipua.core.transaction`; the phases, inputs, actions and the dialog
phase both sides share (:data:`~txsipua.core.invite_phases.DIALOG_TABLE`)
are declared in :mod:`txsipua.core.invite_phases` and re-exported here.
:meth:`InviteSession._step` looks the input up, moves to the next phase
*first* (so an action may feed a further input, e.g. a BYE that cannot be
sent ends the call at once), then runs the action.  An input absent from the
table is ignored and counted in the core's ``stats["ignored"]`` (a second
hang-up, a late timer, a crossing response); an *order* from the application
absent from the table (``ring()`` on a call already answered) raises
:class:`~txsipua.errors.LocalProtocolError`.

This module implements what both sides do in the dialog phase (§12.2, §14,
§15): in-dialog requests received (BYE, re-INVITE, PRACK, UPDATE...), the
outcomes of the requests we send in the dialog (a 408, or no response at
all, ends the call with a BYE; a 481 ends it without, §12.2.1.2, §14.1), the
2xx ACK (§13.2.2.4) and the BYE that ends the call (§15.1.1).

The public :attr:`InviteSession.state` is the coarse :class:`SessionState`
the user API has always seen; :attr:`InviteSession.phase` is the table's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from txsipua.core import builders
from txsipua.core import events as ev
from txsipua.core.dialog import Dialog, DialogState
from txsipua.core.dialogs import DialogKey
from txsipua.core.invite_extensions import InviteExtensions
from txsipua.core.invite_phases import (
    DIALOG_TABLE,
    Action,
    Input,
    Phase,
    SessionState,
    Table,
)
from txsipua.core.invite_phases import PUBLIC_STATE as _PUBLIC
from txsipua.core.session_timer import refusal
from txsipua.core.transaction import ServerTransaction
from txsipua.core.transport import Address, hop_transport_error
from txsipua.core.uac import HOST_DIGEST, ClientOperation
from txsipua.errors import (
    LocalProtocolError,
    ParseError,
    RemoteProtocolError,
    ResolutionError,
    SIPStatusError,
    TransactionTimeout,
    TransportError,
)
from txsipua.sip.message import Request, Response
from txsipua.sip.uri import SipURI

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.context import SessionHost


def dialog_hop_error(dialog: Dialog, method: str, transport: str) -> TransportError | None:
    """The TransportError for sending ``method`` in ``dialog`` over ``transport``, or ``None``.

    The rule of :func:`~txsipua.core.transport.sips_needs_tls` applied to the
    dialog's remote target and route set (RFC 3261 §12.2.1.1, §26.2.2), before
    a request is built: used for the ACK of a 2xx, which has no transaction.
    """
    return hop_transport_error(method, str(dialog.remote_target), [str(r) for r in dialog.route_set], transport)


def hop_host_of(uri: SipURI) -> str:
    """The ``host`` or ``host:port`` a request to ``uri`` really goes to: ``maddr`` when present, else the host.

    The digest-leak guard must judge this host, not the URI's nominal one: a
    peer could otherwise name our registrar as the host of its Contact and
    its own address as ``maddr`` (RFC 3261 §19.1.1, §18.1.1) and collect our
    provider's credentials.  The port, when the URI writes one, tells the
    guard how the host was located (a name with a port is not located like
    the same name without, RFC 3263 §4.2).
    """
    host = uri.params.get("maddr") or uri.host
    if uri.port is None:
        return host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{uri.port}"


_TERMINATED = Phase.TERMINATED


class InviteSession(InviteExtensions):
    """A call, on either side (RFC 3261 §13, §14, §15); PRACK, UPDATE and
    session timers come from :class:`~txsipua.core.invite_extensions.InviteExtensions`.

    Attributes:
        is_uac: True when we sent the INVITE.
        phase: the :class:`Phase` of the side's table.
        dialog: the :class:`~txsipua.core.dialog.Dialog` once established.
        invite: the INVITE as last sent (UAC) or as received (UAS).
        local_sdp: our last SDP body (bytes) or ``None``.
        remote_sdp: the peer's last SDP body or ``None``.
        identity: the authenticated username of the caller (UAS), if any.
        ack: the last ACK we sent for a 2xx, or ``None``.
        ack_destination: where it went.
        ack_body: ``(2xx) -> (body, content type)``: the answer our 2xx ACK carries
            when we sent no offer (RFC 3261 §13.2.1), or ``None``.
        user_data: free for the application.
    """

    TABLE: ClassVar[Table] = DIALOG_TABLE
    is_uac: ClassVar[bool] = False
    # TABLE with each action resolved to its method once per class (the hot path
    # must not read Enum values)
    _compiled: ClassVar[dict[tuple[Phase, Input], tuple[Callable[..., None], Phase]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._compiled = {key: (getattr(cls, action.value), nxt) for key, (action, nxt) in cls.TABLE.items()}

    def __init__(self, host: SessionHost, phase: Phase) -> None:
        self.host = host
        self.phase = phase
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.local_sdp: bytes | None = None
        self.remote_sdp: bytes | None = None
        self.identity: str | None = None
        self.user_data: Any = None
        self.digest: Any = HOST_DIGEST
        """The digest client answering challenges to this call's requests (another
        account's); the core's by default."""
        self.ack: Request | None = None
        self.ack_destination: Address | None = None
        self.ack_body: Callable[[Response], tuple[bytes, str]] | None = None
        self._end_reason: tuple[str, bool] | None = None
        self._bye_error: Exception | None = None
        self._reinvite_op: ClientOperation | None = None
        self._pending_2xx: dict[int, ServerTransaction] = {}
        self._duration_name: tuple[str, int] | None = None
        self._live = True
        self._init_extensions()
        host.live_calls += 1  # counted out when the table reaches TERMINATED

    @property
    def state(self) -> SessionState:
        """The coarse :class:`SessionState`."""
        return _PUBLIC[self.phase]

    @property
    def invite_operation(self) -> ClientOperation | None:
        """The INVITE's :class:`~txsipua.core.uac.ClientOperation` when we sent it (its request
        is the INVITE as last sent, credentials included), else ``None`` (the base class and
        :class:`~txsipua.core.invite_server.InviteServerSession`)."""
        return None

    @property
    def call_id(self) -> str:
        """The Call-ID of the call."""
        if self.dialog is not None:
            return self.dialog.call_id
        assert self.invite is not None
        return self.invite.call_id

    @property
    def dialog_key(self) -> DialogKey | None:
        """``(Call-ID, local tag, remote tag)`` once there is a dialog, else ``None``."""
        d = self.dialog
        return None if d is None else (d.call_id, d.local_tag, d.remote_tag)

    # ---------------------------------------------------------- the machine
    def _step(self, inp: Input, now: float, arg: Any = None) -> bool:
        entry = self._compiled.get((self.phase, inp))
        if entry is None:
            self.host.stats["ignored"] += 1
            return False
        fn, self.phase = entry
        fn(self, now, arg)
        if self.phase is _TERMINATED and self._live:
            self._live = False
            self.host.live_calls -= 1
        return True

    def _order(self, inp: Input, now: float, arg: Any = None) -> None:
        if (self.phase, inp) not in self.TABLE:
            raise LocalProtocolError(f"cannot {inp.value} in state {self.state.value}")
        self._step(inp, now, arg)

    # ------------------------------------------------------ the application
    def hangup(self, now: float) -> None:
        """End the call the SIP way (RFC 3261 §15): CANCEL while ringing, BYE once connected.

        As UAC before any provisional response, the CANCEL waits for the first
        1xx (§9.1).  As UAS before answering, the call is rejected with 603;
        after our 2xx but before its ACK, the BYE waits for the ACK (§15; see
        :mod:`txsipua.core.invite_server`).  Idempotent once the call is ending.
        """
        self._step(Input.HANGUP, now)

    def ring(self, now: float, *, body: bytes = b"", status: int = 180) -> None:
        """Send a provisional response (180 Ringing by default) with our To tag.

        Raises:
            LocalProtocolError: not an incoming call awaiting an answer.
        """
        self._order(Input.RING, now, (status, body))

    def accept(self, now: float, *, body: bytes = b"", content_type: str = "application/sdp") -> None:
        """Answer the incoming call with 200 OK (and our SDP answer in ``body``).

        The 2xx is retransmitted until the ACK arrives (RFC 3261 §13.3.1.4).

        Raises:
            LocalProtocolError: not an incoming call awaiting an answer.
        """
        self._order(Input.ACCEPT, now, (body, content_type))

    def reject(self, now: float, status: int = 486, reason: str | None = None,
               headers: Iterable[tuple[str, str]] = ()) -> None:
        """Decline the incoming call with a final non-2xx response (486 Busy Here by default).

        Raises:
            LocalProtocolError: not an incoming call awaiting an answer.
        """
        self._order(Input.REJECT, now, (status, reason, headers))

    def abort(self, error: Exception, now: float) -> None:
        """End the call at once without sending anything (the core destroyed its transactions).

        A :class:`~txsipua.core.events.CallEnded` with ``bye_error=error``
        follows unless the call had ended already.
        """
        self._step(Input.ABORT, now, error)

    def request(
        self,
        method: str,
        now: float,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> ClientOperation:
        """Send an in-dialog request (BYE, INFO, MESSAGE, REFER...), retried on 401/407.

        Completion is reported with :class:`~txsipua.core.events.RequestCompleted`
        or :class:`~txsipua.core.events.RequestFailed` (BYE ends the session).

        Raises:
            LocalProtocolError: there is no dialog yet, or its next hop cannot be located.
        """
        dialog = self.dialog
        if dialog is None:
            raise LocalProtocolError(f"cannot send {method} outside a dialog")
        return self.send_in(dialog, method, now, headers=headers, body=body, content_type=content_type)

    def reinvite(self, now: float, body: bytes, content_type: str = "application/sdp") -> ClientOperation:
        """Send a re-INVITE with a new offer (hold/resume, RFC 3261 §14.1, RFC 3264 §8.4).

        Raises:
            LocalProtocolError: not confirmed, or a re-INVITE is already pending (§14.1).
            ResolutionError: the next hop cannot be located.
        """
        dialog = self.dialog
        if self.phase is not Phase.CONFIRMED or dialog is None:
            raise LocalProtocolError("re-INVITE needs a confirmed call")
        if self._reinvite_op is not None:
            raise LocalProtocolError("a re-INVITE is already in progress")
        host = self.host
        extra = [("Content-Type", content_type)] + ([("User-Agent", host.user_agent)] if host.user_agent else [])
        extra += self.timer_request_fields()
        req = dialog.create_request("INVITE", via=host.via(""), contact=host.contact_value(True) if dialog.secure else host.contact_value(),
                                     body=body, headers=extra)
        hop = dialog.next_hop()
        dest = host.locate(hop)
        op = ClientOperation(host, req, dest, owner=self, next_cseq=dialog.next_seq, hop_host=hop_host_of(hop),
                             digest=self.digest)
        self._reinvite_op = op  # local_sdp becomes ``body`` only once a 2xx accepts it (RFC 3264 §8)
        op.start(now)
        return op

    def answer_reinvite(self, transaction: ServerTransaction, request: Request, now: float,
                        *, status: int = 200, body: bytes = b"") -> None:
        """Answer a received re-INVITE (RFC 3261 §14.2); a 2xx waits for its ACK like the first."""
        host = self.host
        resp = host.make_response(request, status, body=body)
        if body:
            resp.headers.add("Content-Type", "application/sdp")
        if 200 <= status < 300:
            if request.body:
                self.remote_sdp = request.body
            if body:
                self.local_sdp = body
            for name, value in self.timer_answer(request, now):
                resp.headers.add(name, value)
            self._expect_ack(request.cseq.seq, transaction)
        host.respond(transaction, resp, now)

    # ----------------------------------------------------- from the core
    def on_in_dialog_request(self, request: Request, transaction: ServerTransaction, now: float) -> None:
        """A request within our dialog (RFC 3261 §12.2.2), from the core."""
        host = self.host
        dialog = self.dialog_for(request)
        assert dialog is not None
        try:
            dialog.check_request(request)
        except RemoteProtocolError as e:
            host.respond(transaction, host.make_response(request, e.status, e.detail), now)
            return
        method = request.method
        if method == "BYE":
            host.respond(transaction, host.make_response(request, 200), now)
            # RFC 3261 §15.1.2: a BYE before the ACK also ends the call; stop
            # the 2xx retransmissions of every INVITE still waiting for its ACK
            for pending in self._pending_2xx.values():
                host.ack_received(pending, now)
                host.dialogs.pop_awaiting_ack(pending)
            self._pending_2xx.clear()
            self._step(Input.BYE_RECEIVED, now)
        elif method == "INVITE":
            if self._reinvite_op is not None or self._pending_2xx or (self._update_op is not None
                                                                     and self._update_offer):
                host.respond(transaction, host.make_response(request, 491), now)
                return
            refused = refusal(request, host.min_se)
            if refused is not None:  # RFC 4028 §9
                host.respond(transaction, host.make_response(request, refused[0], refused[1], headers=refused[2]), now)
                return
            dialog.refresh_target(request)
            host.emit(ev.IncomingRequest(request, transaction, self))
        elif method == "PRACK":
            self.on_prack(request, transaction, now)
        elif method == "UPDATE":
            self.on_update(request, transaction, dialog, now)
        else:
            host.emit(ev.IncomingRequest(request, transaction, self))

    def on_cancel(self, now: float) -> None:
        """A CANCEL matched our unanswered INVITE (§9.2), from the core (which answered it 200)."""
        self._step(Input.CANCEL, now)

    def on_ack(self, request: Request, now: float) -> None:
        """The ACK of one of our 2xx responses (RFC 3261 §13.3.1.4), from the core."""
        transaction = self._pending_2xx.pop(request.cseq.seq, None)
        if transaction is None:
            return  # a retransmitted ACK, absorbed
        self.host.ack_received(transaction, now)
        self.host.dialogs.pop_awaiting_ack(transaction)
        if request.body and self.local_sdp is not None and self.remote_sdp is None:
            self.remote_sdp = request.body
        self.host.emit(ev.AckReceived(self, request))
        self._step(Input.ACK, now)

    def on_ack_timeout(self, transaction: ServerTransaction, now: float) -> None:
        """Timer L: the ACK of our 2xx on ``transaction`` never came (§13.3.1.4), from the core."""
        for seq, t in list(self._pending_2xx.items()):
            if t is transaction:
                del self._pending_2xx[seq]
                self._step(Input.ACK_TIMEOUT, now)

    def resend_ack(self, response: Response, now: float) -> bool:
        """Send our ACK again for a retransmitted 2xx of the same CSeq (§13.2.2.4); False if none."""
        ack, dest = self.ack, self.ack_destination
        if ack is None or dest is None or ack.cseq.seq != response.cseq.seq:
            return False
        self.host.send_stateless(ack, dest, now)
        return True

    # ------------------------------------------- outcomes of our requests
    def operation_provisional(self, operation: ClientOperation, response: Response, now: float) -> None:
        """A 1xx to one of our in-dialog requests: nothing to do."""

    def operation_final(self, operation: ClientOperation, response: Response, now: float) -> None:
        """The final response of one of our in-dialog requests."""
        if operation is self._reinvite_op:
            if self.extension_final(operation, response, now):
                return  # sent again (a 422 naming the Min-SE)
            self._reinvite_op = None
            if 200 <= response.status < 300 and self.dialog is not None:
                self.timer_from_response(response, now)
                self.dialog.refresh_target(response)
                if operation.request.body:
                    self.local_sdp = operation.request.body
                if response.body:
                    self.remote_sdp = response.body
                error = self._send_2xx_ack(operation, response, now)
                if error is not None:  # the new target cannot be reached: neither ACK nor BYE goes
                    self.host.emit(ev.ReinviteCompleted(self, response, error))
                    self._step(Input.DIALOG_LOST, now)
                    return
            self.host.emit(ev.ReinviteCompleted(self, response))
            self._dialog_outcome(response.status, now)
        elif operation.method == "BYE":
            if not (200 <= response.status < 300 or response.status == 481):
                self._bye_error = SIPStatusError(response, "BYE")
            self._step(Input.BYE_DONE, now)
        elif operation.method != "CANCEL":
            if self.extension_final(operation, response, now):
                return  # sent again (a 422 naming the Min-SE)
            # other in-dialog requests (INFO, MESSAGE...) report like out-of-dialog ones
            self.host.emit(ev.RequestCompleted(operation, response))
            self._dialog_outcome(response.status, now)

    def _dialog_outcome(self, status: int, now: float) -> None:
        """RFC 3261 §12.2.1.2: a 481 or 408 to a request in the dialog (0: none came) ends it."""
        if status == 408 or status == 0:
            self._step(Input.DIALOG_LOST, now)
        elif status == 481:
            self._step(Input.DIALOG_GONE, now)

    def operation_failed(self, operation: ClientOperation, error: Exception, now: float) -> None:
        """One of our in-dialog requests ended without a final response."""
        self.extension_failed(operation)
        if operation is self._reinvite_op:
            self._reinvite_op = None
            self.host.emit(ev.ReinviteCompleted(self, None, error))
            self._failed_outcome(error, now)
        elif operation.method == "BYE":
            self._bye_error = error
            self._step(Input.BYE_DONE, now)
        elif operation.method != "CANCEL":
            self.host.emit(ev.RequestFailed(operation, error))
            self._failed_outcome(error, now)

    def _failed_outcome(self, error: Exception, now: float) -> None:
        # no response at all (timeout, transport error) ends the dialog like a 408
        # (§12.2.1.2); an authentication failure or a withheld credential does not
        if isinstance(error, TransactionTimeout | TransportError):
            self._dialog_outcome(0, now)

    # -------------------------------------------------------- helpers
    def _expect_ack(self, seq: int, transaction: ServerTransaction) -> None:
        self._pending_2xx[seq] = transaction
        self.host.dialogs.await_ack(transaction, self)

    def _enter_dialog(self, dialog: Dialog) -> None:
        self.dialog = dialog
        self.host.dialogs.add((dialog.call_id, dialog.local_tag, dialog.remote_tag), self)

    def _send_2xx_ack(self, operation: ClientOperation, response: Response, now: float) -> TransportError | None:
        """ACK a 2xx of ours (§13.2.2.4); the TransportError, and nothing sent, when its hop needs another transport."""
        dialog = self.dialog
        assert dialog is not None
        host = self.host
        error = dialog_hop_error(dialog, "ACK", host.transport)
        if error is not None:
            return error
        try:
            dest = host.locate(dialog.next_hop())
            hop_host = hop_host_of(dialog.next_hop())
        except (ResolutionError, ParseError):
            dest, hop_host = operation.destination, operation.hop_host
        body, ctype = self.ack_body(response) if self.ack_body is not None else (b"", "")
        ack = builders.build_2xx_ack(dialog, operation.request, via=host.via(host.ids.branch()),
                                     user_agent=host.user_agent, body=body, content_type=ctype,
                                     credentials=host.ack_credentials(self, operation.request, hop_host, dest))
        self.ack = ack
        self.ack_destination = dest
        host.send_stateless(ack, dest, now)
        return None

    def _bye(self, now: float, reason: str, by_remote: bool) -> None:
        """Send the BYE that ends the call; the end is reported once it is answered (§15.1.1)."""
        self._end_reason = (reason, by_remote)
        if self._reinvite_op is not None:  # a challenge racing the hang-up is not answered
            self._reinvite_op.stop_retrying()
        if self.dialog is None or self.dialog.state is DialogState.TERMINATED:
            self._step(Input.BYE_DONE, now)
            return
        try:
            self.request("BYE", now)
        except LocalProtocolError as e:  # e.g. the next hop cannot be located
            self._bye_error = e
            self._step(Input.BYE_DONE, now)

    # ------------------------------------------------ shared actions
    def a_none(self, now: float, arg: Any) -> None:
        """Nothing."""

    def a_bye_hangup(self, now: float, arg: Any) -> None:
        """We hang up a confirmed call: BYE."""
        self._bye(now, "hangup", False)

    def a_bye_max_duration(self, now: float, arg: Any) -> None:
        """The call lasted the core's ``max_call_duration``: BYE, ended as ``"max-duration"``."""
        self.host.stats["max_duration"] += 1
        self._bye(now, "max-duration", False)

    def _limit_duration(self, now: float) -> None:
        """Entering CONFIRMED: arm the max_call_duration deadline, if the core has one."""
        limit = self.host.max_call_duration
        if limit is not None:
            self._duration_name = ("max-duration", id(self))
            self.host.schedule_in_order(self._duration_name, now + limit, self._duration_reached)

    def _duration_reached(self, now: float) -> None:
        self._duration_name = None
        self._step(Input.MAX_DURATION, now)

    def a_bye_no_ack(self, now: float, arg: Any) -> None:
        """The ACK of a 2xx in a confirmed dialog never came: BYE (§13.3.1.4)."""
        self._bye(now, "no-ack", True)

    def a_bye_expired(self, now: float, arg: Any) -> None:
        """No session refresh in time (RFC 4028 §10): BYE, ended as ``"session-expired"``."""
        self.host.stats["session_expired"] += 1
        self._bye(now, "session-expired", False)

    def a_bye_lost(self, now: float, arg: Any) -> None:
        """A request in the dialog got 408 or no response: the dialog is lost, BYE (§12.2.1.2, §14.1)."""
        self._bye(now, "error", True)

    def a_end_by_bye(self, now: float, arg: Any) -> None:
        """The peer hung up (§15.1.2)."""
        self._end_reason = ("bye", True)
        self.a_finish(now, arg)

    def a_end_gone(self, now: float, arg: Any) -> None:
        """A request in the dialog got 481: the dialog is gone, no BYE (§12.2.1.2)."""
        self._end_reason = ("error", True)
        self.a_finish(now, arg)

    def a_abort(self, now: float, arg: Any) -> None:
        """Ended by the core without sending anything (reason ``hangup`` unless set)."""
        if self._end_reason is None:
            self._end_reason = ("hangup", False)
        self._bye_error = self._bye_error or arg
        self.a_finish(now, arg)

    def a_finish(self, now: float, arg: Any) -> None:
        """Leave the dialog table, forget the duration deadline, report the end if one is due."""
        if self._duration_name is not None:
            self.host.cancel_in_order(self._duration_name)
            self._duration_name = None
        self.stop_extensions(now)
        dialog = self.dialog
        if dialog is not None:
            dialog.terminate()
            self.host.dialogs.discard((dialog.call_id, dialog.local_tag, dialog.remote_tag), self)
        if self._end_reason is not None:
            reason, by_remote = self._end_reason
            self._end_reason = None
            self.host.emit(ev.CallEnded(self, reason, by_remote, self._bye_error))

    def __repr__(self) -> str:
        side = "UAC" if self.is_uac else "UAS"
        return f"<InviteSession {side} {self.phase.value}>"


__all__ = ["DIALOG_TABLE", "Action", "Input", "InviteSession", "Phase", "SessionState", "Table", "dialog_hop_error",
           "hop_host_of"]
