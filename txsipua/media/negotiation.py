"""The offer/answer state of one session (RFC 3264 §4, RFC 3261 §13.2.1, §14), as a declared machine.

Theory of operation
-------------------
An SDP session between two parties is negotiated by exchanges of one offer
and one answer.  At any moment at most one offer is outstanding: ours, or the
peer's.  :class:`Negotiation` remembers which, the descriptions in force on
both sides once an exchange completed, and the *early* answers that
provisional responses carried before the final one (one per early dialog,
keyed by the To tag, RFC 3261 §13.2.1: a forked INVITE may get several).

It never builds SDP and never touches a socket: the caller
(:class:`~txsipua.ua.media.CallMedia`) builds the descriptions
(:mod:`txsipua.media.offer_answer`) and feeds them in; each method is one
input of :data:`OA_TABLE`.  An input absent from the table is refused: a
local order raises :class:`~txsipua.errors.LocalProtocolError` (we broke the
rules), a remote input raises :class:`~txsipua.errors.OfferAnswerError`
carrying the status to answer the request with (491 for an offer crossing an
outstanding one, RFC 3261 §14.2; 400 for an answer nobody asked for).  A
refused input changes nothing.

Which message carries what is the usage's business (INVITE/2xx/ACK here;
PRACK and UPDATE can use the same inputs): the INVITE usage feeds an
INVITE with SDP as ``receive_offer``, an offerless INVITE's 2xx as
``send_offer`` then the ACK as ``receive_answer``; a 183 with SDP as
``receive_early_answer``; a refused or failed re-INVITE as ``rollback``.

The machine::

                            +------------+
             send_offer     | NO_SESSION |     receive_offer
          +---------------- +------------+ ----------------+
          |                   ^        ^                   |
          v        rollback   |        |   rollback        v
    +------------+ -----------+        +----------- +----------------+
    | OFFER_SENT |                                  | OFFER_RECEIVED |
    +------------+                                  +----------------+
       |      | receive_early_answer (18x SDP, tag)          |
       |      v                                              |
       |   +-------+ receive_early_answer (any tag):         |
       |   | EARLY |<--+ media follows the latest            |
       |   +-------+---+ rollback -> NO_SESSION              |
       |      |                                              |
       |      | receive_answer (2xx, ACK)        send_answer |
       v      v                                              v
       +-----------------------> +--------+ <----------------+
                                 | STABLE |
            +------------------> +--------+ <-------------------+
            | receive_answer,     |      |      send_answer,    |
            | rollback (the old   |      |      rollback        |
            | ones stay)          |      |                      |
            |         send_offer  v      v  receive_offer       |
       +--------------+                          +------------------+
       | REOFFER_SENT |                          | REOFFER_RECEIVED |
       +--------------+                          +------------------+

  receive_offer in OFFER_SENT, EARLY or REOFFER_SENT is glare: refused, 491.

The table:

================  ======================  ========================  ================
state             input                   action                    next
================  ======================  ========================  ================
NO_SESSION        send_offer              keep our offer            OFFER_SENT
NO_SESSION        receive_offer           keep the peer's offer     OFFER_RECEIVED
OFFER_SENT        receive_early_answer    keep it for its tag       EARLY
EARLY             receive_early_answer    keep it for its tag       EARLY
OFFER_SENT, EARLY receive_answer          both in force             STABLE
OFFER_SENT, EARLY rollback                forget the offer          NO_SESSION
OFFER_RECEIVED    send_answer             both in force             STABLE
OFFER_RECEIVED    rollback                forget the offer          NO_SESSION
STABLE            send_offer              keep our offer            REOFFER_SENT
STABLE            receive_offer           keep the peer's offer     REOFFER_RECEIVED
REOFFER_SENT      receive_answer          both in force             STABLE
REOFFER_SENT      rollback                the old ones stay         STABLE
REOFFER_RECEIVED  send_answer             both in force             STABLE
REOFFER_RECEIVED  rollback                the old ones stay         STABLE
================  ======================  ========================  ================
"""

from __future__ import annotations

import enum

import attrs

from txsipua.errors import LocalProtocolError, OfferAnswerError
from txsipua.media.sdp import SessionDescription

__all__ = [
    "OA_TABLE",
    "Negotiation",
    "OfferAnswerAction",
    "OfferAnswerInput",
    "OfferAnswerState",
]


