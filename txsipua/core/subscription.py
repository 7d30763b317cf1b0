"""The subscriber: one SUBSCRIBE/NOTIFY client usage (RFC 6665 §4.1), as a table.

Theory of operation
-------------------
A :class:`SubscriptionClient` sends SUBSCRIBE for one event package
(``message-summary``, ``dialog``...) with an Expires, and lives through the
NOTIFYs the notifier sends.  The dialog is made by the SUBSCRIBE's 2xx, or
by the first NOTIFY when it overtakes the 2xx (RFC 6665 §4.1.2.4); a NOTIFY
is found by its To tag (our From tag) and Call-ID in the core's subscription
table, answered 200 and reported
(:class:`~txsipua.core.events.NotifyReceived`); one for a subscription that
is over gets 481.  The granted expiry (the 2xx's Expires, then each
NOTIFY's ``expires``) arms two deadlines: the refresh, :func:`refresh_delay`
before the end, and the expiry itself.  :meth:`SubscriptionClient.unsubscribe`
sends SUBSCRIBE with ``Expires: 0`` and waits (64*T1 at most) for the final
NOTIFY (§4.1.2.3).  A NOTIFY with ``Subscription-State: terminated`` ends the
subscription (its ``reason`` and ``retry-after`` are reported in
:class:`~txsipua.core.events.SubscriptionEnded`).  SUBSCRIBE challenged with
401/407 is answered like every request (:mod:`txsipua.core.uac`).

The table::

        start(): SUBSCRIBE
             |
             v           NOTIFY active: report  --------------------+
       +-------------+   NOTIFY pending: report -------+            |
       | SUBSCRIBING |---2xx: arm deadlines--+          |            |
       +-------------+                       v          v            v
         | 3xx-6xx, no response   +---------+  NOTIFY active   +--------+
         | unsubscribe():         | PENDING |----------------->| ACTIVE |<-+
         |   end locally          +---------+<-----------------+--------+  |
         v                         |   refresh due: SUBSCRIBE   |   NOTIFY pending
     TERMINATED                    +----------+  +--------------+          |
                                              v  v                         |
                                        +------------+  2xx, or no response|
                                        | REFRESHING |---------------------+
                                        +------------+  3xx-6xx: end "rejected"
        from PENDING, ACTIVE, REFRESHING:
          NOTIFY terminated: report, end with its reason       -> TERMINATED
          expiry reached: end "timeout"                        -> TERMINATED
          unsubscribe(): SUBSCRIBE Expires: 0, wait 64*T1      -> UNSUBSCRIBING
        UNSUBSCRIBING: NOTIFY active/pending: report; NOTIFY terminated,
          3xx-6xx, no response, 64*T1 passed: end "unsubscribed" -> TERMINATED
        any phase but TERMINATED: abandon(): the SUBSCRIBE in flight is
          destroyed, nothing is sent, end "abandoned"              -> TERMINATED

An input absent from the table is ignored and counted in the core's
``stats["ignored"]``; ``unsubscribe()`` once over does nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from txsipua.core import events as ev
from txsipua.core.dialog import Dialog, DialogState
from txsipua.core.invite import hop_host_of
from txsipua.core.uac import ClientOperation
from txsipua.errors import ParseError, RemoteProtocolError, ResolutionError, SubscriptionFailed
from txsipua.sip.event_documents import document_refusal
from txsipua.sip.event_headers import EventHeader, SubscriptionState
from txsipua.sip.message import Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.context import SessionHost
    from txsipua.core.transaction import ServerTransaction
    from txsipua.core.transport import Address


def refresh_delay(granted: int) -> float:
    """Seconds after a grant of ``granted`` seconds to refresh: half-way for short grants,
    else 32 s before the end (time for a retransmitted SUBSCRIBE over UDP, 64*T1 = 32 s)."""
    return granted - min(granted / 2, 32.0)


class SubState(enum.Enum):
    """The subscriber's phases (the figure)."""

    __hash__ = object.__hash__

    SUBSCRIBING = "subscribing"
    PENDING = "pending"
    ACTIVE = "active"
    REFRESHING = "refreshing"
    UNSUBSCRIBING = "unsubscribing"
    TERMINATED = "terminated"


