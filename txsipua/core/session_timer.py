"""Session timers: keeping a call alive by periodic refreshes (RFC 4028).

Theory of operation
-------------------
Either side may ask for a session interval with ``Session-Expires`` (and
state the smallest it takes with ``Min-SE``) in an INVITE, a re-INVITE or an
UPDATE; the 2xx names the interval agreed and its *refresher*, ``uac`` (the
sender of that request) or ``uas``.  The refresher sends a refresh (an
UPDATE when the peer allows it, else a re-INVITE, §7.4) at half the
interval; both sides end the call with BYE when no refresh succeeded by the
interval minus min(32, interval/3) seconds (§10).  A request asking for an
interval under our minimum is answered 422 with our ``Min-SE`` (§9), and a
422 to ours is retried once with the larger value (§7.1).

The negotiation is in plain functions (:func:`uas_answer`,
:func:`uac_outcome`, :func:`request_fields`); the timing is the declared
machine :class:`SessionTimer`, one per call::

                 2xx negotiated: we refresh
       +-----+ -----------------------------> +-----------+ refresh due (SE/2):
       | OFF |                                | REFRESHER |---+ send the refresh
       +-----+ ------------+                  +-----------+<--+
          ^  2xx negotiated:|   2xx: they       | ^    | 2xx without Session-Expires: OFF
          |  they refresh   v   refresh         v |    |
          |           +---------+ <-------------+ |    | expiry due (SE - min(32, SE/3)):
          +-----------| WATCHER | ---------------+    |   BYE
     2xx without SE   +---------+  2xx: we refresh     v
                          | expiry due: BYE      +---------+
                          +--------------------> | STOPPED | <-- stop() from any state
                                                 +---------+

Every entry point takes ``now``; the two deadlines (refresh, expiry) are
named deadlines of the :class:`~txsipua.core.context.SessionHost`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from txsipua.core.reliable import option_tags
from txsipua.sip.message import Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.context import SessionHost

OPTION_TAG = "timer"
"""The option tag of session timers (RFC 4028 §3)."""

ABSOLUTE_MIN_SE = 90
"""No session interval may be below 90 s (RFC 4028 §4)."""

# Session-Expires = ("Session-Expires" / "x") HCOLON delta-seconds *(SEMI se-params)
# se-params = refresher-param / generic-param ; refresher-param = "refresher" EQUAL ("uas" / "uac")
_SE = re.compile(r"^\s*(\d{1,10})\s*((?:;[^;]*)*)$")
# Min-SE = "Min-SE" HCOLON delta-seconds *(SEMI generic-param)
_MIN_SE = re.compile(r"^\s*(\d{1,10})\s*(?:;.*)?$")


@attrs.frozen
class SessionExpires:
    """A ``Session-Expires`` value (RFC 4028 §4): ``1800;refresher=uac``.

    Attributes:
        interval: the session interval, seconds.
        refresher: ``"uac"``, ``"uas"`` or ``None`` (not stated).
    """

    interval: int
    refresher: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> SessionExpires | None:
        """The value of a Session-Expires field, or ``None`` when absent or malformed."""
        m = _SE.match(text or "")
        if m is None:
            return None
        refresher = None
        for param in m.group(2).split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "refresher" and value.strip().lower() in ("uac", "uas"):
                refresher = value.strip().lower()
        return cls(int(m.group(1)), refresher)

    def __str__(self) -> str:
        return f"{self.interval};refresher={self.refresher}" if self.refresher else str(self.interval)


def min_se_of(message: Request | Response) -> int | None:
    """The Min-SE of ``message``, seconds, or ``None`` when absent or malformed."""
    m = _MIN_SE.match(message.headers.get("Min-SE") or "")
    return int(m.group(1)) if m else None


MAX_DELTA_SECONDS = 2**32 - 1
"""The largest delta-seconds value taken (RFC 3261 §25.1 bounds it at 2**32 - 1)."""


def malformed(request: Request) -> str | None:
    """Why ``request``'s ``Session-Expires`` or ``Min-SE`` is unusable (the reason of a 400), else ``None``.

    A value that is not delta-seconds (non-numeric, negative, over
    2**32 - 1) is malformed; so is a Session-Expires lower than the same
    request's Min-SE (RFC 4028 §5: it MUST NOT be).
    """
    se_text = request.headers.get("Session-Expires")
    se = SessionExpires.parse(se_text) if se_text is not None else None
    if se_text is not None and (se is None or se.interval > MAX_DELTA_SECONDS):
        return "Malformed Session-Expires"
    min_text = request.headers.get("Min-SE")
    if min_text is not None:
        floor = min_se_of(request)
        if floor is None or floor > MAX_DELTA_SECONDS:
            return "Malformed Min-SE"
        if se is not None and se.interval < floor:
            return "Session-Expires below Min-SE"
    return None


def refusal(request: Request, min_se: int) -> tuple[int, str | None, list[tuple[str, str]]] | None:
    """The response refusing ``request``'s session timer fields, ``(status, reason, headers)``, or ``None``.

    400 with the reason of :func:`malformed`; else 422 with our Min-SE when the
    interval is too short (:func:`too_small`, RFC 4028 §9).
    """
    headers = request.headers
    if "Session-Expires" not in headers and "Min-SE" not in headers:
        return None  # nothing to refuse (the usual case: no session timer asked for)
    reason = malformed(request)
    if reason is not None:
        return 400, reason, []
    small = too_small(request, min_se)
    if small is not None:
        return 422, None, [("Min-SE", str(small))]
    return None


def too_small(request: Request, min_se: int) -> int | None:
    """The Min-SE to answer 422 with when ``request`` asks for too short an interval, else ``None`` (§9).

    Args:
        request: an INVITE, re-INVITE or UPDATE.
        min_se: our smallest acceptable interval, seconds.
    """
    se = SessionExpires.parse(request.headers.get("Session-Expires"))
    floor = max(min_se, ABSOLUTE_MIN_SE)
    if se is not None and se.interval < floor:
        return floor
    return None


@attrs.frozen
class Agreement:
    """The outcome of a negotiation: the interval and whether we are the refresher."""

    interval: int
    we_refresh: bool


def uas_answer(request: Request, session_expires: int | None, min_se: int,
               current: int | None = None) -> tuple[list[tuple[str, str]], Agreement | None]:
    """Our 2xx's session-timer fields for ``request`` and the agreement they make (RFC 4028 §9).

    The interval asked for is kept (never below ``min_se``); a request without
    one gets ours (``current`` in a running call, else ``session_expires``)
    when we have one.  The refresher the request names is kept; otherwise it
    is the requester (``uac``) when it supports timers, else us (``uas``).

    Returns:
        ``(fields, agreement)``: fields to add to the 2xx, and the
        :class:`Agreement` (``None``: no session timer).
    """
    se_text = request.headers.get("Session-Expires")
    if se_text is None and current is None and session_expires is None:
        return [], None  # no interval asked for and none of ours: no session timer
    se = SessionExpires.parse(se_text)
    supports = OPTION_TAG in option_tags(request, "Supported") or OPTION_TAG in option_tags(request, "Require")
    if se is None:
        ours = current or session_expires
        if ours is None:
            return [], None
        interval = max(ours, min_se_of(request) or 0, min_se, ABSOLUTE_MIN_SE)
        refresher = "uac" if supports else "uas"
    else:
        interval = max(se.interval, min_se, ABSOLUTE_MIN_SE)
        refresher = se.refresher or ("uac" if supports else "uas")
    fields = [("Session-Expires", str(SessionExpires(interval, refresher)))]
    if supports:
        fields.append(("Require", OPTION_TAG))
    return fields, Agreement(interval, refresher == "uas")


def uac_outcome(response: Response) -> Agreement | None:
    """The agreement a 2xx to our INVITE, re-INVITE or UPDATE makes (RFC 4028 §7.2), or ``None``.

    Without a refresher parameter (a UAS without timer support) we refresh.
    """
    se = SessionExpires.parse(response.headers.get("Session-Expires"))
    if se is None:
        return None
    return Agreement(max(se.interval, 1), se.refresher != "uas")


def request_fields(interval: int, min_se: int, we_refresh: bool | None) -> list[tuple[str, str]]:
    """Session-Expires and Min-SE for a request we send (RFC 4028 §7.1, §7.4).

    Args:
        interval: the interval to ask for, seconds.
        min_se: our Min-SE, seconds.
        we_refresh: True: ``refresher=uac`` (we, its sender, refresh);
            False: ``refresher=uas``; ``None``: left to the peer.
    """
    refresher = None if we_refresh is None else ("uac" if we_refresh else "uas")
    return [("Session-Expires", str(SessionExpires(interval, refresher))),
            ("Min-SE", str(max(min_se, ABSOLUTE_MIN_SE)))]


def expiry_delay(interval: float) -> float:
    """Seconds after a refresh when a session is over: interval - min(32, interval/3) (§10)."""
    return interval - min(32.0, interval / 3)


# --------------------------------------------------------------------------
# The machine


class TimerState(enum.Enum):
    """The states of :class:`SessionTimer` (figure in the module docstring)."""

    OFF = "off"
    REFRESHER = "refresher"
    WATCHER = "watcher"
    STOPPED = "stopped"


class TimerInput(enum.Enum):
    """The inputs of :class:`SessionTimer`."""

    WE_REFRESH = "negotiated: we refresh"
    THEY_REFRESH = "negotiated: they refresh"
    NO_TIMER = "negotiated: no session timer"
    REFRESH_DUE = "half the interval passed"
    EXPIRY_DUE = "interval - min(32, interval/3) passed"
    STOP = "stop()"


class TimerAction(enum.Enum):
    """Side effects of :class:`SessionTimer`; the value names its method."""

    ARM_REFRESH = "a_arm_refresh"
    ARM_EXPIRY = "a_arm_expiry"
    DISARM = "a_disarm"
    REFRESH = "a_refresh"
    EXPIRE = "a_expire"


_T = TimerState
_TI = TimerInput
_TA = TimerAction
_LIVE = (_T.OFF, _T.REFRESHER, _T.WATCHER)

TIMER_TABLE: dict[tuple[TimerState, TimerInput], tuple[TimerAction, TimerState]] = {
    **{(s, _TI.WE_REFRESH): (_TA.ARM_REFRESH, _T.REFRESHER) for s in _LIVE},
    **{(s, _TI.THEY_REFRESH): (_TA.ARM_EXPIRY, _T.WATCHER) for s in _LIVE},
    **{(s, _TI.NO_TIMER): (_TA.DISARM, _T.OFF) for s in _LIVE},
    **{(s, _TI.STOP): (_TA.DISARM, _T.STOPPED) for s in _LIVE},
    (_T.REFRESHER, _TI.REFRESH_DUE): (_TA.REFRESH, _T.REFRESHER),
    (_T.REFRESHER, _TI.EXPIRY_DUE): (_TA.EXPIRE, _T.STOPPED),
    (_T.WATCHER, _TI.EXPIRY_DUE): (_TA.EXPIRE, _T.STOPPED),
}
"""The session timer (the figure of the module docstring)."""


class TimerOwner(Protocol):
    """What a :class:`SessionTimer` asks of its call."""

    def send_refresh(self, now: float) -> None:
        """Send a session refresh (UPDATE or re-INVITE, RFC 4028 §7.4)."""

    def session_expired(self, now: float) -> None:
        """No refresh in time: end the call with BYE (RFC 4028 §10)."""


class SessionTimer:
    """The session timer of one call (RFC 4028); see the module docstring.

    Args:
        host: the core seam (named deadlines).
        owner: the call.
        name: a hashable unique to this call, for the deadlines.

    Attributes:
        state: the :class:`TimerState`.
        interval: the session interval in force, seconds, or ``None``.
        refresh_at: the absolute time of the next refresh, or ``None``.
        expires_at: the absolute time the session expires, or ``None``.
    """

    def __init__(self, host: SessionHost, owner: TimerOwner, name: Hashable) -> None:
        self.host = host
        self.owner = owner
        self.state = TimerState.OFF
        self.interval: int | None = None
        self.refresh_at: float | None = None
        self.expires_at: float | None = None
        self._refresh_name = ("session-refresh", name)
        self._expiry_name = ("session-expiry", name)

    @property
    def we_refresh(self) -> bool:
        """True when we are the refresher."""
        return self.state is TimerState.REFRESHER

    @property
    def active(self) -> bool:
        """True while a session interval is in force."""
        return self.state in (TimerState.REFRESHER, TimerState.WATCHER)

    def negotiated(self, agreement: Agreement | None, now: float) -> None:
        """A 2xx (sent or received) settled the session timer: restart it, or turn it off."""
        if agreement is None:
            self._step(TimerInput.NO_TIMER, now)
        else:
            self._step(TimerInput.WE_REFRESH if agreement.we_refresh else TimerInput.THEY_REFRESH, now,
                       agreement.interval)

    def stop(self, now: float) -> None:
        """The call ended: forget the deadlines."""
        self._step(TimerInput.STOP, now)

    # -------------------------------------------------------------- machine
    def _step(self, inp: TimerInput, now: float, arg: Any = None) -> None:
        entry = TIMER_TABLE.get((self.state, inp))
        if entry is None:
            self.host.stats["ignored"] += 1
            return
        action, self.state = entry
        getattr(self, action.value)(now, arg)

    def a_arm_refresh(self, now: float, interval: Any) -> None:
        """We refresh: at half the interval, and BYE if still unrefreshed at the expiry."""
        self.interval = interval
        self.refresh_at = now + interval / 2
        self.host.schedule(self._refresh_name, self.refresh_at, self._refresh_due)
        self._arm_expiry(now, interval)

    def a_arm_expiry(self, now: float, interval: Any) -> None:
        """They refresh: BYE if no refresh comes before the expiry."""
        self.interval = interval
        self.refresh_at = None
        self.host.cancel(self._refresh_name)
        self._arm_expiry(now, interval)

    def _arm_expiry(self, now: float, interval: int) -> None:
        self.expires_at = now + expiry_delay(interval)
        self.host.schedule(self._expiry_name, self.expires_at, self._expiry_due)

    def a_disarm(self, now: float, arg: Any) -> None:
        """No timer any more."""
        self.interval = self.refresh_at = self.expires_at = None
        self.host.cancel(self._refresh_name)
        self.host.cancel(self._expiry_name)

    def a_refresh(self, now: float, arg: Any) -> None:
        """Half the interval passed: send the refresh (its 2xx restarts the timer)."""
        self.refresh_at = None
        self.owner.send_refresh(now)

    def a_expire(self, now: float, arg: Any) -> None:
        """The session expired: the call ends with BYE (§10)."""
        self.host.cancel(self._refresh_name)
        self.refresh_at = self.expires_at = None
        self.owner.session_expired(now)

    def _refresh_due(self, now: float) -> None:
        self._step(TimerInput.REFRESH_DUE, now)

    def _expiry_due(self, now: float) -> None:
        self._step(TimerInput.EXPIRY_DUE, now)


__all__ = [
    "ABSOLUTE_MIN_SE",
    "OPTION_TAG",
    "TIMER_TABLE",
    "Agreement",
    "SessionExpires",
    "SessionTimer",
    "TimerAction",
    "TimerInput",
    "TimerOwner",
    "TimerState",
    "expiry_delay",
    "min_se_of",
    "request_fields",
    "too_small",
    "malformed",
    "refusal",
    "uac_outcome",
    "uas_answer",
]
