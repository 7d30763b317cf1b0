"""What a call does beyond RFC 3261: PRACK (RFC 3262), UPDATE (RFC 3311), session timers (RFC 4028).

Theory of operation
-------------------
:class:`InviteExtensions` is mixed into :class:`~txsipua.core.invite.InviteSession`
and works on the same session; the INVITE tables call into it at a few
hooks and it feeds them inputs back (``PROVISIONAL_UNACKED``,
``SESSION_EXPIRED``).  The rules live in the declared machines of
:mod:`txsipua.core.reliable` and :mod:`txsipua.core.session_timer`; this
module does the sending and the dialog bookkeeping:

* **Early dialogs (UAC).**  A reliable 1xx with a To tag makes an early
  dialog (§12.1.2), entered in the dialog table so the callee's in-dialog
  requests (UPDATE) find the call.  Its PRACK is sent in that dialog
  (CSeq from the dialog, ``RAck: RSeq CSeq INVITE``), retried on 401/407
  like every request.  When the 2xx of that dialog arrives, the confirmed
  dialog continues its CSeq numbers.  An SDP in a reliable 1xx is the answer
  to our INVITE's offer, or (an INVITE without offer) an offer answered in
  the PRACK through :attr:`InviteExtensions.answer_offer`.
* **Early dialog (UAS).**  Our first reliable 1xx enters the early dialog
  (our To tag) so its PRACK, an UPDATE or a BYE reach the call; the 2xx
  confirms the same dialog.  A 2xx waits while a reliable 1xx carrying SDP
  awaits its PRACK (RFC 3262 §3).
* **UPDATE.**  :meth:`InviteExtensions.update` sends one in the early or
  confirmed dialog (an offer, or none for a session refresh).  A received
  UPDATE without body is answered 200 here; one with an offer goes to the
  application (``IncomingRequest``), which answers through
  :meth:`InviteExtensions.answer_update`; an offer while one of ours is
  outstanding gets 491, while one of theirs is unanswered 500 with
  Retry-After (RFC 3311 §5.2).
* **Session timers.**  Our INVITE asks for the host's ``session_expires``;
  every 2xx we send or receive for an INVITE, re-INVITE or UPDATE
  renegotiates the :class:`~txsipua.core.session_timer.SessionTimer`.  A
  refresh is an UPDATE when the peer's Allow lists it, else a re-INVITE with
  our current SDP (RFC 4028 §7.4); a 422 gets one retry with the Min-SE it
  names (§7.1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from txsipua.core import events as ev
from txsipua.core.builders import SUPPORTED
from txsipua.core.dialog import Dialog, DialogState
from txsipua.core.reliable import (
    ReliableReceiver,
    ReliableSender,
    SenderState,
    option_tags,
    rseq_of,
    wants_reliable,
)
from txsipua.core.session_timer import (
    SessionTimer,
    min_se_of,
    refusal,
    request_fields,
    uac_outcome,
    uas_answer,
)
from txsipua.core.uac import ClientOperation
from txsipua.errors import LocalProtocolError, ParseError, RemoteProtocolError, ResolutionError
from txsipua.sip.message import Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.context import SessionHost
    from txsipua.core.invite import Input
    from txsipua.core.transaction import ServerTransaction

MAX_MIN_SE_RETRIES = 2
"""422 responses answered with a larger interval per call (RFC 4028 §7.1), at most."""


def _hop_host(dialog: Dialog) -> str:
    from txsipua.core.invite import hop_host_of

    return hop_host_of(dialog.next_hop())


class InviteExtensions:
    """PRACK, UPDATE and session timers of one call; see the module docstring.

    Attributes:
        reliable: the UAS :class:`~txsipua.core.reliable.ReliableSender`, or
            ``None`` (UAC, or a caller without 100rel).
        early_dialogs: UAC: the early dialogs made by reliable 1xx, by To tag.
        answer_offer: UAC: turns an offer received in a reliable 1xx (our
            INVITE had none) into the answer sent in the PRACK; ``None``
            sends the PRACK without one.
        timer: the :class:`~txsipua.core.session_timer.SessionTimer`, made
            when first negotiated, else ``None``.
    """

    # provided by InviteSession
    host: SessionHost
    dialog: Dialog | None
    invite: Request | None
    local_sdp: bytes | None
    remote_sdp: bytes | None
    is_uac: ClassVar[bool]
    _reinvite_op: ClientOperation | None
    digest: Any

    def _init_extensions(self) -> None:
        self.reliable: ReliableSender | None = None
        self.early_dialogs: dict[str, tuple[Dialog, ReliableReceiver]] = {}
        self.answer_offer: Callable[[bytes], bytes] | None = None
        self.timer: SessionTimer | None = None
        self._update_op: ClientOperation | None = None
        self._update_offer: bytes | None = None
        self._refresh_ops: set[ClientOperation] = set()
        self._min_se_retries = 0
        self._peer_allow: set[str] = set()

    if TYPE_CHECKING:  # pragma: no cover - what InviteSession provides, declared for the type checker
        def _step(self, inp: Input, now: float, arg: Any = None) -> bool: ...

        def reinvite(self, now: float, body: bytes,
                     content_type: str = "application/sdp") -> ClientOperation: ...

    # ------------------------------------------------------------ sending
    def send_in(self, dialog: Dialog, method: str, now: float, *, headers: Iterable[tuple[str, str]] = (),
                body: bytes = b"", content_type: str | None = None, contact: bool = False) -> ClientOperation:
        """Send ``method`` in ``dialog`` (early or confirmed), owned by this call, retried on 401/407.

        Raises:
            LocalProtocolError: the dialog is terminated or its next hop cannot be located.
        """
        host = self.host
        extra = list(headers)
        if content_type and body:
            extra.append(("Content-Type", content_type))
        if host.user_agent:
            extra.append(("User-Agent", host.user_agent))
        req = dialog.create_request(method, via=host.via(""), headers=extra, body=body,
                                    contact=(host.contact_value(True) if dialog.secure else host.contact_value())
                                    if contact else None)
        hop = dialog.next_hop()
        try:
            dest = host.locate(hop)
        except ResolutionError as e:
            raise LocalProtocolError(str(e)) from e
        op = ClientOperation(host, req, dest, owner=self, next_cseq=dialog.next_seq,  # type: ignore[arg-type]
                             hop_host=_hop_host(dialog), digest=self.digest)
        op.start(now)
        return op

    def dialog_for(self, request: Request) -> Dialog | None:
        """The dialog (confirmed, else early) an in-dialog request received belongs to."""
        dialog = self.dialog
        if dialog is not None:
            return dialog
        entry = self.early_dialogs.get(request.from_tag or "")
        return entry[0] if entry is not None else None

    # ------------------------------------------------------ PRACK as UAC
    def reliable_provisional(self, response: Response, now: float) -> bool:
        """A 1xx to our INVITE: PRACK it if reliable.  False when it must be dropped (RFC 3262 §4)."""
        try:
            rseq = rseq_of(response)
            tag = response.to_tag
        except ParseError:
            return True
        if rseq is None or not tag:
            return True  # an ordinary provisional
        host = self.host
        entry = self.early_dialogs.get(tag)
        if entry is None:
            try:
                dialog = Dialog.from_uac_response(self._invite_request(), response)
            except (RemoteProtocolError, ParseError):
                return True  # no early dialog can be made: reported, never PRACKed
            entry = self.early_dialogs[tag] = (dialog, ReliableReceiver())
            host.dialogs.add((dialog.call_id, dialog.local_tag, dialog.remote_tag), self)  # type: ignore[arg-type]
        dialog, receiver = entry
        if not receiver.receive(rseq, now):
            host.stats["prack_dropped"] += 1
            return False
        dialog.refresh_target(response)
        body = b""
        if response.body:
            if self.local_sdp is None and self.remote_sdp is None:  # an offer (§5): answer it in the PRACK
                self.remote_sdp = response.body
                if self.answer_offer is not None:
                    body = self.answer_offer(response.body)
                    self.local_sdp = body or None
            elif self.remote_sdp is None:
                self.remote_sdp = response.body  # the answer to our INVITE's offer
        rack = f"{rseq} {response.cseq.seq} {response.cseq.method}"
        try:
            self.send_in(dialog, "PRACK", now, headers=[("RAck", rack)], body=body,
                         content_type="application/sdp" if body else None)
        except LocalProtocolError:
            host.stats["prack_unsent"] += 1
        return True

    def _invite_request(self) -> Request:
        op = getattr(self, "invite_operation", None)
        if op is not None:
            return op.request
        assert self.invite is not None
        return self.invite

    def adopt_early(self, dialog: Dialog) -> None:
        """The 2xx made ``dialog``: it continues the CSeq numbers of its early dialog; the others go."""
        entry = self.early_dialogs.get(dialog.remote_tag)
        if entry is not None:
            early = entry[0]
            dialog.local_seq = max(dialog.local_seq, early.local_seq)
            if early.remote_seq is not None:
                dialog.remote_seq = max(dialog.remote_seq or 0, early.remote_seq)
        self._forget_early(keep=dialog.remote_tag)

    def _forget_early(self, keep: str | None = None) -> None:
        for tag, (early, _) in list(self.early_dialogs.items()):
            if tag != keep:
                self.host.dialogs.discard((early.call_id, early.local_tag, early.remote_tag), self)  # type: ignore[arg-type]
        self.early_dialogs.clear()

    # ------------------------------------------------------ PRACK as UAS
    def close_reliable(self, now: float) -> None:
        """UAS: the INVITE got its final response: no more reliable 1xx nor retransmissions (§3)."""
        if self.reliable is not None and self.reliable.state is not SenderState.CLOSED:
            self.reliable.final_sent(now)

    def start_reliable(self) -> None:
        """UAS: send our provisionals reliably when the INVITE asks for it (RFC 3262 §3)."""
        invite = self.invite
        assert invite is not None
        if wants_reliable(invite, self.host.use_100rel):
            first = int(self.host.ids.token(4), 16) % (2**31 - 1) + 1
            self.reliable = ReliableSender(self.host, self, first, id(self))

    def enter_early(self, local_tag: str) -> None:
        """UAS: our first reliable 1xx makes the early dialog (RFC 3261 §12.1.1)."""
        if self.dialog is None:
            assert self.invite is not None
            dialog = Dialog.from_uas_request(self.invite, local_tag)
            dialog.state = DialogState.EARLY
            self.dialog = dialog
            self.host.dialogs.add((dialog.call_id, dialog.local_tag, dialog.remote_tag), self)  # type: ignore[arg-type]

    def on_prack(self, request: Request, transaction: ServerTransaction, now: float) -> None:
        """A PRACK: 200 when it names one of our reliable 1xx, else 481 (RFC 3262 §3)."""
        host = self.host
        sender = self.reliable
        invite = self.invite
        if sender is None or invite is None or not sender.acknowledges(request, invite.cseq.seq):
            host.respond(transaction, host.make_response(request, 481), now)
            return
        host.respond(transaction, host.make_response(request, 200), now)
        sender.prack(request, now)

    def transmit_provisional(self, response: Response, now: float) -> None:
        """Send (again) a reliable 1xx on the INVITE server transaction."""
        self.host.respond(self.transaction, response, now)  # type: ignore[attr-defined]

    def provisional_acknowledged(self, response: Response, prack: Request, now: float) -> None:
        """The PRACK of a reliable 1xx arrived: take its SDP, report it, let a held 2xx go."""
        if prack.body:  # the answer to the offer our 1xx carried (RFC 3262 §5)
            self.remote_sdp = prack.body
        self.host.emit(ev.ProvisionalAcknowledged(self, response, prack))  # type: ignore[arg-type]
        self.release_2xx(now)

    def release_2xx(self, now: float) -> None:
        """UAS: send the 2xx that waited for a PRACK, if any (overridden by the server session)."""

    def provisional_unacknowledged(self, now: float) -> None:
        """64*T1 without PRACK: the INVITE is rejected with a 5xx (RFC 3262 §3)."""
        from txsipua.core.invite import Input

        self._step(Input.PROVISIONAL_UNACKED, now)

    # ------------------------------------------------------------- UPDATE
    def update(self, now: float, body: bytes = b"", content_type: str = "application/sdp",
               headers: Iterable[tuple[str, str]] = ()) -> ClientOperation:
        """Send an UPDATE in the early or confirmed dialog (RFC 3311): an offer in ``body``, or none.

        Completion is reported with :class:`~txsipua.core.events.RequestCompleted`
        or :class:`~txsipua.core.events.RequestFailed`; a 2xx takes the answer
        as :attr:`remote_sdp` and renegotiates the session timer.

        Raises:
            LocalProtocolError: no dialog yet, an UPDATE is in progress, an
                offer is outstanding (§5.1), or the next hop cannot be located.
        """
        dialog = self.dialog
        if dialog is None and self.early_dialogs:
            dialog = next(reversed(self.early_dialogs.values()))[0]
        if dialog is None or dialog.state is DialogState.TERMINATED:
            raise LocalProtocolError("UPDATE needs an early or confirmed dialog")
        if self._update_op is not None:
            raise LocalProtocolError("an UPDATE is already in progress")
        if body and self.offer_outstanding():
            raise LocalProtocolError("an offer is outstanding: UPDATE with an offer would glare (RFC 3311 §5.1)")
        extra = list(headers) + self.timer_request_fields()
        if not any(n.lower() == "supported" for n, _ in extra):
            extra.append(("Supported", SUPPORTED))
        op = self.send_in(dialog, "UPDATE", now, headers=extra, body=body,
                          content_type=content_type if body else None, contact=True)
        self._update_op = op
        self._update_offer = body or None
        return op

    def offer_outstanding(self) -> bool:
        """True while an offer of ours awaits its answer (re-INVITE, UPDATE, or the INVITE's in an early dialog)."""
        if self._update_op is not None and self._update_offer:
            return True
        reinvite = self._reinvite_op
        if reinvite is not None and reinvite.request.body:
            return True
        return self.dialog is None and self.is_uac and self.local_sdp is not None and self.remote_sdp is None

    def _offer_unanswered(self) -> bool:
        """True while an offer of the peer's awaits our answer (an early UAS dialog)."""
        return (not self.is_uac and self.dialog is not None and self.dialog.state is DialogState.EARLY
                and self.remote_sdp is not None and self.local_sdp is None)

    def on_update(self, request: Request, transaction: ServerTransaction, dialog: Dialog, now: float) -> None:
        """A received UPDATE (RFC 3311 §5.2): checked here, answered here or by the application."""
        host = self.host
        refused = refusal(request, host.min_se)
        if refused is not None:
            host.respond(transaction, host.make_response(request, refused[0], refused[1], headers=refused[2]), now)
            return
        if request.body:
            if self.offer_outstanding():
                host.respond(transaction, host.make_response(request, 491), now)
                return
            if self._offer_unanswered():
                host.respond(transaction, host.make_response(request, 500, headers=[("Retry-After", "1")]), now)
                return
        dialog.refresh_target(request)
        if request.body:
            host.emit(ev.IncomingRequest(request, transaction, self))  # type: ignore[arg-type]
        else:
            self.answer_update(transaction, request, now)

    def answer_update(self, transaction: ServerTransaction, request: Request, now: float, *,
                      status: int = 200, body: bytes = b"") -> None:
        """Answer a received UPDATE: a 2xx carries our Contact, the answer in ``body`` and the session timer."""
        host = self.host
        extra: list[tuple[str, str]] = []
        if 200 <= status < 300:
            secure = self.dialog is not None and self.dialog.secure
            extra.append(("Contact", host.contact_value(True) if secure else host.contact_value()))
            if self.dialog is not None and self.dialog.state is DialogState.CONFIRMED:
                extra.extend(self.timer_answer(request, now))
            if body:
                extra.append(("Content-Type", "application/sdp"))
                self.local_sdp = body
            if request.body:
                self.remote_sdp = request.body
        host.respond(transaction, host.make_response(request, status, body=body, headers=extra), now)

    def extension_final(self, operation: ClientOperation, response: Response, now: float) -> bool:
        """The final response of one of our in-dialog requests: True when it was retried (a 422)."""
        status = response.status
        if status == 422 and self.retry_with_min_se(operation, response, now):
            return True
        refresh = operation in self._refresh_ops
        self._refresh_ops.discard(operation)
        if operation is self._update_op:
            offer, self._update_op, self._update_offer = self._update_offer, None, None
            if 200 <= status < 300:
                dialog = self.dialog or self.dialog_for_response(response)
                if dialog is not None:
                    with contextlib.suppress(ParseError):
                        dialog.refresh_target(response)
                if offer is not None:
                    self.local_sdp = offer
                    if response.body:
                        self.remote_sdp = response.body
                if self.dialog is not None and self.dialog.state is DialogState.CONFIRMED:
                    self.timer_from_response(response, now)
        if refresh and not (200 <= status < 300):
            self.host.stats["refresh_failed"] += 1
        return False

    def dialog_for_response(self, response: Response) -> Dialog | None:
        """UAC: the early dialog a response to our in-dialog request came in."""
        entry = self.early_dialogs.get(response.to_tag or "")
        return entry[0] if entry is not None else None

    def extension_failed(self, operation: ClientOperation) -> None:
        """One of our in-dialog requests got no final response."""
        self._refresh_ops.discard(operation)
        if operation is self._update_op:
            self._update_op = self._update_offer = None

    # ------------------------------------------------------ session timers
    def invite_timer_fields(self) -> list[tuple[str, str]]:
        """UAC: the Session-Expires and Min-SE of our INVITE (RFC 4028 §7.1), when we ask for a timer."""
        interval = self.host.session_expires
        if interval is None:
            return []
        return request_fields(interval, self.host.min_se, None)

    def timer_request_fields(self) -> list[tuple[str, str]]:
        """Session-Expires and Min-SE for a re-INVITE or UPDATE we send while a timer runs (§7.4)."""
        timer = self.timer
        if timer is None or not timer.active or timer.interval is None:
            return []
        return request_fields(timer.interval, self.host.min_se, timer.we_refresh)

    def _session_timer(self) -> SessionTimer:
        if self.timer is None:
            self.timer = SessionTimer(self.host, self, id(self))
        return self.timer

    def timer_from_response(self, response: Response, now: float) -> None:
        """A 2xx to our INVITE, re-INVITE or UPDATE: renegotiate the session timer (§7.2)."""
        if response.cseq.method == "INVITE" and self.is_uac and self._reinvite_op is None:
            self._peer_allow = option_tags(response, "Allow")
        agreement = uac_outcome(response)
        if agreement is None and self.timer is None:
            return
        self._session_timer().negotiated(agreement, now)

    def timer_answer(self, request: Request, now: float) -> list[tuple[str, str]]:
        """Our 2xx to an INVITE, re-INVITE or UPDATE: its session-timer fields; the timer restarts (§9)."""
        current = self.timer.interval if self.timer is not None and self.timer.active else None
        try:
            fields, agreement = uas_answer(request, self.host.session_expires, self.host.min_se, current)
        except ParseError:
            return []
        if agreement is None and self.timer is None:
            return []
        self._session_timer().negotiated(agreement, now)
        return fields

    def send_refresh(self, now: float) -> None:
        """Half the interval passed: refresh with UPDATE if the peer allows it, else re-INVITE (§7.4)."""
        peer_allow = self._peer_allow
        if not self.is_uac and self.invite is not None:
            try:
                peer_allow = option_tags(self.invite, "Allow")
            except ParseError:
                peer_allow = set()
        try:
            if "update" in peer_allow and self._update_op is None:
                self._refresh_ops.add(self.update(now))
            elif self._reinvite_op is None:
                self._refresh_ops.add(self.reinvite(now, self.local_sdp or b""))
            # else the re-INVITE in progress carries Session-Expires and refreshes
        except (LocalProtocolError, ResolutionError, ParseError):
            self.host.stats["refresh_unsent"] += 1

    def session_expired(self, now: float) -> None:
        """No refresh in time (RFC 4028 §10): BYE."""
        from txsipua.core.invite import Input

        self._step(Input.SESSION_EXPIRED, now)

    def retry_with_min_se(self, operation: ClientOperation, response: Response, now: float) -> bool:
        """A 422 to a request that asked for a session interval: send it again with the Min-SE named (§7.1)."""
        try:
            min_se = min_se_of(response)
            asked = operation.request.headers.get("Session-Expires")
        except ParseError:
            return False
        if min_se is None or asked is None or self._min_se_retries >= MAX_MIN_SE_RETRIES:
            return False
        self._min_se_retries += 1
        refresher = self.timer.we_refresh if self.timer is not None and self.timer.active else None
        operation.resend(now, request_fields(min_se, min_se, refresher))
        return True

    def stop_extensions(self, now: float) -> None:
        """The call ended: stop the timers, forget the early dialogs."""
        if self.timer is not None:
            self.timer.stop(now)
        self.close_reliable(now)
        self._forget_early()


__all__ = ["MAX_MIN_SE_RETRIES", "InviteExtensions"]