class SubInput(enum.Enum):
    """What happens to a subscription."""

    __hash__ = object.__hash__

    ACCEPTED = "SUBSCRIBE 2xx"
    REJECTED = "SUBSCRIBE 3xx-6xx"
    NO_RESPONSE = "SUBSCRIBE timed out, could not be sent or authenticated"
    NOTIFY_ACTIVE = "NOTIFY active"
    NOTIFY_PENDING = "NOTIFY pending"
    NOTIFY_TERMINATED = "NOTIFY terminated"
    REFRESH_DUE = "refresh deadline"
    EXPIRED = "expiry reached"
    UNSUBSCRIBE = "unsubscribe()"
    ABANDON = "abandon(): the user agent stops"


class SubAction(enum.Enum):
    """Side effects (the value names the method of :class:`SubscriptionClient`)."""

    __hash__ = object.__hash__

    NONE = "a_none"
    ACCEPTED = "a_accepted"
    FAIL = "a_fail"
    REPORT = "a_report"
    REPORT_END = "a_report_end"
    REFRESH = "a_refresh"
    REFRESHED = "a_refreshed"
    END_REJECTED = "a_end_rejected"
    END_TIMEOUT = "a_end_timeout"
    END_LOCAL = "a_end_local"
    UNSUBSCRIBE = "a_unsubscribe"
    WAIT_FINAL = "a_wait_final"
    END_UNSUBSCRIBED = "a_end_unsubscribed"
    END_ABANDONED = "a_end_abandoned"


S = SubState
I = SubInput  # noqa: E741
A = SubAction
_LIVE = (S.PENDING, S.ACTIVE, S.REFRESHING)

SUBSCRIPTION_TABLE: dict[tuple[SubState, SubInput], tuple[SubAction, SubState]] = {
    (S.SUBSCRIBING, I.ACCEPTED): (A.ACCEPTED, S.PENDING),
    (S.SUBSCRIBING, I.REJECTED): (A.FAIL, S.TERMINATED),
    (S.SUBSCRIBING, I.NO_RESPONSE): (A.FAIL, S.TERMINATED),
    (S.SUBSCRIBING, I.UNSUBSCRIBE): (A.END_LOCAL, S.TERMINATED),
    (S.SUBSCRIBING, I.NOTIFY_ACTIVE): (A.REPORT, S.ACTIVE),
    (S.SUBSCRIBING, I.NOTIFY_PENDING): (A.REPORT, S.PENDING),
    (S.SUBSCRIBING, I.NOTIFY_TERMINATED): (A.REPORT_END, S.TERMINATED),
    (S.PENDING, I.ACCEPTED): (A.ACCEPTED, S.PENDING),  # the 2xx after a NOTIFY that overtook it
    (S.ACTIVE, I.ACCEPTED): (A.ACCEPTED, S.ACTIVE),
    (S.PENDING, I.NOTIFY_ACTIVE): (A.REPORT, S.ACTIVE),
    (S.PENDING, I.NOTIFY_PENDING): (A.REPORT, S.PENDING),
    (S.ACTIVE, I.NOTIFY_ACTIVE): (A.REPORT, S.ACTIVE),
    (S.ACTIVE, I.NOTIFY_PENDING): (A.REPORT, S.PENDING),
    (S.REFRESHING, I.NOTIFY_ACTIVE): (A.REPORT, S.REFRESHING),
    (S.REFRESHING, I.NOTIFY_PENDING): (A.REPORT, S.REFRESHING),
    (S.PENDING, I.REFRESH_DUE): (A.REFRESH, S.REFRESHING),
    (S.ACTIVE, I.REFRESH_DUE): (A.REFRESH, S.REFRESHING),
    (S.REFRESHING, I.ACCEPTED): (A.REFRESHED, S.ACTIVE),
    (S.REFRESHING, I.NO_RESPONSE): (A.NONE, S.ACTIVE),  # the expiry still ends it if no refresh works
    (S.REFRESHING, I.REJECTED): (A.END_REJECTED, S.TERMINATED),
    **{(s, I.NOTIFY_TERMINATED): (A.REPORT_END, S.TERMINATED) for s in _LIVE},
    **{(s, I.EXPIRED): (A.END_TIMEOUT, S.TERMINATED) for s in _LIVE},
    **{(s, I.UNSUBSCRIBE): (A.UNSUBSCRIBE, S.UNSUBSCRIBING) for s in _LIVE},
    (S.UNSUBSCRIBING, I.NOTIFY_ACTIVE): (A.REPORT, S.UNSUBSCRIBING),
    (S.UNSUBSCRIBING, I.NOTIFY_PENDING): (A.REPORT, S.UNSUBSCRIBING),
    (S.UNSUBSCRIBING, I.ACCEPTED): (A.WAIT_FINAL, S.UNSUBSCRIBING),
    (S.UNSUBSCRIBING, I.NOTIFY_TERMINATED): (A.REPORT_END, S.TERMINATED),
    **{(S.UNSUBSCRIBING, i): (A.END_UNSUBSCRIBED, S.TERMINATED)
       for i in (I.REJECTED, I.NO_RESPONSE, I.EXPIRED)},
    **{(s, I.ABANDON): (A.END_ABANDONED, S.TERMINATED) for s in SubState if s is not S.TERMINATED},
}
"""The subscriber's table (the figure in the module docstring)."""


