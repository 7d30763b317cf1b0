"""The user agent's side of the core's events: UAS dispatch and the outcomes of our requests (RFC 3261 §8.2, §13, §15).

Theory of operation
-------------------
The transport's driver hands every event the sans-IO core emits to
``UserAgent._on_event``, which looks its class up in :data:`EVENT_HANDLERS`
(``UserAgent.EVENT_HANDLERS`` is this table) and calls the handler with the
user agent.  The handlers are the user agent's UAS side and the end of its
UAC side:

- a new INVITE becomes a :class:`~txsipua.ua.call.Call` and an
  :class:`~txsipua.ua.incoming.IncomingCall` for ``on_incoming_call`` (or
  the account line it is for, :mod:`txsipua.ua.accounts`), answered when
  ``auto_answer`` is set, else refused 480 (§13.3.1);
- any other request goes to its call (re-INVITE §14.2, UPDATE RFC 3311,
  REFER/NOTIFY/INFO :mod:`txsipua.ua.transfer`), to an unsolicited MWI
  NOTIFY, or to ``on_request`` with a :class:`~txsipua.ua.incoming.Responder`;
  unhandled, MESSAGE/INFO/NOTIFY get 200, REGISTER 405, others 501 (§8.2);
- a request the core parked for credentials is checked by the ``twisted.cred``
  portal (RFC 3261 §22);
- the outcomes of our requests fire the Deferred in the operation's
  ``user_data``; the events of a call go to its :class:`~txsipua.ua.call.Call`
  (``session_*``), those of a subscription to its
  :class:`~txsipua.ua.subscription.Subscription`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from txsipua.core import events as ev
from txsipua.core.capabilities import ALLOW
from txsipua.core.useragent import InviteSession
from txsipua.errors import SIPError
from txsipua.ua.call import Call, IncomingCall, Responder
from txsipua.ua.cred import ISIPUser
from txsipua.ua.nat import is_wildcard
from txsipua.ua.subscription import Subscription, unsolicited_notify
from txsipua.ua.transfer import handle_in_dialog, incoming_replaces

if TYPE_CHECKING:
    from txsipua.ua.useragent import UserAgent

log = Logger(namespace="txsipua.ua.useragent")  # the namespace the user agent has always logged under


def _call_of(session: InviteSession) -> Call | None:
    call = session.user_data
    return call if isinstance(call, Call) else None


def _log_auth_notes(op: Any) -> None:
    attempt = getattr(op, "attempt", None)
    notes = getattr(attempt, "notes", None)
    if notes:
        for note in notes:
            log.info("digest: {note} ({method})", note=note, method=op.method)
        notes.clear()


def _request_completed(ua: UserAgent, e: ev.RequestCompleted) -> None:
    _log_auth_notes(e.operation)
    d = e.operation.user_data
    if isinstance(d, defer.Deferred) and not d.called:
        d.callback(e.response)


def _credentials_withheld(ua: UserAgent, e: ev.CredentialsWithheld) -> None:
    # the digest-leak guard left credentials out of a 2xx ACK: a warning
    log.warn("{warning} ({method})", warning=str(e.withheld), method=e.method)


def _call_refused(ua: UserAgent, e: ev.CallRefused) -> None:
    # the first refusal of a flood and every 100th after it, not each one
    if e.refused == 1 or e.refused % 100 == 0:
        ua.log.warn("503 to a new INVITE: {live} calls live (max_calls); {n} refused so far",
                    live=e.live, n=e.refused)


def _request_failed(ua: UserAgent, e: ev.RequestFailed) -> None:
    _log_auth_notes(e.operation)
    d = e.operation.user_data
    if isinstance(d, defer.Deferred) and not d.called:
        d.errback(e.error)


def _provisional(ua: UserAgent, e: ev.ProvisionalResponse) -> None:
    owner = e.operation
    if isinstance(owner, InviteSession) and isinstance(owner.user_data, Call):
        owner.user_data.session_progress(e.response)


def _call_answered(ua: UserAgent, e: ev.CallAnswered) -> None:
    _log_auth_notes(e.session.invite_operation)
    call = _call_of(e.session)
    if call is not None:
        call.session_answered(e.response)


def _call_failed(ua: UserAgent, e: ev.CallAttemptFailed) -> None:
    _log_auth_notes(e.session.invite_operation)
    call = _call_of(e.session)
    if call is not None:
        call.session_failed(e.error)


def _call_ended(ua: UserAgent, e: ev.CallEnded) -> None:
    call = _call_of(e.session)
    if call is not None:
        call.session_ended(e.reason, e.bye_error)


def _call_confirmed(ua: UserAgent, e: ev.CallConfirmed) -> None:
    call = _call_of(e.session)
    if call is not None:
        call.session_confirmed()


def _reinvite_completed(ua: UserAgent, e: ev.ReinviteCompleted) -> None:
    call = _call_of(e.session)
    if call is not None:
        call.reinvite_completed(e.response, e.error)


def _ack_received(ua: UserAgent, e: ev.AckReceived) -> None:
    call = _call_of(e.session)
    if call is not None:
        call.ack_received(e.request)


def _provisional_acknowledged(ua: UserAgent, e: ev.ProvisionalAcknowledged) -> None:
    call = _call_of(e.session)
    if call is not None:
        call.provisional_acknowledged(e.prack)


def _incoming_call(ua: UserAgent, e: ev.IncomingCall) -> None:
    if is_wildcard(ua.core.local[0]):
        # bound to a wildcard and nothing sent yet: answer from the interface routing to the caller
        try:
            via = e.request.top_via
            ua.advertise_toward(via.received or via.host)
        except SIPError:
            pass
    call = Call(ua, e.session)
    ua.calls.add(call)
    replaced = _call_of(e.replaces) if e.replaces is not None else None
    incoming = IncomingCall(ua, call, e.request, replaced)
    line = ua.accounts.match(e.request)
    handler, auto = ua.on_incoming_call, ua.auto_answer
    if line is not None:  # a call for an added account (ua/accounts.py has the rule)
        handler, auto = line.on_incoming_call, line.auto_answer
        line.adopt(e.session)
    if replaced is not None:  # RFC 3891: BYE the replaced call once this one is up
        incoming_replaces(incoming, auto=handler is None)
        if handler is None:
            return
    if handler is not None:
        try:
            handler(incoming)
        except Exception:
            # the application failed: refuse the call rather than leave it unanswered
            log.failure("on_incoming_call failed; the call is refused with 500")
            if incoming.pending:
                incoming.reject(500)
    elif auto:
        incoming.ring()
        incoming.answer()
    else:
        incoming.reject(480)


def _incoming_request(ua: UserAgent, e: ev.IncomingRequest) -> None:
    req = e.request
    session = e.session
    if req.method == "UPDATE" and session is not None:  # an offer in an UPDATE (RFC 3311)
        call = _call_of(session)
        if call is not None:
            call.update_received(req, e.transaction)
        else:
            ua.drive(lambda now: session.answer_update(e.transaction, req, now, status=488))
        return
    if req.method == "INVITE" and session is not None:
        call = _call_of(session)
        if call is not None:
            call.reinvite_received(req, e.transaction)
        else:
            ua.drive(lambda now: session.answer_reinvite(e.transaction, req, now, body=b""))
        return
    respond = Responder(ua, req, e.transaction, e.identity, session)
    call = _call_of(session) if session is not None else None
    if call is not None and handle_in_dialog(ua, call, req, respond):
        return  # REFER, NOTIFY of our transfer, INFO with DTMF (txsipua.ua.transfer)
    if session is None and req.method == "NOTIFY" and unsolicited_notify(ua, req, respond):
        return  # message-summary without a subscription (MWI from the registrar)
    line = ua.accounts.match(req) if session is None else None
    on_request = line.on_request if line is not None else ua.on_request
    if on_request is not None:
        on_request(req, respond)
        return
    if req.method == "NOTIFY" and session is None:
        respond(481, "No Matching Subscription")  # RFC 6665 §4.1.3: no subscription of ours
    elif req.method in ("MESSAGE", "INFO", "NOTIFY"):
        respond(200)
    elif req.method == "REGISTER":
        respond(405, headers=[("Allow", ALLOW)])
    else:
        respond(501)


def _authenticate(ua: UserAgent, e: ev.AuthenticationNeeded) -> None:
    if ua.portal is None:
        ua.drive(lambda now: ua.core.authentication_result(e, False, None, now))
        return
    try:  # Portal.login returns a Deferred (failures included); a stand-in might raise
        d = ua.portal.login(e.credentials, None, ISIPUser)
    except Exception:
        d = defer.fail()

    def ok(result: Any) -> None:
        _iface, avatar, _logout = result
        ua.drive(lambda now: ua.core.authentication_result(e, True, str(avatar), now))

    def bad(_: Any) -> None:
        ua.drive(lambda now: ua.core.authentication_result(e, False, None, now))

    d.addCallbacks(ok, bad)


def _subscription_accepted(ua: UserAgent, e: ev.SubscriptionAccepted) -> None:
    sub = e.subscription.user_data
    if isinstance(sub, Subscription):
        sub.accepted(e.response)


def _notify_received(ua: UserAgent, e: ev.NotifyReceived) -> None:
    sub = e.subscription.user_data
    if isinstance(sub, Subscription):
        sub.notified(e.request, e.state)


def _subscription_ended(ua: UserAgent, e: ev.SubscriptionEnded) -> None:
    sub = e.subscription.user_data
    if isinstance(sub, Subscription):
        sub.finished(e.reason, e.retry_after, e.error)


EVENT_HANDLERS: dict[type, Callable[[Any, Any], None]] = {
    ev.RequestCompleted: _request_completed,
    ev.RequestFailed: _request_failed,
    ev.ProvisionalResponse: _provisional,
    ev.CallAnswered: _call_answered,
    ev.CallAttemptFailed: _call_failed,
    ev.CallEnded: _call_ended,
    ev.CallConfirmed: _call_confirmed,
    ev.ReinviteCompleted: _reinvite_completed,
    ev.AckReceived: _ack_received,
    ev.IncomingCall: _incoming_call,
    ev.IncomingRequest: _incoming_request,
    ev.AuthenticationNeeded: _authenticate,
    ev.CredentialsWithheld: _credentials_withheld,
    ev.CallRefused: _call_refused,
    ev.ProvisionalAcknowledged: _provisional_acknowledged,
    ev.SubscriptionAccepted: _subscription_accepted,
    ev.NotifyReceived: _notify_received,
    ev.SubscriptionEnded: _subscription_ended,
}
"""Core event class -> the function ``(ua, event)`` that turns it into Deferreds and calls; an event
absent from the table is not the user agent's to handle.  :attr:`UserAgent.EVENT_HANDLERS
<txsipua.ua.useragent.UserAgent.EVENT_HANDLERS>` is this table."""


__all__ = ["EVENT_HANDLERS"]
