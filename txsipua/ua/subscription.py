"""Subscriptions in the user API: :class:`Subscription` over the core's subscriber
(:mod:`txsipua.core.subscription`, RFC 6665), and the NOTIFY documents read into values.

``ua.subscribe("sip:alice@example.com", "message-summary")`` sends SUBSCRIBE
and returns a :class:`Subscription` at once; ``started`` fires with the 2xx,
``on_notify`` hears each NOTIFY as a :class:`Notification` (its ``document``
a :class:`~txsipua.sip.message_summary.MessageSummary` for
``message-summary`` (RFC 3842), a :class:`~txsipua.sip.dialog_info.DialogInfo`
for ``dialog`` (RFC 4235), else the raw body), ``ended`` fires with the reason
the subscription ended, and ``stop()`` unsubscribes (Expires: 0).  The core
refreshes the subscription before it expires.

An unsolicited ``message-summary`` NOTIFY (out of any dialog, the way many
registrars and voicemail servers send MWI) is read the same way and given to
``UserAgent.on_mwi`` (:func:`unsolicited_notify`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from txsipua.errors import LocalProtocolError, ParseError
from txsipua.sip.event_documents import DOCUMENT_TYPES, read_document
from txsipua.sip.event_headers import EventHeader, SubscriptionState
from txsipua.sip.message import Request, Response
from txsipua.sip.message_summary import parse_message_summary

if TYPE_CHECKING:
    from txsipua.core.subscription import SubscriptionClient
    from txsipua.ua.call import Responder
    from txsipua.ua.useragent import UserAgent

log = Logger()

@attrs.frozen
class Notification:
    """One NOTIFY, read.

    Attributes:
        state: its :class:`~txsipua.sip.event_headers.SubscriptionState`.
        document: the body as a value (see :func:`read_document`), or ``None``.
        error: the :class:`~txsipua.errors.ParseError` when the body did not parse, else ``None``.
        request: the NOTIFY.
    """

    state: SubscriptionState
    document: Any
    error: ParseError | None
    request: Request


def notification(request: Request, package: str, state: SubscriptionState) -> Notification:
    """A NOTIFY read into a :class:`Notification` (never raises for a bad body)."""
    try:
        return Notification(state, read_document(package, request.body, request.content_type), None, request)
    except ParseError as e:
        return Notification(state, None, e, request)


class Subscription:
    """A subscription we hold (RFC 6665); made by ``UserAgent.subscribe``.

    Attributes:
        event: the event package.
        target: the URI subscribed to.
        started: fires with the SUBSCRIBE's 2xx; errbacks with
            :class:`~txsipua.errors.SubscriptionFailed` (3xx-6xx), a timeout,
            an authentication or resolution error.
        ended: fires with the reason the subscription ended (the terminating
            NOTIFY's reason, ``"timeout"``, ``"unsubscribed"``, ``"rejected"``, ``"error"``).
        on_notify: optional callable taking each :class:`Notification`.
        notifications: every notification so far.
        retry_after: the ``retry-after`` the notifier gave when it ended it, or ``None``.
        client: the core :class:`~txsipua.core.subscription.SubscriptionClient` once sent.
    """

    def __init__(self, ua: UserAgent, event: str, target: Any) -> None:
        self.ua = ua
        self.event = event
        self.target = target
        self.started: defer.Deferred[Response] = defer.Deferred()
        self.started.addErrback(lambda f: None if self.ended.called else f)  # ended tells too
        self.ended: defer.Deferred[str] = defer.Deferred()
        self.on_notify: Callable[[Notification], object] | None = None
        self.notifications: list[Notification] = []
        self.retry_after: int | None = None
        self.client: SubscriptionClient | None = None

    @property
    def state(self) -> str:
        """The subscriber's phase (``"subscribing"``, ``"active"``...; ``"locating"`` before it is sent)."""
        return self.client.state.value if self.client is not None else "locating"

    def stop(self) -> defer.Deferred[str]:
        """Unsubscribe (SUBSCRIBE with Expires: 0, RFC 6665 §4.1.2.3); fires with the end reason."""
        client = self.client
        if self.ended.called or client is None:
            if not self.ended.called:
                self.ended.callback("unsubscribed")
            return defer.succeed("unsubscribed")
        d: defer.Deferred[str] = defer.Deferred()

        def relay(reason: Any) -> Any:
            d.callback(reason if isinstance(reason, str) else "error")
            return reason

        self.ended.addBoth(relay)
        self.ua.drive(lambda now: self.ua.core.unsubscribe(client, now))
        return d

    def abandon(self) -> None:
        """End at once, sending nothing (``UserAgent.stop`` when its grace ran out)."""
        client = self.client
        if client is None:
            self.finished("abandoned", None, None)
        elif not self.ended.called:
            self.ua.drive(client.abandon)

    # -------------------------------------------------- from the user agent
    def accepted(self, response: Response) -> None:
        """The SUBSCRIBE's 2xx arrived."""
        if not self.started.called:
            self.started.callback(response)

    def notified(self, request: Request, state: SubscriptionState) -> None:
        """A NOTIFY arrived (answered 200 by the core: its body, if any, is readable)."""
        note = notification(request, self.event, state)
        self.notifications.append(note)
        if self.on_notify is not None:
            try:
                self.on_notify(note)
            except Exception:
                log.failure("on_notify failed")

    def finished(self, reason: str, retry_after: int | None, error: Exception | None) -> None:
        """The subscription is over."""
        self.retry_after = retry_after
        self.ua.subscriptions.discard(self)
        if not self.started.called:
            if error is not None:
                self.started.errback(error)
            else:
                self.started.errback(LocalProtocolError(f"subscription ended before its 2xx ({reason})"))
        if not self.ended.called:
            self.ended.callback(reason)

    def __repr__(self) -> str:
        return f"<Subscription {self.event} {self.target} {self.state}>"


def unsolicited_notify(ua: UserAgent, request: Request, respond: Responder) -> bool:
    """An out-of-dialog NOTIFY: a ``message-summary`` one is answered and given to ``ua.on_mwi``.

    Returns False for other packages (left to ``on_request`` as before).
    """
    try:
        event = EventHeader.parse(request.headers.get("Event") or "")
    except ParseError:
        return False
    if event.package != "message-summary":
        return False
    try:
        summary = parse_message_summary(request.body)
    except ParseError as e:
        respond(400, f"Bad Request ({e.detail})")
        return True
    respond(200)
    if ua.on_mwi is not None:
        try:
            ua.on_mwi(summary, request)
        except Exception:
            log.failure("on_mwi failed")
    return True


__all__ = ["DOCUMENT_TYPES", "Notification", "Subscription", "notification", "read_document", "unsolicited_notify"]
