"""Transfer in the user API: we transfer a call (REFER out), we are transferred (REFER in),
an INVITE replaces one of our calls, and DTMF in INFO (RFC 3515, RFC 3891, RFC 3892, RFC 6086).

The sans-IO roles live in :mod:`txsipua.core.refer` (the two tables) and
:mod:`txsipua.core.replaces`; this module drives them from the Twisted side:

* :class:`Transfer` (from :meth:`Call.transfer <txsipua.ua.call.Call.transfer>`):
  REFER with Refer-To (and Replaces in its URI for an attended transfer) and
  Referred-By; the NOTIFYs of the implicit subscription are answered and
  reported (``on_progress``, ``accepted``, ``done``); on success the original
  call is hung up.
* :class:`ReferRequest`: a REFER received in a call, handed to
  ``UserAgent.on_refer`` (default: accept).  Accepting answers 202, NOTIFYs
  ``100 Trying``, places the new call (with Referred-By, and Replaces when
  the Refer-To URI carries one) and NOTIFYs its progress until the final
  status ends the subscription (``terminated;reason=noresource``).
* :func:`handle_in_dialog`: the UserAgent's hook for REFER, NOTIFY and INFO
  received in a call; :func:`incoming_replaces`: the default for a call that
  replaces one of ours (answer it, BYE the old one once the new is confirmed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from txsipua.core.refer import ReferClient, ReferNotifier, ReferReport
from txsipua.errors import LocalProtocolError, ParseError, SIPError, TransferFailed
from txsipua.media.dtmf_info import INFO_DTMF_TYPES, digits_of_info
from txsipua.sip.event_headers import EventHeader, Replaces, replaces_of_uri_header
from txsipua.sip.message import Request, Response, reason_phrase
from txsipua.sip.sipfrag import StatusFragment
from txsipua.sip.uri import AbsoluteURI, SipURI
from txsipua.sip.values import NameAddr

if TYPE_CHECKING:
    from txsipua.ua.call import Call, IncomingCall, Responder
    from txsipua.ua.useragent import UserAgent

log = Logger()


def _ignore_failure(f: Any) -> None:
    log.info("transfer: {error}", error=f.getErrorMessage())


class Transfer:
    """A transfer we asked for: one REFER sent in :attr:`call` (RFC 3515 §2.4).

    Attributes:
        call: the call being transferred.
        target: the Refer-To URI (with its ``Replaces`` header for an attended transfer).
        accepted: fires with the REFER's 2xx :class:`~txsipua.sip.message.Response`;
            errbacks with :class:`~txsipua.errors.TransferFailed` (3xx-6xx) or
            the REFER's failure (timeout, authentication...); that failure
            is also ``done``'s, so an errback on ``done`` handles both.
        done: fires with the final :class:`~txsipua.sip.sipfrag.StatusFragment`
            (2xx) once the transferee's INVITE succeeded; errbacks with
            :class:`~txsipua.errors.TransferFailed` otherwise (its ``status`` 0
            when no final NOTIFY came in time or the call ended first).
        on_progress: optional callable taking each
            :class:`~txsipua.core.refer.ReferReport` (accepted, progress,
            succeeded, failed) as it happens.
        reports: every report so far.
        hangup_on_success: hang the call up once the transfer succeeded.
    """

    def __init__(self, call: Call, target: SipURI, hangup_on_success: bool = True) -> None:
        self.call = call
        self.target = target
        self.hangup_on_success = hangup_on_success
        self.accepted: defer.Deferred[Response] = defer.Deferred()
        self.done: defer.Deferred[StatusFragment] = defer.Deferred()
        self.accepted.addErrback(lambda f: None if self.done.called else f)  # done carries the failure too
        self.on_progress: Callable[[ReferReport], object] | None = None
        self.reports: list[ReferReport] = []
        self.client: ReferClient | None = None
        self._timer: Any = None

    def __await__(self) -> Any:
        """``await transfer``: the final :class:`~txsipua.sip.sipfrag.StatusFragment` (raises as ``done`` fails)."""
        return self.done.__await__()

    def start(self) -> Transfer:
        """Send the REFER (RFC 3515 §2.4.1)."""
        call = self.call
        ua = call.ua
        session = call.session
        if session is None:
            raise LocalProtocolError("cannot transfer a call without a dialog")
        acct = ua.account
        referred_by = acct.identity if acct is not None else NameAddr(ua.core.contact_uri())
        headers = [("Refer-To", f"<{self.target}>"), ("Referred-By", f"<{referred_by.uri}>"),
                   ("Contact", ua.core.contact_value())]
        response: defer.Deferred[Response] = defer.Deferred()

        def go(now: float) -> None:
            op = session.request("REFER", now, headers=headers)
            op.user_data = response
            self.client = ReferClient(op.request.cseq.seq)

        response.addCallbacks(self._refer_answered, self._refer_failed)
        ua.when_located(session, go).addErrback(self._refer_failed)
        return self

    # ------------------------------------------------------------ inputs
    def _refer_answered(self, response: Response) -> None:
        client = self.client
        if client is None:
            return
        client.refer_cseq = response.cseq.seq  # a challenged REFER was sent again with CSeq + 1
        client.on_response(response, self.call.ua.reactor.seconds())
        self._settle()

    def _refer_failed(self, failure: Any) -> None:
        client = self.client
        if client is None:
            if not self.done.called:
                self.done.errback(failure)
            return
        client.on_response(None, self.call.ua.reactor.seconds(), failure.getErrorMessage())
        self._settle(failure)

    def notify(self, request: Request, respond: Responder) -> None:
        """A NOTIFY of our REFER's subscription arrived (RFC 3515 §2.4.5): answer and report it."""
        client = self.client
        if client is None:
            respond(481)
            return
        try:
            event = EventHeader.parse(request.headers.get("Event") or "")
        except ParseError:
            respond(400)
            return
        if event.id is not None and event.id != str(client.refer_cseq):
            respond(481)
            return
        respond(client.on_notify(request, self.call.ua.reactor.seconds()))
        self._settle()

    def call_ended(self) -> None:
        """The call ended: a transfer not yet done has failed."""
        if self.client is not None:
            self.client.call_ended()
            self._settle()

    def _fire_timer(self) -> None:
        self._timer = None
        if self.client is not None:
            self.client.handle_timer(self.call.ua.reactor.seconds())
            self._settle()

    # ------------------------------------------------------------ outputs
    def _settle(self, failure: Any = None) -> None:
        client = self.client
        assert client is not None
        reports, client.reports = client.reports, []
        for report in reports:
            self.reports.append(report)
            if self.on_progress is not None:
                try:
                    self.on_progress(report)
                except Exception:
                    log.failure("on_progress failed")
            self._deliver(report, failure)
        self._arm(client)

    def _deliver(self, report: ReferReport, failure: Any) -> None:
        frag = StatusFragment(report.status, report.reason)
        if report.kind == "accepted" and not self.accepted.called:
            self.accepted.callback(self._last_response(frag))
        elif report.kind == "succeeded":
            if not self.accepted.called:
                self.accepted.callback(self._last_response(frag))
            if not self.done.called:
                self.done.callback(frag)
            if self.hangup_on_success:
                self.call.hangup()
        elif report.kind == "failed":
            error = failure.value if failure is not None else TransferFailed(frag, "transfer")
            if not self.done.called:
                self.done.errback(error)
            if not self.accepted.called:
                self.accepted.errback(error)
        if self.done.called and self.call.transfer_in_progress is self:
            self.call.transfer_in_progress = None

    @staticmethod
    def _last_response(frag: StatusFragment) -> Response:
        return Response(frag.status, frag.reason or None)

    def _arm(self, client: ReferClient) -> None:
        reactor = self.call.ua.reactor
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if client.deadline is not None and not client.done:
            self._timer = reactor.callLater(max(0.0, client.deadline - reactor.seconds()), self._fire_timer)


