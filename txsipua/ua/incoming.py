"""The UAS side's decisions: :class:`IncomingCall` (an INVITE awaiting an answer, RFC 3261 §13.3.1) and :class:`Responder` (§8.2.6).

The user agent (:mod:`txsipua.ua.dispatch`) hands the application an
:class:`IncomingCall` for every new INVITE (``on_incoming_call``) and a
:class:`Responder` with every other request it does not handle itself
(``on_request``).  An :class:`IncomingCall` rings, sends early media (a 183
with our SDP answer), answers (200 with our answer, or 488 when the offer is
unusable) or rejects; each order goes to the core session through
``UserAgent.drive``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from twisted.logger import Logger

from txsipua.core.transaction import ServerTransaction
from txsipua.core.useragent import InviteSession, SessionState
from txsipua.errors import LocalProtocolError, SIPError
from txsipua.sip.message import Request
from txsipua.sip.values import NameAddr

if TYPE_CHECKING:
    from txsipua.ua.call import Call
    from txsipua.ua.useragent import UserAgent

log = Logger(namespace="txsipua.ua.call")  # the namespace calls have always logged under


class Responder:
    """Answers one incoming request: ``respond(status, reason=None, headers=(), body=b"")``.

    Attributes:
        request: the request.
        identity: the authenticated username (the UA's authenticator and
            portal accepted it), or ``None`` when the request was not authenticated.
        session: the call an in-dialog request belongs to, or ``None``.
    """

    def __init__(self, ua: UserAgent, request: Request, transaction: ServerTransaction,
                 identity: str | None, session: InviteSession | None) -> None:
        self.ua = ua
        self.request = request
        self.transaction = transaction
        self.identity = identity
        self.session = session

    def __call__(self, status: int, reason: str | None = None, headers: Iterable[tuple[str, str]] = (),
                 body: bytes = b"") -> None:
        """Send the response (RFC 3261 §8.2.6)."""
        core = self.ua.core

        def go(now: float) -> None:
            resp = core.make_response(self.request, status, reason, body=body, headers=headers)
            core.layer.respond(self.transaction, resp, now)

        self.ua.drive(go)


class IncomingCall:
    """An incoming INVITE waiting for the application's decision.

    Cancelling ``call.confirmed`` hangs the call up,
    as :meth:`Call.hangup <txsipua.ua.call.Call.hangup>`: 603 before the
    answer, BYE once our 2xx was ACKed (RFC 3261 §15).

    Attributes:
        call: the :class:`Call` (its ``confirmed`` fires once the caller's
            ACK of our 2xx arrived; ``answered`` is the caller's Deferred).
        request: the INVITE.
        caller: the From name-addr.
        identity: the authenticated username, if the UA authenticates.
        replaces: the :class:`Call` this one replaces (an INVITE with
            Replaces, RFC 3891), ended with BYE once this one is confirmed;
            ``None`` for an ordinary call.
    """

    def __init__(self, ua: UserAgent, call: Call, request: Request, replaces: Call | None = None) -> None:
        self.ua = ua
        self.call = call
        self.replaces = replaces
        self.request = request
        self.caller: NameAddr = request.from_
        self.identity = call.session.identity

    def ring(self) -> None:
        """Send 180 Ringing."""
        session = self.call.session
        self.ua.drive(lambda now: session.ring(now))

    def early_media(self, status: int = 183) -> Call:
        """Send 183 Session Progress with our SDP answer and start the media before answering (RFC 3261 §13.2.1).

        ``play()`` and recording work at once (announcements, ringback); a
        later :meth:`answer` repeats the same answer in its 2xx.  An INVITE
        without an offer gets a plain provisional response (our offer must
        wait for the 2xx).  An offer we cannot accept is rejected as in
        :meth:`answer`.

        Raises:
            LocalProtocolError: the call no longer awaits an answer.
        """
        call = self.call
        if not self.pending:
            raise LocalProtocolError(f"cannot send early media in state {call.state.value}")
        media = call.call_media
        body = b""
        if media is not None and self.request.body:
            if media.local is not None:
                body = media.local.to_bytes()
            else:
                try:
                    body = media.answer(self.request.body)
                except SIPError as e:
                    status_ = getattr(e, "status", 488)
                    self.reject(status_ if isinstance(status_, int) else 488, headers=getattr(e, "headers", ()))
                    return call
        session = call.session
        self.ua.drive(lambda now: session.ring(now, body=body, status=status))
        return call

    @property
    def pending(self) -> bool:
        """True while the call awaits the decision: no final response yet, not cancelled."""
        return not self.call.ended.called and self.call.state in (SessionState.RECEIVED, SessionState.RINGING)

    def answer(self) -> Call:
        """Accept with 200 OK and our SDP answer; returns the :class:`Call`.

        An offer we cannot accept is rejected (488, or the status its error names).

        Raises:
            LocalProtocolError: the call no longer awaits an answer (the caller
                cancelled it, or it was answered or rejected already); no
                media is opened.
        """
        call = self.call
        if not self.pending:
            raise LocalProtocolError(f"cannot answer a call in state {call.state.value}")
        body = b""
        if call.call_media is not None and call.call_media.local is not None and self.request.body:
            body = call.call_media.local.to_bytes()  # the answer our early media sent already
        elif call.call_media is not None:
            try:
                body = call.call_media.answer(self.request.body or None)
            except SIPError as e:  # a bad offer (488...), or no media socket (MediaUnavailable: 503)
                status = getattr(e, "status", 488)
                self.reject(status if isinstance(status, int) else 488,
                            headers=getattr(e, "headers", ()))
                return call
            except Exception:
                log.failure("cannot answer the call")
                self.reject(500)
                return call
        try:
            self.ua.drive(lambda now: call.session.accept(now, body=body))
        except BaseException:
            call.stop_media()  # never leave the RTP socket open for a call not answered
            raise
        return call

    def reject(self, status: int = 486, reason: str | None = None,
               headers: Iterable[tuple[str, str]] = ()) -> None:
        """Decline with a final non-2xx response (486 Busy Here by default), adding ``headers``."""
        call = self.call
        self.ua.drive(lambda now: call.session.reject(now, status, reason, headers=headers))
        self.ua.calls.discard(call)
        call.stop_media()
        if not call.ended.called:
            call.ended.callback("rejected")


__all__ = ["IncomingCall", "Responder"]
