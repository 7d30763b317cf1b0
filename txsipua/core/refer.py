"""Transfer by REFER (RFC 3515) and its implicit subscription: both roles, as two tables.

Theory of operation
-------------------
A REFER sent in a call asks the peer (the *transferee*) to send an INVITE
to the Refer-To target; accepting it (202) creates an implicit subscription
to the ``refer`` event in the same dialog, whose NOTIFYs carry a
message/sipfrag status line telling how that INVITE is going (RFC 3515
§2.4.4, §2.4.5).  The subscription ends with a NOTIFY whose
Subscription-State is ``terminated``, normally the one carrying the final
status.

:class:`ReferClient` is the *transferor's* side: it is told what came back
(the REFER's final response, each NOTIFY, a timeout, the end of the call)
and answers each NOTIFY's status (200, or 481 once the subscription is
over, 400 for a body that is not a sipfrag); it reports progress and the
outcome in :attr:`ReferClient.reports`.  A NOTIFY may overtake the 202
(they travel in different transactions), so SENT takes NOTIFYs too::

             REFER sent
                 |
                 v          NOTIFY 1xx: report progress
            +---------+ <-------------+
            |  SENT   | --------------+       any final outcome below
            +---------+                       from SENT as from ACCEPTED
              |     |  REFER 2xx
              |     v             NOTIFY 1xx: report progress
              |  +----------+ <------------+
              |  | ACCEPTED | -------------+
              |  +----------+
              |    |   |   \\  NOTIFY 2xx sipfrag: SUCCEEDED
   REFER 3xx- |    |   |    \\ NOTIFY 3xx-6xx sipfrag, or terminated
   6xx, REFER |    |   |     \\ without a final one: FAILED
   failed:    |    |   | timeout (no final NOTIFY before the
   FAILED     |    |   | subscription expired), call ended: FAILED
              v    v   v
        +-----------+  +--------+
        | SUCCEEDED |  | FAILED |   NOTIFY: 481 (the subscription is over)
        +-----------+  +--------+

:class:`ReferNotifier` is the *transferee's* side: told how our INVITE to
the target goes, it gives the NOTIFY to send each time (Event: ``refer;id=``
the REFER's CSeq, Subscription-State, the sipfrag)::

            REFER accepted (202): NOTIFY "100 Trying", active
                 |
                 v         1xx of our INVITE: NOTIFY it, active
            +--------+ <------------+
            | ACTIVE | -------------+
            +--------+
                 |  final response of our INVITE: NOTIFY it, terminated;reason=noresource
                 |  expiry, or the call ended: NOTIFY the last status, terminated;reason=timeout
                 v                 /  ;reason=noresource
           +------------+
           | TERMINATED |   anything: nothing
           +------------+

Both are pure: no clock (``now`` comes in, deadlines go out through
``deadline``), no sending; :mod:`txsipua.ua.transfer` drives them.
An input absent from a table is ignored and counted in ``ignored``.
"""

from __future__ import annotations

import enum

import attrs

from txsipua.errors import ParseError
from txsipua.sip.event_headers import EventHeader, SubscriptionState
from txsipua.sip.message import Request, Response
from txsipua.sip.sipfrag import StatusFragment, parse_status_fragment

REFER_EXPIRES = 60
"""Seconds the implicit subscription of a REFER we accept lasts (RFC 3515 §2.4.6 leaves it to us)."""

NOTIFY_WAIT = 64.0
"""Seconds a transferor waits after the 202 for the final NOTIFY when no NOTIFY named an expiry."""


class ReferState(enum.Enum):
    """The transferor's phases (the first figure of the module docstring)."""

    __hash__ = object.__hash__

    SENT = "sent"
    ACCEPTED = "accepted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ReferInput(enum.Enum):
    """What happens to a REFER we sent."""

    __hash__ = object.__hash__

    ACCEPTED = "REFER 2xx"
    REJECTED = "REFER 3xx-6xx, or no response"
    PROGRESS = "NOTIFY with a 1xx sipfrag, subscription not terminated"
    SUCCESS = "NOTIFY with a 2xx sipfrag"
    FAILURE = "NOTIFY with a 3xx-6xx sipfrag, or terminated without a final status"
    TIMEOUT = "no final NOTIFY before the subscription expired"
    ENDED = "the call ended"


class ReferAction(enum.Enum):
    """Side effects of :class:`ReferClient` (the value names its method)."""

    __hash__ = object.__hash__

    ACCEPT = "a_accept"
    PROGRESS = "a_progress"
    SUCCEED = "a_succeed"
    FAIL = "a_fail"


_S = ReferState
_I = ReferInput
_A = ReferAction