def transfer_target(target: str | SipURI, replaces: Call | None) -> SipURI:
    """The Refer-To URI: ``target``, with the Replaces of ``replaces``' dialog for an attended transfer.

    Raises:
        ParseError: ``target`` is not a SIP URI.
        LocalProtocolError: ``replaces`` has no dialog yet.
    """
    uri = target if isinstance(target, SipURI) else SipURI.parse(target)
    if replaces is None:
        return uri
    session = replaces.session
    dialog = session.dialog if session is not None else None
    if dialog is None:
        raise LocalProtocolError("an attended transfer needs the other call's dialog")
    value = Replaces.for_dialog(dialog.call_id, dialog.local_tag, dialog.remote_tag)
    return uri.replace(headers={**uri.headers, "Replaces": str(value)})


class ReferRequest:
    """A REFER received in a call, awaiting the application's decision (``UserAgent.on_refer``).

    Attributes:
        call: the call it came in.
        request: the REFER.
        target: the URI to call (the Refer-To URI without its headers).
        replaces: the Replaces its Refer-To URI carries, or ``None``.
        referred_by: the Referred-By value to send on (RFC 3892), else the REFER's From.
        new_call: the :class:`~txsipua.ua.call.Call` placed once accepted, else ``None``.
        notifier: the :class:`~txsipua.core.refer.ReferNotifier` once accepted.
    """

    def __init__(self, call: Call, request: Request, respond: Responder, target: SipURI,
                 replaces: Replaces | None, referred_by: str) -> None:
        self.call = call
        self.request = request
        self.respond = respond
        self.target = target
        self.replaces = replaces
        self.referred_by = referred_by
        self.new_call: Call | None = None
        self.notifier: ReferNotifier | None = None
        self._timer: Any = None
        self.decided = False

    def accept(self) -> Call | None:
        """Accept: 202, NOTIFY 100 Trying, and call the target (RFC 3515 §2.4.2-§2.4.4).

        Returns the new :class:`~txsipua.ua.call.Call`, or ``None`` when it could not be placed
        (then the final NOTIFY says 503, or the error's status, with the reason, which is logged).
        A user agent without an account cannot place the call at all: the REFER
        is then refused up front (603, "no account to place the transferred call",
        logged) and ``None`` returned.

        Raises:
            LocalProtocolError: already decided.
        """
        if self.decided:
            raise LocalProtocolError("the REFER was answered already")
        ua = self.call.ua
        if ua.account is None:
            log.warn("REFER to {target} refused: no account to place the transferred call", target=self.target)
            self.reject(603, "Decline (no account to place the transferred call)")
            return None
        self.decided = True
        now = ua.reactor.seconds()
        self.respond(202)
        notifier = self.notifier = ReferNotifier(self.request.cseq.seq, now)
        self._send(notifier.first(now))
        self._arm()
        headers = [("Referred-By", self.referred_by)]
        if self.replaces is not None:
            headers.append(("Replaces", str(self.replaces)))
        try:
            new_call = ua.place_call(self.target, headers=headers)
        except SIPError as e:
            status = getattr(e, "status", 503)
            code = status if isinstance(status, int) and status >= 300 else 503
            log.warn("the transferred call to {target} cannot be placed: {err}", target=self.target, err=e)
            self._progress(code, f"{reason_phrase(code)} (cannot place the transferred call: {e})")
            return None
        self.new_call = new_call
        new_call.on_progress = lambda response: self._progress(response.status, response.reason)
        new_call.answered.addCallbacks(lambda _: self._progress(200, "OK"), self._failed)
        return new_call

    def reject(self, status: int = 603, reason: str | None = None) -> None:
        """Refuse the REFER (603 Declined by default; RFC 3515 §2.4.2).

        Raises:
            LocalProtocolError: already decided.
        """
        if self.decided:
            raise LocalProtocolError("the REFER was answered already")
        self.decided = True
        self.respond(status, reason)

    def _failed(self, failure: Any) -> None:
        status = getattr(failure.value, "status", None)
        self._progress(status if isinstance(status, int) and status >= 300 else 503,
                       getattr(failure.value, "reason", "") or "")

    def _progress(self, status: int, reason: str) -> None:
        notifier = self.notifier
        if notifier is None:
            return
        order = notifier.progress(status, reason, self.call.ua.reactor.seconds())
        if order is not None:
            self._send(order)
            self._arm()

    def _fire_timer(self) -> None:
        self._timer = None
        if self.notifier is not None:
            order = self.notifier.handle_timer(self.call.ua.reactor.seconds())
            if order is not None:
                self._send(order)

    def _arm(self) -> None:
        reactor = self.call.ua.reactor
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        notifier = self.notifier
        if notifier is not None and notifier.deadline is not None:
            self._timer = reactor.callLater(max(0.0, notifier.deadline - reactor.seconds()), self._fire_timer)

    def _send(self, order: Any) -> None:
        call = self.call
        if call.ended.called:
            return  # the dialog is gone: no NOTIFY can be sent (RFC 3515 §2.4.7)
        headers = [*order.headers, ("Contact", call.ua.core.contact_value())]
        call.request("NOTIFY", body=order.body, content_type=order.content_type,
                     headers=headers).addErrback(_ignore_failure)