class OfferAnswerState(enum.Enum):
    """Where one session's offer/answer stands (RFC 3264 §4)."""

    __hash__ = object.__hash__

    NO_SESSION = "no session"  # nothing exchanged yet (or the first offer was refused)
    OFFER_SENT = "offer sent"  # our first offer is outstanding
    EARLY = "early"  # our first offer is outstanding; a provisional answer is in use (18x SDP)
    OFFER_RECEIVED = "offer received"  # the peer's first offer awaits our answer
    STABLE = "stable"  # descriptions in force on both sides, nothing outstanding
    REOFFER_SENT = "re-offer sent"  # our new offer is outstanding; the old ones stay in force
    REOFFER_RECEIVED = "re-offer received"  # the peer's new offer awaits our answer

    @property
    def offer_outstanding(self) -> bool:
        """True while an offer awaits its answer (either side)."""
        return self not in (OfferAnswerState.NO_SESSION, OfferAnswerState.STABLE)


class OfferAnswerInput(enum.Enum):
    """What can happen to the negotiation; the value names the :class:`Negotiation` method."""

    __hash__ = object.__hash__

    SEND_OFFER = "send_offer"
    RECEIVE_OFFER = "receive_offer"
    SEND_ANSWER = "send_answer"
    RECEIVE_ANSWER = "receive_answer"
    RECEIVE_EARLY_ANSWER = "receive_early_answer"
    ROLLBACK = "rollback"

    @property
    def local(self) -> bool:
        """True for our own orders (refused with LocalProtocolError), False for the peer's."""
        return self in (OfferAnswerInput.SEND_OFFER, OfferAnswerInput.SEND_ANSWER, OfferAnswerInput.ROLLBACK)


class OfferAnswerAction(enum.Enum):
    """Side effects on the kept descriptions."""

    __hash__ = object.__hash__

    KEEP_OUR_OFFER = "keep our offer"
    KEEP_THEIR_OFFER = "keep the peer's offer"
    KEEP_EARLY = "keep the early answer for its tag"
    THEIR_ANSWER = "our offer and their answer in force"
    OUR_ANSWER = "their offer and our answer in force"
    FORGET = "forget the outstanding offer"


S = OfferAnswerState
In = OfferAnswerInput
Do = OfferAnswerAction

OA_TABLE: dict[tuple[OfferAnswerState, OfferAnswerInput], tuple[OfferAnswerAction, OfferAnswerState]] = {
    (S.NO_SESSION, In.SEND_OFFER): (Do.KEEP_OUR_OFFER, S.OFFER_SENT),
    (S.NO_SESSION, In.RECEIVE_OFFER): (Do.KEEP_THEIR_OFFER, S.OFFER_RECEIVED),
    (S.OFFER_SENT, In.RECEIVE_EARLY_ANSWER): (Do.KEEP_EARLY, S.EARLY),
    (S.EARLY, In.RECEIVE_EARLY_ANSWER): (Do.KEEP_EARLY, S.EARLY),
    (S.OFFER_SENT, In.RECEIVE_ANSWER): (Do.THEIR_ANSWER, S.STABLE),
    (S.EARLY, In.RECEIVE_ANSWER): (Do.THEIR_ANSWER, S.STABLE),
    (S.OFFER_SENT, In.ROLLBACK): (Do.FORGET, S.NO_SESSION),
    (S.EARLY, In.ROLLBACK): (Do.FORGET, S.NO_SESSION),
    (S.OFFER_RECEIVED, In.SEND_ANSWER): (Do.OUR_ANSWER, S.STABLE),
    (S.OFFER_RECEIVED, In.ROLLBACK): (Do.FORGET, S.NO_SESSION),
    (S.STABLE, In.SEND_OFFER): (Do.KEEP_OUR_OFFER, S.REOFFER_SENT),
    (S.STABLE, In.RECEIVE_OFFER): (Do.KEEP_THEIR_OFFER, S.REOFFER_RECEIVED),
    (S.REOFFER_SENT, In.RECEIVE_ANSWER): (Do.THEIR_ANSWER, S.STABLE),
    (S.REOFFER_SENT, In.ROLLBACK): (Do.FORGET, S.STABLE),
    (S.REOFFER_RECEIVED, In.SEND_ANSWER): (Do.OUR_ANSWER, S.STABLE),
    (S.REOFFER_RECEIVED, In.ROLLBACK): (Do.FORGET, S.STABLE),
}
"""``{(state, input): (action, next state)}``; see the module docstring."""

_OFFERS_OUT = (S.OFFER_SENT, S.EARLY, S.REOFFER_SENT)