REFER_TABLE: dict[tuple[ReferState, ReferInput], tuple[ReferAction, ReferState]] = {
    (_S.SENT, _I.ACCEPTED): (_A.ACCEPT, _S.ACCEPTED),
    **{(s, _I.PROGRESS): (_A.PROGRESS, s) for s in (_S.SENT, _S.ACCEPTED)},
    **{(s, _I.SUCCESS): (_A.SUCCEED, _S.SUCCEEDED) for s in (_S.SENT, _S.ACCEPTED)},
    **{(s, i): (_A.FAIL, _S.FAILED) for s in (_S.SENT, _S.ACCEPTED)
       for i in (_I.FAILURE, _I.TIMEOUT, _I.ENDED)},
    (_S.SENT, _I.REJECTED): (_A.FAIL, _S.FAILED),
}
"""The transferor's table (the first figure)."""


@attrs.frozen
class ReferReport:
    """What a :class:`ReferClient` reports.

    Attributes:
        kind: ``"accepted"`` (the REFER's 2xx), ``"progress"`` (a NOTIFY's
            provisional sipfrag), ``"succeeded"`` or ``"failed"``.
        status: the sipfrag's (or REFER response's) status; 0 for a timeout,
            the end of the call or a REFER without response.
        reason: its reason phrase, or why it failed.
    """

    kind: str
    status: int
    reason: str


class ReferClient:
    """The transferor's view of one REFER (see the module docstring).

    Args:
        refer_cseq: the REFER's CSeq number: the ``id`` of its NOTIFYs' Event.

    Attributes:
        state: the :class:`ReferState`.
        reports: what happened, oldest first (drained by the caller).
        deadline: seconds (absolute) by which the final NOTIFY must come, or
            ``None`` while the REFER awaits its response.
        ignored: inputs absent from the table.
    """

    TABLE = REFER_TABLE

    def __init__(self, refer_cseq: int) -> None:
        self.refer_cseq = refer_cseq
        self.state = ReferState.SENT
        self.reports: list[ReferReport] = []
        self.deadline: float | None = None
        self.ignored = 0

    @property
    def done(self) -> bool:
        """True once SUCCEEDED or FAILED."""
        return self.state in (ReferState.SUCCEEDED, ReferState.FAILED)

    def step(self, inp: ReferInput, status: int = 0, reason: str = "") -> bool:
        """Feed one input; False when it is absent from the table (ignored)."""
        entry = self.TABLE.get((self.state, inp))
        if entry is None:
            self.ignored += 1
            return False
        action, self.state = entry
        getattr(self, action.value)(status, reason)
        return True

    # --------------------------------------------------------- inputs
    def on_response(self, response: Response | None, now: float, error: str = "") -> None:
        """The REFER's final response (``None``: it got none; ``error`` says why)."""
        if response is not None and 200 <= response.status < 300:
            self.step(ReferInput.ACCEPTED, response.status, response.reason)
            if self.deadline is None and not self.done:
                self.deadline = now + NOTIFY_WAIT
        elif response is not None:
            self.step(ReferInput.REJECTED, response.status, response.reason)
        else:
            self.step(ReferInput.REJECTED, 0, error or "no response")

    def on_notify(self, request: Request, now: float) -> int:
        """A NOTIFY of this subscription: feed it and return the status to answer it with.

        481 once the subscription is over (RFC 6665 §4.1.3), 489 for another
        event package, 400 for a body that is not a sipfrag or a malformed
        Subscription-State, else 200.  A terminating NOTIFY without a final
        status (a malformed sipfrag, answered 400, or an empty or provisional
        one) ends the transfer as failed with status 0 ("no final status").
        """
        if self.done:
            return 481
        try:
            event = EventHeader.parse(request.headers.get("Event") or "")
            state = SubscriptionState.parse(request.headers.get("Subscription-State") or "")
        except ParseError:
            return 400
        if event.package != "refer":
            return 489
        status = 200
        try:
            frag: StatusFragment | None = parse_status_fragment(request.body)
        except ParseError:
            if state.state != "terminated":
                return 400
            frag = None
            if request.body:
                status = 400  # a final NOTIFY we cannot read: refused, and the transfer has no final status
        if state.expires is not None:
            self.deadline = now + state.expires
        if frag is not None and frag.success:
            self.step(ReferInput.SUCCESS, frag.status, frag.reason)
        elif frag is not None and frag.final:
            self.step(ReferInput.FAILURE, frag.status, frag.reason)
        elif state.state == "terminated":
            self.step(ReferInput.FAILURE, 0, f"subscription terminated ({state.reason or 'no reason'})"
                      + (": malformed message/sipfrag" if status == 400 else ""))
        elif frag is not None:
            self.step(ReferInput.PROGRESS, frag.status, frag.reason)
        return status

    def handle_timer(self, now: float) -> None:
        """The deadline passed without a final NOTIFY."""
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self.step(ReferInput.TIMEOUT, 0, "no final NOTIFY before the subscription expired")

    def call_ended(self) -> None:
        """The call carrying the subscription ended."""
        self.step(ReferInput.ENDED, 0, "the call ended before the transfer completed")

    # -------------------------------------------------------- actions
    def a_accept(self, status: int, reason: str) -> None:
        """The REFER was accepted."""
        self.reports.append(ReferReport("accepted", status, reason))

    def a_progress(self, status: int, reason: str) -> None:
        """A provisional status of the referred INVITE."""
        self.reports.append(ReferReport("progress", status, reason))

    def a_succeed(self, status: int, reason: str) -> None:
        """The referred INVITE succeeded."""
        self.deadline = None
        self.reports.append(ReferReport("succeeded", status, reason))

    def a_fail(self, status: int, reason: str) -> None:
        """The transfer failed."""
        self.deadline = None
        self.reports.append(ReferReport("failed", status, reason))