def _refer_request(call: Call, request: Request, respond: Responder) -> ReferRequest | None:
    """The REFER as a :class:`ReferRequest`, or ``None`` after answering why it is refused."""
    values = request.headers.get_all("Refer-To")
    if len(values) != 1:
        respond(400, "Bad Request (a REFER needs exactly one Refer-To)")
        return None
    try:
        uri = NameAddr.parse(values[0]).uri
        if isinstance(uri, AbsoluteURI) or uri.scheme == "tel":
            respond(416, "Unsupported URI Scheme (Refer-To)")
            return None
        replaces = None
        header = next((v for k, v in uri.headers.items() if k.lower() == "replaces"), None)
        if header is not None:
            replaces = replaces_of_uri_header(header)
        referred_by = request.headers.get("Referred-By") or str(request.from_.without_tag())
    except ParseError as e:
        respond(400, f"Bad Request ({e.detail})")
        return None
    params = {k: v for k, v in uri.params.items() if k != "method"}
    return ReferRequest(call, request, respond, uri.replace(headers={}, params=params), replaces, referred_by)


def handle_in_dialog(ua: UserAgent, call: Call, request: Request, respond: Responder) -> bool:
    """REFER, NOTIFY of our transfer, INFO with DTMF received in ``call``: answered here (True), else False.

    An INFO carrying DTMF has its digits delivered (:meth:`Call.dtmf_received
    <txsipua.ua.call.Call.dtmf_received>`) either way; it is answered here
    (200, or 400/415 for a bad body) only when the application set no
    ``UserAgent.on_request``, which otherwise answers it as before.
    """
    method = request.method
    if method == "REFER":
        refer = _refer_request(call, request, respond)
        if refer is None:
            return True
        hook = ua.on_refer
        if hook is None:
            refer.accept()
            return True
        try:
            hook(refer)
        except Exception:
            log.failure("on_refer failed; the REFER is refused with 500")
            if not refer.decided:
                refer.reject(500)
        return True
    if method == "NOTIFY":
        transfer = call.transfer_in_progress
        event = (request.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        if event != "refer":
            return False
        if transfer is None:
            respond(481)
            return True
        transfer.notify(request, respond)
        return True
    if method == "INFO":
        ctype = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype not in INFO_DTMF_TYPES:
            return False
        try:
            digits = digits_of_info(ctype, request.body)
        except ParseError as e:
            if ua.on_request is not None:
                return False  # the application answers it, as it always did
            respond(e.status, f"Bad DTMF ({e.detail})" if e.status == 400 else None)
            return True
        for digit in digits:
            call.dtmf_received(digit)
        if ua.on_request is not None:
            return False  # the digits are delivered; the application still answers the INFO
        respond(200)
        return True
    return False


def incoming_replaces(incoming: IncomingCall, auto: bool) -> None:
    """An incoming call replaces ``incoming.replaces``: BYE it once the new call is confirmed (RFC 3891 §3).

    With ``auto`` (no ``on_incoming_call``) the new call is answered as well:
    the user accepted the call it replaces already.
    """
    old = incoming.replaces
    if old is None:
        return

    def confirmed(_: Any) -> None:
        if not old.ended.called:
            old.hangup()

    incoming.call.confirmed.addCallback(confirmed)
    if auto:
        incoming.ring()
        incoming.answer()


__all__ = ["ReferRequest", "Transfer", "handle_in_dialog", "incoming_replaces", "transfer_target"]