@attrs.define
class Negotiation:
    """The offer/answer state of one session and the descriptions it holds.

    Attributes:
        state: the :class:`OfferAnswerState`.
        local: our description in force (the last completed exchange), or ``None``.
        remote: the peer's description in force, or ``None``.
        offer: the outstanding offer (ours in OFFER_SENT, EARLY, REOFFER_SENT;
            the peer's in OFFER_RECEIVED, REOFFER_RECEIVED), else ``None``.
        early: the provisional answers to our first offer, by the To tag of
            the early dialog that sent each (RFC 3261 §13.2.1).
        early_tag: the tag of the early answer in use (the latest), or ``None``.
    """

    state: OfferAnswerState = OfferAnswerState.NO_SESSION
    local: SessionDescription | None = None
    remote: SessionDescription | None = None
    offer: SessionDescription | None = None
    early: dict[str, SessionDescription] = attrs.field(factory=dict)
    early_tag: str | None = None

    # ------------------------------------------------------------ inputs
    def send_offer(self, offer: SessionDescription) -> None:
        """We send ``offer`` (INVITE, offerless INVITE's 2xx, re-INVITE, UPDATE...).

        Raises:
            LocalProtocolError: an offer is outstanding already (either side).
        """
        self._step(In.SEND_OFFER, offer)

    def receive_offer(self, offer: SessionDescription) -> None:
        """The peer sent ``offer``.

        Raises:
            OfferAnswerError: (status 491) our offer is outstanding (glare,
                RFC 3261 §14.2); (500) the peer's is outstanding already.
        """
        self._step(In.RECEIVE_OFFER, offer)

    def send_answer(self, answer: SessionDescription) -> None:
        """We answer the peer's outstanding offer with ``answer``; both are in force.

        Raises:
            LocalProtocolError: no offer of the peer is outstanding.
        """
        self._step(In.SEND_ANSWER, answer)

    def receive_answer(self, answer: SessionDescription) -> None:
        """The peer answered our outstanding offer (2xx, ACK...); both are in force.

        Raises:
            OfferAnswerError: (status 400) no offer of ours is outstanding.
        """
        self._step(In.RECEIVE_ANSWER, answer)

    def receive_early_answer(self, answer: SessionDescription, tag: str) -> None:
        """A provisional response of the early dialog ``tag`` carried an answer to our first offer.

        It is kept for that tag and becomes the one in use (media follows the
        latest early dialog that sent SDP); the final answer decides.

        Raises:
            OfferAnswerError: (status 400) our first offer is not outstanding.
        """
        self._step(In.RECEIVE_EARLY_ANSWER, (answer, tag))

    def rollback(self) -> None:
        """The outstanding offer was refused or its request failed: what was in force stays (RFC 3264 §8).

        Raises:
            LocalProtocolError: no offer is outstanding.
        """
        self._step(In.ROLLBACK, None)

    # ------------------------------------------------------------ views
    @property
    def our_offer_outstanding(self) -> bool:
        """True while our offer awaits its answer."""
        return self.state in _OFFERS_OUT

    def early_answer(self, tag: str | None = None) -> SessionDescription | None:
        """The early answer of dialog ``tag`` (``None``: the one in use), or ``None``."""
        key = self.early_tag if tag is None else tag
        return self.early.get(key) if key is not None else None

    # ---------------------------------------------------------- machine
    def _step(self, inp: OfferAnswerInput, arg: object) -> None:
        entry = OA_TABLE.get((self.state, inp))
        if entry is None:
            detail = f"cannot {inp.value} in offer/answer state {self.state.value}"
            if inp.local:
                raise LocalProtocolError(detail)
            if inp is In.RECEIVE_OFFER:
                raise OfferAnswerError(detail, 491 if self.our_offer_outstanding else 500)
            raise OfferAnswerError(detail, 400)
        action, self.state = entry
        if action is Do.KEEP_OUR_OFFER or action is Do.KEEP_THEIR_OFFER:
            assert isinstance(arg, SessionDescription)
            self.offer = arg
        elif action is Do.KEEP_EARLY:
            assert isinstance(arg, tuple)
            early, tag = arg
            self.early[tag] = early
            self.early_tag = tag
        elif action is Do.THEIR_ANSWER:
            assert isinstance(arg, SessionDescription)
            self.local, self.remote, self.offer = self.offer, arg, None
            self._forget_early()
        elif action is Do.OUR_ANSWER:
            assert isinstance(arg, SessionDescription)
            self.local, self.remote, self.offer = arg, self.offer, None
        else:  # FORGET
            self.offer = None
            self._forget_early()

    def _forget_early(self) -> None:
        self.early.clear()
        self.early_tag = None
