"""Reliable provisional responses: RSeq, RAck and PRACK on both sides (RFC 3262).

Theory of operation
-------------------
A provisional response is made reliable by ``Require: 100rel`` and an
``RSeq`` number (RFC 3262 §3).  Two small declared machines carry the rule,
one per side; the INVITE sessions own them and do the sending.

UAS (:class:`ReliableSender`, one per received INVITE).  A reliable 1xx is
sent with the next RSeq (the first one drawn at random, 1 to 2**31 - 1) and
retransmitted by us, the transaction user, at T1, 2*T1, 4*T1... (the
interval doubles with no cap) until its PRACK arrives; after 64*T1 without a
PRACK the session is told to reject the INVITE with a 5xx (§3).  Only one
reliable provisional is outstanding at a time: a later one waits in a queue
and goes when the PRACK of the one before arrives.  A PRACK whose RAck names
a reliable 1xx we sent is answered 200 (a repeat for one already
acknowledged too); one matching nothing gets 481 (§3).  The final response
stops the retransmissions and drops the queue (no new reliable provisional
after a final response, §3)::

                    send(): RSeq, Require: 100rel,
                    retransmit at +T1, give up at +64*T1
          +------+ -------------------------------> +----------------+ send(): queued
          | IDLE |                                  | AWAITING PRACK |----+
          +------+ <------------------------------- +----------------+<---+
            |   PRACK matching it, queue empty        |   |   |  retransmit timer:
            |   (queue not empty: send the next,      |   |   |  send again, interval
            |    stay AWAITING PRACK)                 |   |   |  doubled
            |                                         |   |   +--------+
            | final response sent                     |   | 64*T1: give up:
            v                                         |   | session rejects with 5xx
          +--------+ <--------------------------------+   |
          | CLOSED | <----- final response sent ----------+
          +--------+   (PRACKs still answered: 200 for a 1xx we sent, else 481)

UAC (:class:`ReliableReceiver`, one per early dialog, i.e. per To tag).  The
first reliable 1xx sets the expected RSeq; after it only RSeq + 1 is PRACKed
and processed.  A repeat (a retransmission whose PRACK crossed it) or a gap
(out of order) is dropped without PRACK (§4)::

                    first reliable 1xx: PRACK
          +------+ ---------------------------> +-----------+ next RSeq (last + 1): PRACK
          | NONE |                              | RECEIVING |---+  repeat or gap: drop
          +------+                              +-----------+<--+

Every entry point takes ``now`` (seconds, absolute); deadlines go through the
:class:`~txsipua.core.context.SessionHost`'s named ``schedule``/``cancel``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Protocol

from txsipua.sip.message import Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.core.context import SessionHost

OPTION_TAG = "100rel"
"""The option tag of reliable provisional responses (RFC 3262 §2)."""

MAX_RSEQ = 2**31 - 1
"""The largest initial RSeq (RFC 3262 §3)."""

_RSEQ = re.compile(r"^\s*(\d{1,10})\s*$")
# RAck = "RAck" HCOLON response-num LWS CSeq-num LWS Method   (RFC 3262 §7.2)
_RACK = re.compile(r"^\s*(\d{1,10})\s+(\d{1,10})\s+([A-Za-z!%'*+\-.`~_]+)\s*$")


def option_tags(message: Request | Response, name: str) -> set[str]:
    """The option tags of every ``name`` field (Supported, Require...), lower case."""
    values = message.headers.get_all(name)
    if not values:
        return set()
    return {t.strip().lower() for v in values for t in v.split(",") if t.strip()}


def rseq_of(response: Response) -> int | None:
    """The RSeq of a reliable provisional response, or ``None`` when it is not one (RFC 3262 §7.1).

    A response is reliable when it is a 101-199 with ``Require: 100rel`` and a
    valid RSeq (1 to 2**32 - 1); anything else is an ordinary provisional.
    """
    if not (100 < response.status < 200) or OPTION_TAG not in option_tags(response, "Require"):
        return None
    m = _RSEQ.match(response.headers.get("RSeq") or "")
    if m is None:
        return None
    value = int(m.group(1))
    return value if 0 < value < 2**32 else None


def parse_rack(value: str | None) -> tuple[int, int, str] | None:
    """``(response-num, CSeq-num, method)`` of an RAck value, or ``None`` if malformed (RFC 3262 §7.2)."""
    m = _RACK.match(value or "")
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3).upper()


def wants_reliable(invite: Request, use_100rel: bool) -> bool:
    """Whether our provisional responses to ``invite`` are sent reliably (RFC 3262 §3).

    Always when the INVITE requires 100rel; when it only supports it, as our
    policy ``use_100rel`` says.
    """
    if OPTION_TAG in option_tags(invite, "Require"):
        return True
    return use_100rel and OPTION_TAG in option_tags(invite, "Supported")


# --------------------------------------------------------------------------
# UAS: the reliable provisionals we send


class SenderState(enum.Enum):
    """The states of :class:`ReliableSender` (figure in the module docstring)."""

    IDLE = "idle"
    AWAITING_PRACK = "awaiting prack"
    CLOSED = "closed"


class SenderInput(enum.Enum):
    """The inputs of :class:`ReliableSender`."""

    SEND = "send a reliable 1xx"
    PRACK = "PRACK matching the outstanding 1xx"
    RETRANSMIT = "retransmission timer"
    GIVE_UP = "64*T1 without PRACK"
    FINAL = "final response sent"


class SenderAction(enum.Enum):
    """Side effects of :class:`ReliableSender`; the value names its method."""

    TRANSMIT = "a_transmit"
    QUEUE = "a_queue"
    ACKED = "a_acked"
    ACKED_NEXT = "a_acked_next"
    RETRANSMIT = "a_retransmit"
    GIVE_UP = "a_give_up"
    CLOSE = "a_close"


_S = SenderState
_SI = SenderInput
_SA = SenderAction

SENDER_TABLE: dict[tuple[SenderState, SenderInput], tuple[SenderAction, SenderState]] = {
    (_S.IDLE, _SI.SEND): (_SA.TRANSMIT, _S.AWAITING_PRACK),
    (_S.IDLE, _SI.FINAL): (_SA.CLOSE, _S.CLOSED),
    (_S.AWAITING_PRACK, _SI.SEND): (_SA.QUEUE, _S.AWAITING_PRACK),
    (_S.AWAITING_PRACK, _SI.PRACK): (_SA.ACKED, _S.IDLE),  # a_acked moves on when a 1xx is queued
    (_S.AWAITING_PRACK, _SI.RETRANSMIT): (_SA.RETRANSMIT, _S.AWAITING_PRACK),
    (_S.AWAITING_PRACK, _SI.GIVE_UP): (_SA.GIVE_UP, _S.CLOSED),
    (_S.AWAITING_PRACK, _SI.FINAL): (_SA.CLOSE, _S.CLOSED),
}
"""The UAS machine (the first figure of the module docstring)."""


class SenderOwner(Protocol):
    """What a :class:`ReliableSender` tells its INVITE server session."""

    def transmit_provisional(self, response: Response, now: float) -> None:
        """Send (or send again) ``response`` on the INVITE server transaction."""

    def provisional_acknowledged(self, response: Response, prack: Request, now: float) -> None:
        """The PRACK of ``response`` arrived (its body, if any, is the answer or offer it carries)."""

    def provisional_unacknowledged(self, now: float) -> None:
        """64*T1 without a PRACK: reject the INVITE with a 5xx (RFC 3262 §3)."""


class ReliableSender:
    """The reliable provisional responses of one received INVITE (UAS, RFC 3262 §3).

    Args:
        host: the core seam (timers, named deadlines).
        owner: the INVITE server session.
        first_rseq: the RSeq of the first reliable 1xx (1 to 2**31 - 1), drawn by the caller.
        name: a hashable unique to this sender, for its named deadlines.

    Attributes:
        state: the :class:`SenderState`.
        outstanding: the reliable 1xx awaiting its PRACK, or ``None``.
        sent: every reliable 1xx sent, by RSeq.
        acknowledged: the RSeqs already PRACKed: a new PRACK for one of them
            gets 481 (it matches no *unacknowledged* 1xx, RFC 3262 §3).
    """

    def __init__(self, host: SessionHost, owner: SenderOwner, first_rseq: int, name: Hashable) -> None:
        if not 0 < first_rseq <= MAX_RSEQ:
            raise ValueError(f"the first RSeq must be 1 to 2**31 - 1, not {first_rseq!r}")
        self.host = host
        self.owner = owner
        self.state = SenderState.IDLE
        self.outstanding: Response | None = None
        self.sent: dict[int, Response] = {}
        self.acknowledged: set[int] = set()
        self._next_rseq = first_rseq
        self._queue: list[Response] = []
        self._interval = 0.0
        self._retransmit_name = ("100rel-retransmit", name)
        self._give_up_name = ("100rel-give-up", name)

    # --------------------------------------------------------- entry points
    def send(self, response: Response, now: float) -> None:
        """Send ``response`` (a 101-199) reliably: now, or once the outstanding one is PRACKed.

        ``Require: 100rel`` and the RSeq are added when it goes out.
        """
        self._step(SenderInput.SEND, now, response)

    @property
    def holds_offer(self) -> bool:
        """True while a reliable 1xx with a body (an offer or answer) awaits its PRACK, or is queued.

        A 2xx must wait for those PRACKs (RFC 3262 §3).
        """
        return any(r.body for r in ([self.outstanding] if self.outstanding is not None else []) + self._queue)

    def acknowledges(self, prack: Request, invite_seq: int) -> bool:
        """True when the RAck of ``prack`` names one of our reliable 1xx not yet PRACKed (answer 200), else False (481, §3).

        A retransmitted PRACK is absorbed by its server transaction; a new PRACK
        (another transaction) for a 1xx already acknowledged matches nothing.

        Args:
            prack: the PRACK request.
            invite_seq: the CSeq number of the INVITE we answer.
        """
        rack = parse_rack(prack.headers.get("RAck"))
        if rack is None:
            return False
        rseq, cseq, method = rack
        return cseq == invite_seq and method == "INVITE" and rseq in self.sent and rseq not in self.acknowledged

    def prack(self, prack: Request, now: float) -> None:
        """A PRACK :meth:`acknowledges` accepted: when it names the outstanding 1xx, stop its retransmissions."""
        rack = parse_rack(prack.headers.get("RAck"))
        if rack is not None:
            self.acknowledged.add(rack[0])
        outstanding = self.outstanding
        if rack is not None and outstanding is not None and self._rseq(outstanding) == rack[0]:
            self._step(SenderInput.PRACK, now, prack)

    def final_sent(self, now: float) -> None:
        """The INVITE got its final response: stop retransmitting, forget the queue (§3)."""
        self._step(SenderInput.FINAL, now)

    # -------------------------------------------------------------- machine
    def _step(self, inp: SenderInput, now: float, arg: Any = None) -> None:
        entry = SENDER_TABLE.get((self.state, inp))
        if entry is None:
            self.host.stats["ignored"] += 1
            return
        action, self.state = entry
        getattr(self, action.value)(now, arg)

    @staticmethod
    def _rseq(response: Response) -> int:
        return int(response.headers.get("RSeq") or 0)

    def a_transmit(self, now: float, response: Any) -> None:
        """Number the 1xx, send it, arm the retransmission and the give-up deadlines."""
        rseq = self._next_rseq
        self._next_rseq = rseq + 1 if rseq < 2**32 - 1 else 1
        if OPTION_TAG not in option_tags(response, "Require"):
            response.headers.add("Require", OPTION_TAG)
        response.headers.set("RSeq", str(rseq))
        self.sent[rseq] = response
        self.outstanding = response
        self._interval = self.host.timers.t1
        self.owner.transmit_provisional(response, now)
        self.host.schedule(self._retransmit_name, now + self._interval, self._retransmit_due)
        self.host.schedule(self._give_up_name, now + self.host.timers.t64, self._give_up_due)

    def a_queue(self, now: float, response: Any) -> None:
        """Another reliable 1xx while one awaits its PRACK: it waits (§3)."""
        self._queue.append(response)

    def a_acked(self, now: float, prack: Any) -> None:
        """The PRACK came: stop the timers, tell the session, send the next queued 1xx if any."""
        acked = self.outstanding
        assert acked is not None
        self.outstanding = None
        self._cancel_timers()
        self.owner.provisional_acknowledged(acked, prack, now)
        if self._queue and self.state is SenderState.IDLE:
            self._step(SenderInput.SEND, now, self._queue.pop(0))

    def a_retransmit(self, now: float, arg: Any) -> None:
        """Send the outstanding 1xx again; the interval doubles (§3)."""
        assert self.outstanding is not None
        self.owner.transmit_provisional(self.outstanding, now)
        self._interval *= 2
        self.host.schedule(self._retransmit_name, now + self._interval, self._retransmit_due)

    def a_give_up(self, now: float, arg: Any) -> None:
        """64*T1 without PRACK: the session rejects the INVITE (§3)."""
        self._cancel_timers()
        self._queue.clear()
        self.outstanding = None
        self.owner.provisional_unacknowledged(now)

    def a_close(self, now: float, arg: Any) -> None:
        """A final response went: no more retransmissions nor new reliable 1xx (§3)."""
        self._cancel_timers()
        self._queue.clear()
        self.outstanding = None

    def _cancel_timers(self) -> None:
        self.host.cancel(self._retransmit_name)
        self.host.cancel(self._give_up_name)

    def _retransmit_due(self, now: float) -> None:
        self._step(SenderInput.RETRANSMIT, now)

    def _give_up_due(self, now: float) -> None:
        self._step(SenderInput.GIVE_UP, now)


# --------------------------------------------------------------------------
# UAC: the reliable provisionals we receive


class ReceiverState(enum.Enum):
    """The states of :class:`ReliableReceiver`."""

    NONE = "none"
    RECEIVING = "receiving"


class ReceiverInput(enum.Enum):
    """A reliable 1xx, classified by its RSeq against the last one processed."""

    FIRST = "first reliable 1xx"
    NEXT = "RSeq one above the last"
    REPEAT = "RSeq not above the last"
    GAP = "RSeq more than one above the last"


class ReceiverAction(enum.Enum):
    """What the UAC does with the reliable 1xx."""

    PRACK = "prack"
    DROP = "drop"


_R = ReceiverState
_RI = ReceiverInput
_RA = ReceiverAction

RECEIVER_TABLE: dict[tuple[ReceiverState, ReceiverInput], tuple[ReceiverAction, ReceiverState]] = {
    (_R.NONE, _RI.FIRST): (_RA.PRACK, _R.RECEIVING),
    (_R.RECEIVING, _RI.NEXT): (_RA.PRACK, _R.RECEIVING),
    (_R.RECEIVING, _RI.REPEAT): (_RA.DROP, _R.RECEIVING),
    (_R.RECEIVING, _RI.GAP): (_RA.DROP, _R.RECEIVING),
}
"""The UAC machine (the second figure of the module docstring)."""


class ReliableReceiver:
    """The reliable provisionals of one early dialog we receive (UAC, RFC 3262 §4).

    Attributes:
        state: the :class:`ReceiverState`.
        last: the RSeq of the last reliable 1xx PRACKed, or ``None``.
    """

    def __init__(self) -> None:
        self.state = ReceiverState.NONE
        self.last: int | None = None

    def classify(self, rseq: int) -> ReceiverInput:
        """The input a reliable 1xx numbered ``rseq`` is."""
        last = self.last
        if last is None:
            return ReceiverInput.FIRST
        if rseq == last + 1:
            return ReceiverInput.NEXT
        return ReceiverInput.REPEAT if rseq <= last else ReceiverInput.GAP

    def receive(self, rseq: int, now: float) -> bool:
        """A reliable 1xx numbered ``rseq``: True when it is PRACKed and processed, False when dropped (§4)."""
        action, self.state = RECEIVER_TABLE[(self.state, self.classify(rseq))]
        if action is ReceiverAction.PRACK:
            self.last = rseq
            return True
        return False


def rack_value(rseq: int, invite: Request) -> str:
    """The RAck value acknowledging the reliable 1xx ``rseq`` to ``invite`` (RFC 3262 §7.2)."""
    return f"{rseq} {invite.cseq.seq} {invite.cseq.method}"


__all__ = [
    "MAX_RSEQ",
    "OPTION_TAG",
    "RECEIVER_TABLE",
    "SENDER_TABLE",
    "ReceiverAction",
    "ReceiverInput",
    "ReceiverState",
    "ReliableReceiver",
    "ReliableSender",
    "SenderAction",
    "SenderInput",
    "SenderOwner",
    "SenderState",
    "option_tags",
    "parse_rack",
    "rack_value",
    "rseq_of",
    "wants_reliable",
]