class NotifierState(enum.Enum):
    """The transferee's phases (the second figure)."""

    __hash__ = object.__hash__

    ACTIVE = "active"
    TERMINATED = "terminated"


class NotifierInput(enum.Enum):
    """What happens to the INVITE we send for a REFER we accepted."""

    __hash__ = object.__hash__

    PROVISIONAL = "1xx of our INVITE"
    FINAL = "final response of our INVITE (or its failure)"
    EXPIRED = "the subscription expired, or the call ended"


NOTIFIER_TABLE: dict[tuple[NotifierState, NotifierInput], tuple[str, NotifierState]] = {
    (NotifierState.ACTIVE, NotifierInput.PROVISIONAL): ("active", NotifierState.ACTIVE),
    (NotifierState.ACTIVE, NotifierInput.FINAL): ("noresource", NotifierState.TERMINATED),
    (NotifierState.ACTIVE, NotifierInput.EXPIRED): ("timeout", NotifierState.TERMINATED),
}
"""The transferee's table (the second figure): the action is the Subscription-State to send
(``"active"``, or ``terminated`` with that reason)."""


@attrs.frozen
class NotifyOrder:
    """A NOTIFY to send in the dialog of the REFER (RFC 3515 §2.4.4).

    Attributes:
        headers: Event, Subscription-State (the body's type goes with ``content_type``).
        body: the message/sipfrag body.
        content_type: ``"message/sipfrag"``.
    """

    headers: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str = "message/sipfrag"


class ReferNotifier:
    """The transferee's implicit subscription for one REFER we accepted.

    Args:
        refer_cseq: the REFER's CSeq number (the ``id`` of our NOTIFYs' Event).
        now: when the REFER was accepted (seconds, absolute).
        expires: seconds the subscription lasts.

    Attributes:
        state: the :class:`NotifierState`.
        last: the last status notified.
        deadline: when the subscription expires (seconds, absolute), or ``None`` once over.
        ignored: inputs absent from the table.
    """

    TABLE = NOTIFIER_TABLE

    def __init__(self, refer_cseq: int, now: float, expires: int = REFER_EXPIRES) -> None:
        self.refer_cseq = refer_cseq
        self.expires = expires
        self.state = NotifierState.ACTIVE
        self.last = StatusFragment.of(100)
        self.deadline: float | None = now + expires
        self.ignored = 0

    def first(self, now: float) -> NotifyOrder:
        """The NOTIFY sent right after the 202: ``100 Trying``, active (RFC 3515 §2.4.4)."""
        return self._order("active", now)

    def step(self, inp: NotifierInput, now: float, frag: StatusFragment | None = None) -> NotifyOrder | None:
        """Feed one input; the NOTIFY to send, or ``None`` (absent from the table: ignored)."""
        entry = self.TABLE.get((self.state, inp))
        if entry is None:
            self.ignored += 1
            return None
        substate, self.state = entry
        if frag is not None:
            self.last = frag
        if self.state is NotifierState.TERMINATED:
            self.deadline = None
        return self._order(substate, now)

    def progress(self, status: int, reason: str, now: float) -> NotifyOrder | None:
        """Our INVITE got ``status``: the NOTIFY to send, or ``None`` (over, or the same 1xx again)."""
        if status < 200 and status == self.last.status and self.state is NotifierState.ACTIVE:
            return None  # the same provisional again (our own 100 Trying, then the target's): nothing new
        frag = StatusFragment.of(status, reason)
        inp = NotifierInput.PROVISIONAL if status < 200 else NotifierInput.FINAL
        return self.step(inp, now, frag)

    def handle_timer(self, now: float) -> NotifyOrder | None:
        """The subscription expired: the terminating NOTIFY, or ``None``."""
        if self.deadline is None or now < self.deadline:
            return None
        return self.step(NotifierInput.EXPIRED, now)

    def _order(self, substate: str, now: float) -> NotifyOrder:
        if substate == "active":
            left = max(0, int((self.deadline or now) - now))
            state = SubscriptionState("active", expires=left)
        else:
            state = SubscriptionState("terminated", reason=substate)
        headers = (("Event", str(EventHeader("refer", str(self.refer_cseq)))), ("Subscription-State", str(state)))
        return NotifyOrder(headers, self.last.to_bytes())


__all__ = [
    "NOTIFIER_TABLE",
    "NOTIFY_WAIT",
    "REFER_EXPIRES",
    "REFER_TABLE",
    "NotifierInput",
    "NotifierState",
    "NotifyOrder",
    "ReferAction",
    "ReferClient",
    "ReferInput",
    "ReferNotifier",
    "ReferReport",
    "ReferState",
]
