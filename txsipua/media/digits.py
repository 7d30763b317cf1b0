"""Collecting DTMF digits for a call bot, sans-IO: a table machine told the time (``now``).

Theory of operation: a :class:`DigitCollector` is made when the application
asks for digits (``collect_digits``) and ends once: with the digits so far
and the reason.  Digits come from any transport (RFC 4733 telephone events,
SIP INFO bodies): the caller hands each one to :meth:`DigitCollector.digit`.
Its one deadline (:meth:`DigitCollector.get_timer`) is the first-digit
``timeout`` while nothing came, then ``inter_digit_timeout`` after each digit;
the driver calls :meth:`DigitCollector.handle_timer` when it passes::

                      DIGIT (not the last)
                        +------+
                        v      |
     +---------+  DIGIT  +------------+
     | WAITING |-------->| COLLECTING |
     +---------+         +------------+
          |  TERMINATOR, LAST_DIGIT,  |  TERMINATOR, LAST_DIGIT,
          |  TIMEOUT, CANCEL          |  TIMEOUT, CANCEL
          v                           v
     +-------------------------------------+
     |                DONE                 |   (every input ignored)
     +-------------------------------------+

``LAST_DIGIT`` is a digit that reaches ``max_digits``; ``TERMINATOR`` the
terminator digit (not kept).  An input absent from :data:`TABLE` is ignored
and counted in ``ignored``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

__all__ = ["TABLE", "CollectedDigits", "DigitCollector", "DigitInput", "DigitState"]


class DigitState(enum.Enum):
    """Where a collection is."""

    WAITING = "waiting"
    COLLECTING = "collecting"
    DONE = "done"


class DigitInput(enum.Enum):
    """What can happen to a collection."""

    DIGIT = "digit"
    LAST_DIGIT = "last-digit"
    TERMINATOR = "terminator"
    TIMEOUT = "timeout"
    CANCEL = "cancel"


class CollectedDigits(str):
    """The digits collected (a ``str``), with ``reason``: why the collection ended.

    ``reason`` is ``"max"`` (``max_digits`` reached), ``"terminator"``,
    ``"timeout"`` or ``"cancelled"`` (the call ended or the application
    cancelled).
    """

    reason: str

    def __new__(cls, digits: str, reason: str) -> CollectedDigits:
        """Make the value."""
        value = super().__new__(cls, digits)
        value.reason = reason
        return value


_Action = Callable[["DigitCollector", str, float], None]


def _keep(c: DigitCollector, digit: str, now: float) -> None:
    c.digits += digit
    c.deadline = None if c.inter_digit_timeout is None else now + c.inter_digit_timeout


def _finish(reason: str) -> _Action:
    def action(c: DigitCollector, digit: str, now: float) -> None:
        if reason == "max":
            c.digits += digit
        c.deadline = None
        c.result = CollectedDigits(c.digits, reason)

    return action


_S, _I = DigitState, DigitInput
#: ``{(state, input): (action, next state)}``, the whole behaviour of a collection.
TABLE: dict[tuple[DigitState, DigitInput], tuple[_Action, DigitState]] = {
    (_S.WAITING, _I.DIGIT): (_keep, _S.COLLECTING),
    (_S.COLLECTING, _I.DIGIT): (_keep, _S.COLLECTING),
    (_S.WAITING, _I.LAST_DIGIT): (_finish("max"), _S.DONE),
    (_S.COLLECTING, _I.LAST_DIGIT): (_finish("max"), _S.DONE),
    (_S.WAITING, _I.TERMINATOR): (_finish("terminator"), _S.DONE),
    (_S.COLLECTING, _I.TERMINATOR): (_finish("terminator"), _S.DONE),
    (_S.WAITING, _I.TIMEOUT): (_finish("timeout"), _S.DONE),
    (_S.COLLECTING, _I.TIMEOUT): (_finish("timeout"), _S.DONE),
    (_S.WAITING, _I.CANCEL): (_finish("cancelled"), _S.DONE),
    (_S.COLLECTING, _I.CANCEL): (_finish("cancelled"), _S.DONE),
}


@attrs.define
class DigitCollector:
    """One digit collection (see the module's figure).

    Args:
        now: when the collection starts, seconds (absolute).
        max_digits: end once this many digits came (the terminator not counted).
        timeout: seconds to wait for the first digit (None: no limit).
        inter_digit_timeout: seconds to wait after each digit for the next
            (None: no limit).
        terminator: digits that end the collection and are not kept
            (``"#"`` by default; ``""`` for none).

    Attributes:
        state: the :class:`DigitState`.
        digits: what was kept so far.
        result: the :class:`CollectedDigits` once DONE, else None.
        deadline: the pending deadline, seconds (absolute), or None.
        ignored: inputs absent from the table (after DONE).

    Raises:
        ValueError: ``max_digits`` below 1, or a negative timeout.
    """

    now: float
    max_digits: int = 1
    timeout: float | None = 5.0
    inter_digit_timeout: float | None = 3.0
    terminator: str = "#"
    state: DigitState = DigitState.WAITING
    digits: str = ""
    result: CollectedDigits | None = None
    deadline: float | None = None
    ignored: int = 0

    def __attrs_post_init__(self) -> None:
        if self.max_digits < 1:
            raise ValueError(f"max_digits must be at least 1, not {self.max_digits}")
        for t in (self.timeout, self.inter_digit_timeout):
            if t is not None and t < 0:
                raise ValueError(f"a timeout cannot be negative: {t}")
        self.terminator = self.terminator.upper()
        self.deadline = None if self.timeout is None else self.now + self.timeout

    def _step(self, event: DigitInput, digit: str, now: float) -> None:
        entry = TABLE.get((self.state, event))
        if entry is None:
            self.ignored += 1
            return
        action, next_state = entry
        action(self, digit, now)
        self.state = next_state

    def digit(self, digit: str, now: float) -> None:
        """A digit arrived (``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"``)."""
        digit = digit.upper()
        if digit and digit in self.terminator:
            self._step(DigitInput.TERMINATOR, digit, now)
        elif len(self.digits) + 1 >= self.max_digits:
            self._step(DigitInput.LAST_DIGIT, digit, now)
        else:
            self._step(DigitInput.DIGIT, digit, now)

    def cancel(self, now: float) -> None:
        """End now with the digits so far (reason ``"cancelled"``)."""
        self._step(DigitInput.CANCEL, "", now)

    def get_timer(self) -> float | None:
        """The next deadline, seconds (absolute), or None."""
        return self.deadline

    def handle_timer(self, now: float) -> None:
        """The driver's timer fired: end with ``"timeout"`` if the deadline has passed."""
        if self.deadline is not None and now >= self.deadline:
            self._step(DigitInput.TIMEOUT, "", now)