class SubscriptionClient:
    """One subscription we hold (RFC 6665 §4.1); see the module docstring.

    Args:
        host: the core seam.
        request: the initial SUBSCRIBE (from ``UserAgentCore.new_request``,
            with Event and Expires).
        destination: the next hop's address.
        hop_host: the next hop's host as named (digest-leak guard).

    Attributes:
        state: the :class:`SubState`.
        event: the Event of the subscription.
        expires: the expiry asked for, seconds.
        dialog: the subscription's dialog, once made.
        subscription_state: the last Subscription-State received, or ``None``.
        user_data: free for the application.
    """

    TABLE = SUBSCRIPTION_TABLE

    def __init__(self, host: SessionHost, request: Request, destination: Address, hop_host: str = "") -> None:
        self.host = host
        self.request = request
        self.destination = destination
        self.hop_host = hop_host
        self.state = SubState.SUBSCRIBING
        self.event = EventHeader.parse(request.headers.get("Event") or "")
        self.expires = int(request.headers.get("Expires") or "3600")
        self.dialog: Dialog | None = None
        self.subscription_state: SubscriptionState | None = None
        self.user_data: Any = None
        self._operation: ClientOperation | None = None
        self._end: tuple[str, int | None, Exception | None] = ("", None, None)
        self._finished = False
        self.key = (request.call_id, request.from_tag or "")

    # ------------------------------------------------------------ machine
    def step(self, inp: SubInput, now: float, arg: Any = None) -> bool:
        """Feed one input (the table decides); False when it is absent from the table (ignored)."""
        entry = self.TABLE.get((self.state, inp))
        if entry is None:
            self.host.stats["ignored"] += 1
            return False
        action, self.state = entry
        getattr(self, action.value)(now, arg)
        if self.state is SubState.TERMINATED and not self._finished:
            self._finished = True  # an action may have fed a further input that ended it already
            self._finish()
        return True

    # ----------------------------------------------------------- orders
    def start(self, now: float) -> None:
        """Send the SUBSCRIBE (the core enters the subscription in its table)."""
        self.host.subscriptions[self.key] = self
        self._send(self.request, self.destination, self.hop_host, None, now)

    def unsubscribe(self, now: float) -> None:
        """End the subscription: SUBSCRIBE with Expires: 0, then the final NOTIFY (§4.1.2.3)."""
        self.step(SubInput.UNSUBSCRIBE, now)

    def abandon(self, now: float) -> None:
        """End at once without sending anything (the user agent stops): reason ``"abandoned"``."""
        self.step(SubInput.ABANDON, now)

    # ---------------------------------------------------- from the core
    def on_notify(self, request: Request, transaction: ServerTransaction, now: float) -> None:
        """A NOTIFY whose To tag and Call-ID are ours (§4.1.3), from the core."""
        host = self.host
        try:
            event = EventHeader.parse(request.headers.get("Event") or "")
            state = SubscriptionState.parse(request.headers.get("Subscription-State") or "")
        except ParseError as e:
            host.respond(transaction, host.make_response(request, 400, f"Bad Request ({e.detail})"), now)
            return
        if not event.matches(self.event):
            host.respond(transaction, host.make_response(request, 489), now)
            return
        if self.state is SubState.TERMINATED:
            host.respond(transaction, host.make_response(request, 481), now)
            return
        remote_tag = request.from_tag or ""
        if self.dialog is None:
            self.dialog = self._dialog_from_notify(request)
        elif self.dialog.remote_tag != remote_tag:
            # a second notifier (a forked SUBSCRIBE): we keep the first one (§4.1.2.4)
            host.respond(transaction, host.make_response(request, 481), now)
            return
        try:
            self.dialog.check_request(request)
        except RemoteProtocolError as e:
            host.respond(transaction, host.make_response(request, e.status, e.detail), now)
            return
        self.dialog.refresh_target(request)
        refused = document_refusal(request, self.event.package)
        if refused is not None:  # a body we cannot read: 415 or 400, not reported (RFC 6665 §4.1.3)
            status, reason, headers = refused
            host.respond(transaction, host.make_response(request, status, reason, headers=headers), now)
            return
        host.respond(transaction, host.make_response(request, 200), now)
        self.subscription_state = state
        if state.state == "terminated":
            self._end = (state.reason or "terminated", state.retry_after, None)
            self.step(SubInput.NOTIFY_TERMINATED, now, request)
            return
        if state.expires is not None and self.state is not SubState.UNSUBSCRIBING:
            self._arm(state.expires, now)
        inp = SubInput.NOTIFY_ACTIVE if state.state == "active" else SubInput.NOTIFY_PENDING
        self.step(inp, now, request)

    # -------------------------------------------- outcomes of SUBSCRIBE
    def operation_provisional(self, operation: ClientOperation, response: Response, now: float) -> None:
        """A 1xx to a SUBSCRIBE: nothing."""

    def operation_final(self, operation: ClientOperation, response: Response, now: float) -> None:
        """The final response of our SUBSCRIBE."""
        if operation is not self._operation:
            return
        self._operation = None
        if 200 <= response.status < 300:
            if self.dialog is None:
                try:
                    self.dialog = Dialog.from_uac_response(operation.request, response)
                except (RemoteProtocolError, ParseError) as e:
                    self._end = ("error", None, e)
                    self.step(SubInput.NO_RESPONSE, now)
                    return
            self.step(SubInput.ACCEPTED, now, response)
        else:
            retry = response.headers.get("Retry-After") or ""
            self._end = ("rejected", int(retry) if retry.isdigit() else None,
                         SubscriptionFailed(response, "SUBSCRIBE"))
            self.step(SubInput.REJECTED, now, response)

    def operation_failed(self, operation: ClientOperation, error: Exception, now: float) -> None:
        """Our SUBSCRIBE got no usable response."""
        if operation is not self._operation:
            return
        self._operation = None
        self._end = ("error", None, error)
        self.step(SubInput.NO_RESPONSE, now)

    # ------------------------------------------------------------ actions
    def a_none(self, now: float, arg: Any) -> None:
        """Nothing."""

    def a_accepted(self, now: float, response: Response) -> None:
        """The SUBSCRIBE's 2xx: arm the deadlines with its Expires, report it."""
        self._arm(_granted(response, self.expires), now)
        self.host.emit(ev.SubscriptionAccepted(self, response))

    def a_refreshed(self, now: float, response: Response) -> None:
        """A refresh's 2xx: arm the deadlines again."""
        self._arm(_granted(response, self.expires), now)

    def a_fail(self, now: float, arg: Any) -> None:
        """The SUBSCRIBE failed: the end is reported by :meth:`_finish`."""

    def a_report(self, now: float, request: Request) -> None:
        """Report a NOTIFY."""
        assert self.subscription_state is not None
        self.host.emit(ev.NotifyReceived(self, request, self.subscription_state))

    def a_report_end(self, now: float, request: Request) -> None:
        """Report the terminating NOTIFY; the end follows."""
        self.a_report(now, request)

    def a_refresh(self, now: float, arg: Any) -> None:
        """Refresh: SUBSCRIBE again in the dialog with the same Expires."""
        self._send_in_dialog(self.expires, now)

    def a_end_rejected(self, now: float, arg: Any) -> None:
        """A refresh was refused: the subscription is over (its error is kept)."""

    def a_end_timeout(self, now: float, arg: Any) -> None:
        """The expiry passed without a refresh or NOTIFY extending it."""
        self._end = ("timeout", None, None)

    def a_end_local(self, now: float, arg: Any) -> None:
        """Unsubscribed before any answer: stop answering challenges, end here."""
        if self._operation is not None:
            self._operation.stop_retrying()
        self._end = ("unsubscribed", None, None)

    def a_unsubscribe(self, now: float, arg: Any) -> None:
        """SUBSCRIBE with Expires: 0, and wait at most 64*T1 for the final NOTIFY."""
        self.host.cancel(("subscription-refresh", id(self)))
        self._end = ("unsubscribed", None, None)
        self.host.schedule(("subscription-expiry", id(self)), now + self.host.timers.t64, self._expired)
        self._send_in_dialog(0, now)

    def a_end_abandoned(self, now: float, arg: Any) -> None:
        """Given up: the SUBSCRIBE in flight (if any) is destroyed, its answer never heard."""
        op, self._operation = self._operation, None
        if op is not None:
            self.host.abandon(op, now)
        self._end = ("abandoned", None, None)

    def a_wait_final(self, now: float, arg: Any) -> None:
        """The unsubscribe's 2xx: keep waiting for the final NOTIFY."""

    def a_end_unsubscribed(self, now: float, arg: Any) -> None:
        """Unsubscribed without a final NOTIFY."""
        self._end = ("unsubscribed", None, None)

    # ------------------------------------------------------------ helpers
    def _arm(self, granted: int, now: float) -> None:
        host = self.host
        if granted <= 0:
            return
        host.schedule(("subscription-refresh", id(self)), now + refresh_delay(granted), self._refresh_due)
        host.schedule(("subscription-expiry", id(self)), now + granted, self._expired)

    def _refresh_due(self, now: float) -> None:
        self.step(SubInput.REFRESH_DUE, now)

    def _expired(self, now: float) -> None:
        self.step(SubInput.EXPIRED, now)

    def _send(self, request: Request, destination: Address, hop_host: str,
              next_cseq: Callable[[], int] | None, now: float) -> None:
        op = ClientOperation(self.host, request, destination, owner=self, next_cseq=next_cseq, hop_host=hop_host)
        self._operation = op
        op.start(now)

    def _send_in_dialog(self, expires: int, now: float) -> None:
        dialog = self.dialog
        host = self.host
        if dialog is None or dialog.state is DialogState.TERMINATED:
            self.step(SubInput.NO_RESPONSE, now)
            return
        headers = [("Event", str(self.event)), ("Expires", str(expires))]
        accept = self.request.headers.get("Accept")
        if accept:
            headers.append(("Accept", accept))
        if host.user_agent:
            headers.append(("User-Agent", host.user_agent))
        req = dialog.create_request("SUBSCRIBE", via=host.via(""), contact=host.contact_value(), headers=headers)
        hop = dialog.next_hop()
        try:
            dest = host.locate(hop)
        except ResolutionError as e:
            self._end = ("error", None, e)
            self.step(SubInput.NO_RESPONSE, now)
            return
        self._send(req, dest, hop_host_of(hop), dialog.next_seq, now)

    def _dialog_from_notify(self, notify: Request) -> Dialog:
        sub = self.request
        contacts = notify.contact
        return Dialog(
            call_id=sub.call_id, local_tag=sub.from_tag or "", remote_tag=notify.from_tag or "",
            local_seq=sub.cseq.seq, remote_seq=None, local_uri=sub.from_.without_tag(),
            remote_uri=notify.from_.without_tag(),
            remote_target=contacts[0].uri if contacts else sub.uri,
            route_set=[na.uri for na in notify.record_route], secure=sub.uri.scheme == "sips", is_uac=True,
        )

    def _finish(self) -> None:
        host = self.host
        host.cancel(("subscription-refresh", id(self)))
        host.cancel(("subscription-expiry", id(self)))
        if self.dialog is not None:
            self.dialog.terminate()
        if host.subscriptions.get(self.key) is self:  # a late NOTIFY then gets 481 from the core
            del host.subscriptions[self.key]
        reason, retry_after, error = self._end
        host.emit(ev.SubscriptionEnded(self, reason or "terminated", retry_after, error))

    def __repr__(self) -> str:
        return f"<SubscriptionClient {self.event} {self.state.value}>"


def _granted(response: Response, asked: int) -> int:
    value = (response.headers.get("Expires") or "").strip()
    if value.isdigit():
        return min(int(value), asked) if asked else int(value)
    return asked


__all__ = ["SUBSCRIPTION_TABLE", "SubAction", "SubInput", "SubState", "SubscriptionClient", "refresh_delay"]
