"""The transaction layer of RFC 3261 §17 (with RFC 6026), sans-IO.

Theory of operation
-------------------
A :class:`TransactionLayer` owns every client and server transaction of a user
agent.  It is told about the world through four kinds of input, each with the
current time ``now`` (seconds, absolute, from the injected clock):

* bytes received (:meth:`~TransactionLayer.receive`) or an already parsed
  message (:meth:`~TransactionLayer.receive_message`);
* orders from the transaction user (TU): :meth:`~TransactionLayer.send_request`,
  :meth:`~TransactionLayer.respond`, :meth:`~TransactionLayer.ack_received`;
* timers coming due (:meth:`~TransactionLayer.handle_timer`);
* transport failures (:meth:`~TransactionLayer.transport_error`).

It answers with bytes to send (:meth:`~TransactionLayer.outbox`), events for
the TU (:meth:`~TransactionLayer.next_event`) and one deadline
(:meth:`~TransactionLayer.get_timer`).

Each transaction is one of four machines: INVITE client (ICT, Figure 5),
non-INVITE client (NICT, Figure 6), INVITE server (IST, Figure 7) and
non-INVITE server (NIST, Figure 8), with the Accepted state RFC 6026 adds to
the INVITE machines.  Every machine is a table ``{(State, Input): (Action,
next State)}`` below its figure; an input absent from the table is ignored and
counted in ``layer.stats["ignored"]`` (a stray retransmission, a late timer).
Entering a state starts or cancels that state's timers (:meth:`_enter`); a
timer whose duration is zero (reliable transports) fires at once.

Timers live in one heap of ``(deadline, seq, transaction, timer)`` entries with
lazy deletion: a transaction remembers the ``seq`` of each timer it runs, and an
entry whose ``seq`` is no longer remembered is skipped (and the heap is
compacted when such entries outnumber the live ones).  A terminated
transaction leaves the matching tables at once.

Matching (§17.1.3, §17.2.3): a response matches a client transaction by top Via
branch and CSeq method; a request matches a server transaction by top Via
branch, sent-by and method (ACK matches the INVITE's transaction; CANCEL has
its own).  A request whose branch lacks the ``z9hG4bK`` cookie (RFC 2543) is
matched by Request-URI, Call-ID, From tag, CSeq number, method and top Via;
the To tag is *not* compared (documented simplification: a 2543 ACK carries
the tag of our response, which the INVITE did not).

Deviations and choices, documented:

* The IST sends ``100 Trying`` at once for every new INVITE (§17.2.1 allows
  waiting 200 ms; not waiting keeps the layer simple and stops Timer A early).
* In the IST's Accepted state the transaction itself retransmits the last 2xx
  at T1, 2*T1, ... capped at T2 (the UAS core's duty in §13.3.1.4, on every
  transport, since the 2xx is end to end) until the TU calls
  :meth:`~TransactionLayer.ack_received`; if Timer L fires first the TU gets
  ``TransactionTimedOut(txn, "L")`` and should send BYE.  An ACK matching an
  IST in Accepted (an RFC 2543 peer, or a branch reused) is passed to the TU as
  ``RequestReceived(ack, source, txn)``; it does not stop the retransmissions
  by itself.
* A transport failure (§17.1.4, §17.2.4) ends the transaction with
  ``TransactionTimedOut(txn, "transport")``.
* Every transaction ends with exactly one :class:`TransactionTerminated`; a
  timeout or transport failure comes just before it.
* A TU order absent from the table of a live transaction (a 1xx after a final,
  a second final) raises :class:`~txsipua.errors.LocalProtocolError`; once a
  transaction has terminated, orders for it are ignored and counted in
  ``stats["late_tu"]`` (it may have timed out just before the TU acted).
* ICT in Proceeding stops Timers A and B as Figure 5 says: a UAC that wants a
  bound on ringing uses its own timer and CANCEL (§13.3.1.1 Expires, Timer C).
"""

from __future__ import annotations

import collections
import enum
import heapq
from collections.abc import Callable

import attrs

from txsipua.core.builders import build_ack, make_response
from txsipua.core.ids import BRANCH_MAGIC_COOKIE, IdGenerator
from txsipua.core.transport import (
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    Address,
    Outgoing,
    response_destination,
    stamp_received,
    stamped_via,
)
from txsipua.errors import LocalProtocolError, ParseError
from txsipua.sip.message import (
    Headers,
    Request,
    Response,
    parse_message,
    reason_phrase,
    split_list_value,
)
from txsipua.sip.values import CSeq, Via

# --------------------------------------------------------------------------
# Timer values


@attrs.frozen
class Timers:
    """The base timer values of RFC 3261 §17.1.1.1 and Table 4, in seconds.

    Attributes:
        t1: RTT estimate, 0.5 s by default.
        t2: the maximum retransmission interval for non-INVITE requests and
            INVITE responses, 4 s by default.
        t4: the maximum time a message stays in the network, 5 s by default.
        d: Timer D over unreliable transports (RFC 3261 says at least 32 s).

    Raises:
        ValueError: T1 or T4 not positive, T2 below T1, or D negative.

    The derived timers are, for unreliable / reliable transports:
    A = T1 doubling (unreliable only); B = F = H = J(unreliable) = L = M =
    64*T1; D = ``d`` / 0; E, G = T1 doubling capped at T2 (unreliable only);
    I = K = T4 / 0; J = 64*T1 / 0.
    """

    t1: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    t2: float = attrs.field(default=4.0)
    t4: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    d: float = attrs.field(default=32.0, validator=attrs.validators.ge(0))

    @t2.validator
    def _check_t2(self, attribute: object, value: float) -> None:
        if not value >= self.t1:
            raise ValueError(f"T2 ({value} s) must be at least T1 ({self.t1} s)")

    @property
    def t64(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L and M, in seconds."""
        return 64 * self.t1


# --------------------------------------------------------------------------
# States, inputs, actions


class Kind(enum.Enum):
    """Which of the four transaction machines."""

    __hash__ = object.__hash__  # members are singletons: identity hash, fast table lookups

    ICT = "INVITE client"
    NICT = "non-INVITE client"
    IST = "INVITE server"
    NIST = "non-INVITE server"


class State(enum.Enum):
    """Transaction states (RFC 3261 §17, RFC 6026 §7.1, §7.2)."""

    __hash__ = object.__hash__  # members are singletons: identity hash, fast table lookups

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """Everything that can happen to a transaction.

    Timer inputs have the timer's RFC letter as value (``Input.TIMER_B.value``
    is ``"B"``); ``TIMER_2XX`` is the IST's 2xx retransmission timer (§13.3.1.4).
    """

    __hash__ = object.__hash__  # members are singletons: identity hash, fast table lookups

    REQUEST = "request retransmission"
    ACK = "ACK"
    RESPONSE_1XX = "1xx received"
    RESPONSE_2XX = "2xx received"
    RESPONSE_300_699 = "300-699 received"
    TU_1XX = "1xx from TU"
    TU_2XX = "2xx from TU"
    TU_300_699 = "300-699 from TU"
    TU_ACK = "TU saw the ACK"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "A"
    TIMER_B = "B"
    TIMER_D = "D"
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_J = "J"
    TIMER_K = "K"
    TIMER_L = "L"
    TIMER_M = "M"
    TIMER_2XX = "2xx"


class Action(enum.Enum):
    """Side effects of a transition (the part of a figure's label under the bar)."""

    __hash__ = object.__hash__  # members are singletons: identity hash, fast table lookups

    NONE = "-"
    ABSORB = "absorb retransmission"
    DELIVER = "response to TU"
    ACK_AND_DELIVER = "send ACK, response to TU"
    RESEND_ACK = "send ACK again"
    RETRANSMIT_REQUEST = "send request again, back off"
    SEND_RESPONSE = "send response"
    RESEND_RESPONSE = "send last response again"
    RETRANSMIT_RESPONSE = "send last response again, back off"
    TIMEOUT = "inform TU: timeout"
    TRANSPORT_FAILURE = "inform TU: transport error"
    DELIVER_ACK = "ACK to TU"
    STOP_2XX = "stop 2xx retransmissions"
    EXPIRE_L = "inform TU unless ACKed"


S = State
I = Input  # noqa: E741
A = Action

Table = dict[tuple[State, Input], tuple[Action, State]]

# --------------------------------------------------------------------------
# INVITE client transaction: RFC 3261 Figure 5 with RFC 6026 Figure 3.
#
#                               |INVITE from TU
#             Timer A fires     |INVITE sent          Timer A: T1, 2T1, 4T1...
#             Reset A,          V                     (unreliable only)
#             INVITE sent +-----------+
#                +--------|           |               Timer B fires or
#                |        |  Calling  |--------------> Transport Err.
#                +------->|           |               inform TU -> Terminated
#                         +-----------+
#        300-699 |  |2xx     |1xx
#      ACK sent  |  |to TU   |1xx to TU
#   resp. to TU  |  |        v          1xx to TU
#                |  |   +------------+<-----+
#                |  |   | Proceeding |------+
#                |  |   +------------+
#                |  |  300-699 |    | 2xx
#                |  |  ACK sent|    | to TU
#                |  |  to TU   |    |
#                v  |          |    v
#   +-----------+<--|----------+  +----------+<--+ 2xx
#   | Completed |   +------------>| Accepted |   | to TU
#   +-----------+                 +----------+---+
#    ^  |     | Timer D (32 s/0)        | Timer M (64*T1)
#    +--+     | or Transport Err.       | -
# 300-699     | (inform TU)             |
# ACK sent    v                         v
#            +----------------------------+
#            |         Terminated         |
#            +----------------------------+

ICT_TABLE: Table = {
    (S.CALLING, I.TIMER_A): (A.RETRANSMIT_REQUEST, S.CALLING),
    (S.CALLING, I.TIMER_B): (A.TIMEOUT, S.TERMINATED),
    (S.CALLING, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
    (S.CALLING, I.RESPONSE_1XX): (A.DELIVER, S.PROCEEDING),
    (S.CALLING, I.RESPONSE_2XX): (A.DELIVER, S.ACCEPTED),
    (S.CALLING, I.RESPONSE_300_699): (A.ACK_AND_DELIVER, S.COMPLETED),
    (S.PROCEEDING, I.RESPONSE_1XX): (A.DELIVER, S.PROCEEDING),
    (S.PROCEEDING, I.RESPONSE_2XX): (A.DELIVER, S.ACCEPTED),
    (S.PROCEEDING, I.RESPONSE_300_699): (A.ACK_AND_DELIVER, S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
    (S.COMPLETED, I.RESPONSE_300_699): (A.RESEND_ACK, S.COMPLETED),
    (S.COMPLETED, I.TIMER_D): (A.NONE, S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
    (S.ACCEPTED, I.RESPONSE_2XX): (A.DELIVER, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_M): (A.NONE, S.TERMINATED),
}

# --------------------------------------------------------------------------
# Non-INVITE client transaction: RFC 3261 Figure 6.
#
#                                  |Request from TU
#                                  |send request
#              Timer E             V                   Timer E: T1, 2T1, ... T2
#              send request  +-----------+             (unreliable only)
#                  +---------|           |------------------+
#                  |         |  Trying   |  Timer F         |
#                  +-------->|           |  or Transport Err|
#                            +-----------+  inform TU       |
#               200-699         |  |                        |
#               resp. to TU     |  |1xx                     |
#               +---------------+  |resp. to TU             |
#               |                  |                        |
#               |   Timer E        V       Timer F          |
#               |   send req +-----------+ or Transport Err |
#               |  +---------|           | inform TU        |
#               |  |         |Proceeding |----------------->|
#               |  +-------->|           |-----+            |
#               |            +-----------+     |1xx         |
#               |              |      ^        |resp to TU  |
#               | 200-699      |      +--------+            |
#               | resp. to TU  |                            |
#               |              V                            |
#               |            +-----------+                  |
#               |            |           |<--+ 200-699      |
#               +----------->| Completed |   | absorbed     |
#                            |           |---+              |
#                            +-----------+                  |
#                                  | Timer K (T4/0)         |
#                                  V                        |
#                            +-----------+                  |
#                            | Terminated|<-----------------+
#                            +-----------+

NICT_TABLE: Table = {
    (S.TRYING, I.TIMER_E): (A.RETRANSMIT_REQUEST, S.TRYING),
    (S.TRYING, I.TIMER_F): (A.TIMEOUT, S.TERMINATED),
    (S.TRYING, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
    (S.TRYING, I.RESPONSE_1XX): (A.DELIVER, S.PROCEEDING),
    (S.TRYING, I.RESPONSE_2XX): (A.DELIVER, S.COMPLETED),
    (S.TRYING, I.RESPONSE_300_699): (A.DELIVER, S.COMPLETED),
    (S.PROCEEDING, I.TIMER_E): (A.RETRANSMIT_REQUEST, S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_F): (A.TIMEOUT, S.TERMINATED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
    (S.PROCEEDING, I.RESPONSE_1XX): (A.DELIVER, S.PROCEEDING),
    (S.PROCEEDING, I.RESPONSE_2XX): (A.DELIVER, S.COMPLETED),
    (S.PROCEEDING, I.RESPONSE_300_699): (A.DELIVER, S.COMPLETED),
    (S.COMPLETED, I.RESPONSE_2XX): (A.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.RESPONSE_300_699): (A.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.TIMER_K): (A.NONE, S.TERMINATED),
}

# --------------------------------------------------------------------------
# INVITE server transaction: RFC 3261 Figure 7 with RFC 6026 Figure 5.
#
#                                 |INVITE
#                                 |pass INV to TU; 100 Trying unless
#                                 |the TU answered at once (§17.2.1)
#              INVITE             V
#       send last resp.   +------------+ 101-199 from TU
#               +---------|            |--------+ send response
#               +-------->| Proceeding |<-------+
#                         |            |-------------> Transport Err.
#                         +------------+               inform TU -> Terminated
#             300-699 from TU |      | 2xx from TU
#             send response   |      | send response, start L and the
#                             |      | 2xx retransmissions (T1..T2)
#   INVITE                    v      v
#   send last    +-----------+      +------------+<--+ INVITE: absorbed
#   response +---|           |      |            |---+ ACK: to TU
#            +-->| Completed |      |  Accepted  |<--+ 2xx from TU: send
#  Timer G: send |           |      |            |---+ 2xx timer: resend,
#  again (T1..T2)+-----------+      +------------+     back off (until the TU
#                  |      |           |   ^  |         reports the ACK)
#             ACK  |      | Timer H   |   +--+ TU saw the ACK: stop resending
#              -   |      | or        |
#                  v      | Transport | Timer L (64*T1): inform TU unless
#         +-----------+   | Err.      | the ACK came; Transport Err.
#         | Confirmed |   | inform TU |
#         +-----------+   |           |
#  INVITE, ACK:  | Timer I|           |
#  absorbed      | (T4/0) v           v
#                +---->+------------------+
#                      |    Terminated    |
#                      +------------------+

IST_TABLE: Table = {
    (S.PROCEEDING, I.REQUEST): (A.RESEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.TU_1XX): (A.SEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.TU_2XX): (A.SEND_RESPONSE, S.ACCEPTED),
    (S.PROCEEDING, I.TU_300_699): (A.SEND_RESPONSE, S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
    (S.COMPLETED, I.REQUEST): (A.RESEND_RESPONSE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_G): (A.RETRANSMIT_RESPONSE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_H): (A.TIMEOUT, S.TERMINATED),
    (S.COMPLETED, I.ACK): (A.NONE, S.CONFIRMED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
    (S.CONFIRMED, I.REQUEST): (A.ABSORB, S.CONFIRMED),
    (S.CONFIRMED, I.ACK): (A.ABSORB, S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_I): (A.NONE, S.TERMINATED),
    (S.ACCEPTED, I.REQUEST): (A.ABSORB, S.ACCEPTED),
    (S.ACCEPTED, I.ACK): (A.DELIVER_ACK, S.ACCEPTED),
    (S.ACCEPTED, I.TU_2XX): (A.SEND_RESPONSE, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_2XX): (A.RETRANSMIT_RESPONSE, S.ACCEPTED),
    (S.ACCEPTED, I.TU_ACK): (A.STOP_2XX, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_L): (A.EXPIRE_L, S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
}

# --------------------------------------------------------------------------
# Non-INVITE server transaction: RFC 3261 Figure 8.
#
#                                 |Request received
#                                 |pass to TU
#                                 V
#                           +-----------+
#             Request       |           | 1xx from TU
#             absorbed  +---|  Trying   |-------------+ send response
#                       +-->|           |             |
#                           +-----------+             |
#                               |                     v
#              200-699 from TU  |              +------------+ Request: send
#              send response    |              |            |---+ last resp.
#                               |              | Proceeding |<--+ 1xx from TU:
#                               |              |            |---+ send response
#                               |              +------------+<--+
#                               |   200-699 from TU  |     | Transport Err.
#                               |   send response    |     | inform TU
#                               v                    |     |
#   Request: send   +-----------+<-------------------+     |
#   last response+--|           |                          |
#                +->| Completed |--------------------------+
#                   |           | Transport Err.: inform TU|
#                   +-----------+                          |
#                         | Timer J (64*T1 / 0)            |
#                         v                                v
#                   +--------------------------------------+
#                   |              Terminated              |
#                   +--------------------------------------+

NIST_TABLE: Table = {
    (S.TRYING, I.REQUEST): (A.ABSORB, S.TRYING),
    (S.TRYING, I.TU_1XX): (A.SEND_RESPONSE, S.PROCEEDING),
    (S.TRYING, I.TU_2XX): (A.SEND_RESPONSE, S.COMPLETED),
    (S.TRYING, I.TU_300_699): (A.SEND_RESPONSE, S.COMPLETED),
    (S.PROCEEDING, I.REQUEST): (A.RESEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.TU_1XX): (A.SEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.TU_2XX): (A.SEND_RESPONSE, S.COMPLETED),
    (S.PROCEEDING, I.TU_300_699): (A.SEND_RESPONSE, S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
    (S.COMPLETED, I.REQUEST): (A.RESEND_RESPONSE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_J): (A.NONE, S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (A.TRANSPORT_FAILURE, S.TERMINATED),
}

TABLES: dict[Kind, Table] = {
    Kind.ICT: ICT_TABLE,
    Kind.NICT: NICT_TABLE,
    Kind.IST: IST_TABLE,
    Kind.NIST: NIST_TABLE,
}
"""The four machines, by kind."""

INITIAL_STATE: dict[Kind, State] = {
    Kind.ICT: State.CALLING,
    Kind.NICT: State.TRYING,
    Kind.IST: State.PROCEEDING,
    Kind.NIST: State.TRYING,
}
"""The state each machine starts in."""

_TU_INPUTS = frozenset({Input.TU_1XX, Input.TU_2XX, Input.TU_300_699})

# --------------------------------------------------------------------------
# Transactions


@attrs.define(eq=False, kw_only=True)
class Transaction:
    """What client and server transactions share.

    Attributes:
        kind: which machine (:class:`Kind`).
        request: the request that created the transaction.
        key: the matching key (§17.1.3 / §17.2.3); opaque.
        reliable: True over a reliable transport (TCP, TLS): no
            retransmissions, zero-length wait timers.
        state: the current :class:`State`.
        last_response: the last response received (client), or the last provisional
            response sent (server; ``None`` again once the final one is sent).
    """

    kind: Kind
    request: Request
    key: tuple[object, ...] = attrs.field(repr=False)
    reliable: bool
    state: State
    last_response: Response | None = None
    interval: float = attrs.field(default=0.0, repr=False)
    timers: dict[Input, int] = attrs.field(factory=dict, repr=False)

    @property
    def method(self) -> str:
        """The method of the request that created the transaction."""
        return self.request.method

    @property
    def branch(self) -> str | None:
        """The branch of the request's top Via (§8.1.1.7)."""
        return self.request.top_via.branch

    @property
    def is_invite(self) -> bool:
        """True for ICT and IST."""
        return self.kind is Kind.ICT or self.kind is Kind.IST

    @property
    def terminated(self) -> bool:
        """True once the transaction has reached Terminated."""
        return self.state is State.TERMINATED


@attrs.define(eq=False, kw_only=True)
class ClientTransaction(Transaction):
    """An INVITE or non-INVITE client transaction (RFC 3261 §17.1).

    Attributes:
        destination: where the request (and any ACK it builds) is sent.
        data: the request's bytes, serialised once.
        ack: the ACK the ICT built for a non-2xx final response (§17.1.1.3),
            or ``None``.
    """

    destination: Address
    data: bytes = attrs.field(repr=False)
    ack: Request | None = attrs.field(default=None, repr=False)
    ack_data: bytes | None = attrs.field(default=None, repr=False)


@attrs.define(eq=False, kw_only=True)
class ServerTransaction(Transaction):
    """An INVITE or non-INVITE server transaction (RFC 3261 §17.2).

    Attributes:
        source: the address the request came from.
        response_destination: where responses go (§18.2.2): ``source`` over
            reliable transports, else from the stamped top Via.
        acked: True once the TU reported the ACK for a 2xx
            (:meth:`TransactionLayer.ack_received`).
        final_status: the status of the final response sent, or ``None``.
            Once it is sent, :attr:`last_response` goes back to ``None``: the
            transaction keeps only the bytes (:attr:`response_data`) it may
            have to send again.
    """

    source: Address
    response_destination: Address
    response_data: bytes | None = attrs.field(default=None, repr=False)
    acked: bool = False
    octets: int = attrs.field(default=0, repr=False)
    final_status: int | None = None


# --------------------------------------------------------------------------
# Events


@attrs.frozen
class RequestReceived:
    """A request for the TU.

    Attributes:
        request: the request, its top Via stamped (§18.2.1).
        source: ``(ip, port)`` it came from.
        transaction: the new server transaction; ``None`` for an ACK that
            matched no INVITE server transaction (the ACK for a 2xx); the IST in
            Accepted for an ACK that matched it.
    """

    request: Request
    source: Address
    transaction: ServerTransaction | None


@attrs.frozen
class ResponseReceived:
    """A response for the TU: 1xx and finals, and 2xx retransmissions in Accepted.

    Attributes:
        response: the response.
        transaction: the client transaction it matched.
    """

    response: Response
    transaction: ClientTransaction


@attrs.frozen
class StrayResponse:
    """A response matching no client transaction (e.g. a 2xx retransmission after Timer M).

    Attributes:
        response: the response.
        source: ``(ip, port)`` it came from.
    """

    response: Response
    source: Address


@attrs.frozen
class TransactionTimedOut:
    """A transaction gave up.

    Attributes:
        transaction: the transaction.
        timer: ``"B"`` or ``"F"`` (client: no final response), ``"H"`` (IST: no
            ACK for a non-2xx), ``"L"`` (IST: the TU never reported the ACK for
            its 2xx), or ``"transport"`` (the transport reported a failure).
    """

    transaction: Transaction
    timer: str


@attrs.frozen
class TransactionTerminated:
    """A transaction reached Terminated and left the layer (sent exactly once).

    Attributes:
        transaction: the transaction.
    """

    transaction: Transaction


Event = (
    RequestReceived | ResponseReceived | StrayResponse | TransactionTimedOut | TransactionTerminated
)
"""Every event :meth:`TransactionLayer.next_event` returns."""

# --------------------------------------------------------------------------
# The layer

_REJECT_COPY = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})
_COMPACT_NEEDED = {
    "via": "Via",
    "v": "Via",
    "from": "From",
    "f": "From",
    "to": "To",
    "t": "To",
    "call-id": "Call-ID",
    "i": "Call-ID",
    "cseq": "CSeq",
}
_COMPACTION_THRESHOLD = 1024  # the heap is compacted past this many stale entries


def _response_input(status: int, tu: bool) -> Input:
    if status < 200:
        return Input.TU_1XX if tu else Input.RESPONSE_1XX
    if status < 300:
        return Input.TU_2XX if tu else Input.RESPONSE_2XX
    return Input.TU_300_699 if tu else Input.RESPONSE_300_699


OVERLOAD_NOTICE_EVERY = 1000
"""Past the first, one 503 in this many past a server-transaction cap makes a notice."""


@attrs.define(eq=False)
class TransactionLayer:
    """All transactions of one user agent (RFC 3261 §17), sans-IO.

    ``len(layer)`` is the number of live transactions (so an idle layer is
    falsy: test it against ``None``, not for truth).

    Args:
        timers: the base timer values.
        ids: identifier generator (used for the To tag of stateless error
            responses).
        max_server_transactions: live server transactions at most; a new
            request past it is answered 503 with Retry-After statelessly (an
            ACK, which makes none, is unaffected) and counted in
            ``overloaded``.  The default, 250,000, holds a sustained 3,000
            calls/s over UDP: each call leaves two server transactions (INVITE,
            BYE) alive for 64*T1 = 32 s, 192,000 in all.
        max_server_octets: the octets held by live server transactions'
            requests past the first :data:`SERVER_OCTETS_FREE` of each
            (header fields and body, estimated) at most; past it, 503 the
            same way.  Ordinary requests (under 2 KiB) cost nothing here and
            are bounded by the count alone, so call rates are unaffected,
            while a flood of 60 kB requests is capped at ~1,100 of them.
        overload_retry_after: the Retry-After seconds of that 503.

    Attributes:
        stats: counters, a :class:`collections.Counter`: ``received``,
            ``keepalives`` (blank datagrams), ``dropped_unparseable``,
            ``rejected`` (answered statelessly with an error),
            ``dropped_bad_via``, ``stray_responses``, ``absorbed`` (retransmissions
            the tables absorb), ``ignored`` (inputs absent from a table),
            ``late_tu`` (TU orders for terminated transactions),
            ``retransmissions`` (messages sent again), ``sent``,
            ``overloaded`` (requests refused with 503 past a cap; the
            first and every :data:`OVERLOAD_NOTICE_EVERY`-th also make a line
            for :meth:`take_notices`).
    """

    timers: Timers = attrs.field(factory=Timers)
    ids: IdGenerator = attrs.field(factory=IdGenerator)
    max_server_transactions: int = 250_000
    max_server_octets: int = 64 * 1024 * 1024
    overload_retry_after: int = 5
    stats: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    _client: dict[tuple[object, ...], ClientTransaction] = attrs.field(factory=dict, init=False)
    _server: dict[tuple[object, ...], ServerTransaction] = attrs.field(factory=dict, init=False)
    _server_octets: int = attrs.field(default=0, init=False)
    _heap: list[tuple[float, int, Transaction, Input]] = attrs.field(factory=list, init=False)
    _seq: int = attrs.field(default=0, init=False)
    _stale: int = attrs.field(default=0, init=False)
    _events: collections.deque[Event] = attrs.field(factory=collections.deque, init=False)
    _outbox: list[Outgoing] = attrs.field(factory=list, init=False)
    _trying_due: list[ServerTransaction] = attrs.field(factory=list, init=False)
    _notices: list[str] = attrs.field(factory=list, init=False)

    # ---------------------------------------------------------------- outputs

    def take_notices(self) -> list[str]:
        """Lines worth logging since the last call (a cap reached), in order; emptied.

        Rate-limited at the source: the first 503 past a cap and every
        :data:`OVERLOAD_NOTICE_EVERY`-th after it make one line each.
        """
        out = self._notices
        if out:
            self._notices = []
        return out

    def next_event(self) -> Event | None:
        """The next event for the TU, or ``None`` when there is none (drain after every input)."""
        events = self._events
        return events.popleft() if events else None

    def outbox(self, trying: bool = True) -> list[Outgoing]:
        """Everything to send since the last call, in order; the outbox is emptied.

        An INVITE server transaction whose TU has not answered it yet (no
        provisional or final response sent) gets its 100 Trying here, at the
        end of the input that created it: RFC 3261 §17.2.1 asks for one unless
        the TU answers within 200 ms, and a TU that answers within the same
        input (an auto-answer, a digest challenge, a UAS check's 4xx) makes it
        needless.

        Args:
            trying: False holds the pending 100s back for a later call (the
                TU has not seen every request of this input yet).
        """
        if trying and self._trying_due:
            due = self._trying_due
            self._trying_due = []
            for st in due:
                if st.last_response is None and st.state is State.PROCEEDING:
                    self._send_response(st, make_response(st.request, 100, "Trying"))
        out = self._outbox
        self._outbox = []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline of any running timer (seconds, absolute), or ``None``."""
        heap = self._heap
        while heap:
            _, seq, txn, inp = heap[0]
            if txn.timers.get(inp) == seq:
                return heap[0][0]
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (seconds, absolute), earliest first.

        Safe to call early or late: an early call fires nothing; a late call
        fires everything overdue once and restarts retransmission timers from
        ``now``.
        """
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, txn, inp = heapq.heappop(heap)
            timers = txn.timers
            if timers.get(inp) != seq:
                self._stale -= 1
                continue
            del timers[inp]
            self._step(txn, inp, None, None, now)

    def __len__(self) -> int:
        return len(self._client) + len(self._server)

    @property
    def transaction_count(self) -> int:
        """How many transactions are alive (not yet terminated)."""
        return len(self._client) + len(self._server)

    def transactions(self) -> list[Transaction]:
        """The live transactions, client ones first."""
        return [*self._client.values(), *self._server.values()]

    # ---------------------------------------------------------- client side

    def send_request(
        self, request: Request, destination: Address, now: float, reliable: bool = False
    ) -> ClientTransaction:
        """Start a client transaction and send its request (RFC 3261 §17.1).

        Args:
            request: the request; its top Via must carry a branch starting with
                ``z9hG4bK`` unique to this transaction (a CANCEL reuses its
                INVITE's branch: the CSeq method tells them apart).
            destination: ``(host, port)`` to send to.
            now: the current time, seconds.
            reliable: True over TCP/TLS (no retransmission; Timers D and K are 0).

        Returns:
            The new :class:`ClientTransaction`: an ICT for INVITE, else a NICT.

        Raises:
            LocalProtocolError: an ACK (use :meth:`send_stateless`), a missing
                or malformed top Via, a branch without the magic cookie, or a
                branch and method already in use by a live transaction.
        """
        method = request.method
        if method == "ACK":
            raise LocalProtocolError("an ACK is not a transaction: use send_stateless()")
        try:
            via = request.top_via
        except ParseError as exc:
            raise LocalProtocolError(f"request needs a valid top Via: {exc.detail}") from None
        branch = via.branch
        if not branch or not branch.startswith(BRANCH_MAGIC_COOKIE):
            raise LocalProtocolError(
                f"top Via branch {branch!r} must start with {BRANCH_MAGIC_COOKIE} (RFC 3261 §8.1.1.7)"
            )
        key = (branch, method)
        if key in self._client:
            raise LocalProtocolError(f"a {method} transaction with branch {branch} is already live")
        data = request.to_bytes()
        kind = Kind.ICT if method == "INVITE" else Kind.NICT
        txn = ClientTransaction(
            kind=kind,
            request=request,
            key=key,
            reliable=reliable,
            state=INITIAL_STATE[kind],
            destination=destination,
            data=data,
        )
        self._client[key] = txn
        self._outbox.append(Outgoing(data, destination))
        self.stats["sent"] += 1
        t = self.timers
        if not reliable:
            txn.interval = t.t1
            self._start_timer(txn, Input.TIMER_A if kind is Kind.ICT else Input.TIMER_E, t.t1, now)
        self._start_timer(txn, Input.TIMER_B if kind is Kind.ICT else Input.TIMER_F, t.t64, now)
        return txn

    def send_stateless(self, message: Request | Response, destination: Address, now: float) -> None:
        """Send a message outside any transaction (the ACK for a 2xx, §13.2.2.4).

        Args:
            message: the request or response.
            destination: ``(host, port)``.
            now: the current time, seconds (unused; kept for symmetry).
        """
        self._outbox.append(Outgoing(message.to_bytes(), destination))
        self.stats["sent"] += 1

    # ---------------------------------------------------------- server side

    def respond(self, server_txn: ServerTransaction, response: Response, now: float) -> None:
        """Send a response within a server transaction (RFC 3261 §17.2).

        The response goes to ``server_txn.response_destination`` (§18.2.2).
        The TU builds it from the request of the RequestReceived event (whose
        top Via is already stamped).

        Args:
            server_txn: the transaction from :class:`RequestReceived`.
            response: the response, status 100-699.
            now: the current time, seconds.

        Raises:
            LocalProtocolError: the live transaction cannot send this response
                in its state (e.g. a final response after a final response).
        """
        inp = _response_input(response.status, tu=True)
        if server_txn.state is State.TERMINATED:
            self.stats["late_tu"] += 1
            return
        if (server_txn.state, inp) not in TABLES[server_txn.kind]:
            raise LocalProtocolError(
                f"{server_txn.kind.value} transaction in state {server_txn.state.value} "
                f"cannot send a {response.status} response"
            )
        self._step(server_txn, inp, response, None, now)

    def ack_received(self, server_txn: ServerTransaction, now: float) -> None:
        """The TU saw the ACK for its 2xx (§13.3.1.4): stop retransmitting the 2xx.

        The IST stays in Accepted until Timer L to absorb retransmitted
        INVITEs (RFC 6026 §7.1). Never raises: a call for a transaction in any
        other state is counted in ``stats["late_tu"]``.

        Args:
            server_txn: the INVITE server transaction of the 2xx.
            now: the current time, seconds.
        """
        if server_txn.state is not State.ACCEPTED:
            self.stats["late_tu"] += 1
            return
        self._step(server_txn, Input.TU_ACK, None, None, now)

    def matching_invite(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (RFC 3261 §9.2), or ``None``.

        Args:
            cancel: a received CANCEL request.
        """
        try:
            key = self._server_key(cancel, cancel.top_via, "INVITE")
        except ParseError:
            return None
        txn = self._server.get(key)
        if txn is not None and txn.kind is Kind.IST:
            return txn
        return None

    # ------------------------------------------------------------- receiving

    def receive(self, data: bytes, source: Address, now: float, reliable: bool = False) -> None:
        """Parse bytes from the network and feed them to the matching transaction.

        Never raises.  A malformed request (not an ACK) whose top Via parses is
        answered statelessly with the parse error's status (400, 413, 505...)
        and a reason naming the defect, even when From, To, Call-ID or CSeq is
        missing (RFC 3261 §8.2, RFC 4475 §3.1.2); anything else malformed is
        dropped and counted in :attr:`stats`.

        Args:
            data: one datagram, or one message framed from a stream.
            source: ``(ip, port)`` it came from.
            now: the current time, seconds.
            reliable: True when it came over TCP/TLS.
        """
        self.stats["received"] += 1
        try:
            msg = parse_message(data, stream=reliable)
        except ParseError as exc:
            if isinstance(data, bytes | bytearray) and not data.strip(b"\r\n"):
                self.stats["keepalives"] += 1  # RFC 5626 §4.4.1 CRLF keepalive
                return
            self._reject_unparseable(data, exc, source, reliable)
            return
        except Exception:  # the parser promises ParseError only; never let anything out
            self.stats["dropped_unparseable"] += 1
            return
        if isinstance(msg, Request) and msg.cseq.seq >= 2**31:
            # RFC 3261 §8.1.1.5: a request's sequence number is below 2**31 (the
            # grammar allows 32 bits: the parser takes it, the UAS refuses it)
            self._reject_parsed(msg, ParseError(f"CSeq {msg.cseq.seq} is not below 2**31"), source, reliable)
            return
        self._dispatch(msg, source, now, reliable)

    def receive_message(
        self, msg: Request | Response, source: Address, now: float, reliable: bool = False
    ) -> None:
        """Like :meth:`receive` for a message already parsed (e.g. framed from a stream).

        Args:
            msg: the request or response.
            source: ``(ip, port)`` it came from.
            now: the current time, seconds.
            reliable: True when it came over TCP/TLS.
        """
        self.stats["received"] += 1
        self._dispatch(msg, source, now, reliable)

    def transport_error(self, destination: Address, now: float) -> None:
        """The transport could not send to ``destination`` (RFC 3261 §17.1.4, §17.2.4, §18.4).

        Every client transaction sending there and every server transaction
        responding there ends with ``TransactionTimedOut(txn, "transport")``
        then :class:`TransactionTerminated` (unless its state ignores the
        error, e.g. a NICT already Completed).

        Args:
            destination: the ``(host, port)`` that failed.
            now: the current time, seconds.
        """
        for ct in [t for t in self._client.values() if t.destination == destination]:
            self._step(ct, Input.TRANSPORT_ERROR, None, None, now)
        for st in [t for t in self._server.values() if t.response_destination == destination]:
            self._step(st, Input.TRANSPORT_ERROR, None, None, now)

    # ------------------------------------------------------------- internals

    def _dispatch(
        self, msg: Request | Response, source: Address, now: float, reliable: bool
    ) -> None:
        if isinstance(msg, Response):
            self._receive_response(msg, source, now)
        else:
            self._receive_request(msg, source, now, reliable)

    def _receive_response(self, msg: Response, source: Address, now: float) -> None:
        try:
            branch = msg.top_via.branch
            method = msg.cseq.method
        except ParseError:
            self.stats["dropped_bad_via"] += 1
            return
        txn = self._client.get((branch, method)) if branch else None
        if txn is None:
            self.stats["stray_responses"] += 1
            self._events.append(StrayResponse(msg, source))
            return
        self._step(txn, _response_input(msg.status, tu=False), msg, source, now)

    def _server_key(self, msg: Request, via: Via, method: str) -> tuple[object, ...]:
        """The §17.2.3 key; ``method`` is INVITE for an ACK or when looking up a CANCEL's INVITE."""
        branch = via.branch
        if branch is not None and branch.startswith(BRANCH_MAGIC_COOKIE):
            return (branch, via.host.lower(), via.port, method)
        # RFC 2543 (§17.2.3, second part); the To tag is deliberately not compared.
        return (
            "rfc2543",
            msg.uri_text,
            msg.call_id,
            msg.from_.tag,
            msg.cseq.seq,
            method,
            via.transport,
            via.host.lower(),
            via.port,
            branch,
        )

    def _receive_request(self, msg: Request, source: Address, now: float, reliable: bool) -> None:
        method = msg.method
        try:
            via = msg.top_via
        except ParseError:
            self.stats["dropped_bad_via"] += 1
            return
        try:
            key = self._server_key(msg, via, "INVITE" if method == "ACK" else method)
        except ParseError as exc:  # only the RFC 2543 key reads From and CSeq
            self._reject_parsed(msg, exc, source, reliable)
            return
        txn = self._server.get(key)
        if txn is not None:
            self._step(txn, Input.ACK if method == "ACK" else Input.REQUEST, msg, source, now)
            return
        # A new request: §18.2.1 stamping, then a new transaction (not for ACK).
        new_via = stamped_via(via, source)
        if new_via is not None:
            headers = msg.headers
            headers.pop_first_value("Via")
            headers.prepend("Via", str(new_via))
            via = new_via
        if method == "ACK":
            self._events.append(RequestReceived(msg, source, None))
            return
        octets = _request_octets(msg)
        if (len(self._server) >= self.max_server_transactions
                or self._server_octets + octets > self.max_server_octets):
            self._refuse_overloaded(msg, via, source, reliable)
            return
        kind = Kind.IST if method == "INVITE" else Kind.NIST
        st = ServerTransaction(
            kind=kind,
            request=msg,
            key=key,
            reliable=reliable,
            state=INITIAL_STATE[kind],
            source=source,
            response_destination=source if reliable else response_destination(via),
            octets=octets,
        )
        self._server[key] = st
        self._server_octets += octets
        if kind is Kind.IST:
            self._trying_due.append(st)  # sent by outbox() unless the TU answers first
        self._events.append(RequestReceived(msg, source, st))

    def _refuse_overloaded(self, msg: Request, via: Via, source: Address, reliable: bool) -> None:
        """503 + Retry-After outside any transaction (RFC 3261 §21.5.4, §20.33): a cap is reached."""
        self.stats["overloaded"] += 1
        n = self.stats["overloaded"]
        if n == 1 or n % OVERLOAD_NOTICE_EVERY == 0:
            self._notices.append(
                f"503 to a {msg.method} from {source[0]}:{source[1]}: server transactions at their cap "
                f"({len(self._server)} of {self.max_server_transactions}, {self._server_octets} of "
                f"{self.max_server_octets} octets held); {n} refused so far")
        response = make_response(msg, 503, new_tag=self.ids.tag,
                                 headers=[("Retry-After", str(self.overload_retry_after))])
        data = response.to_bytes()
        self._outbox.append(Outgoing(data, source if reliable else response_destination(via)))
        self.stats["sent"] += 1

    # ---- stateless rejection of malformed requests (RFC 3261 §8.2, §21.4.1)

    def _reject_unparseable(
        self, data: bytes, exc: ParseError, source: Address, reliable: bool
    ) -> None:
        """Answer bytes that failed to parse, if they look like a request we can answer."""
        salvaged = _salvage_request(data)
        if salvaged is None:
            self.stats["dropped_unparseable"] += 1
            return
        self._reject(salvaged[0], salvaged[1], exc, source, reliable)

    def _reject_parsed(
        self, msg: Request, exc: ParseError, source: Address, reliable: bool
    ) -> None:
        if msg.method == "ACK":
            self.stats["dropped_unparseable"] += 1
            return
        fields = [(n, v) for n, v in msg.headers.items() if n in _REJECT_COPY]
        self._reject(msg.method, fields, exc, source, reliable)

    def _reject(
        self,
        method: str,
        fields: list[tuple[str, str]],
        exc: ParseError,
        source: Address,
        reliable: bool,
    ) -> None:
        """Answer a malformed ``method`` request statelessly (RFC 3261 §8.2.6, §18.2.2).

        ``fields`` holds the request's Via field lines and whichever of From, To,
        Call-ID and CSeq it had (the first of each); the top Via must parse.  A
        missing From, To or Call-ID, or a CSeq that does not parse, is replaced
        (an anonymous URI, a new Call-ID, ``0 method``) so the answer is valid
        SIP.  The response goes to the packet's real source address (its port
        when the Via asks for ``rport``, else the sent-by port): never to a
        ``received`` the peer wrote itself.
        """
        status = exc.status if 300 <= exc.status <= 699 else 400
        detail = exc.detail.replace("\r", " ").replace("\n", " ")[:120]
        reason = f"{reason_phrase(status)} ({detail})"
        out: list[tuple[str, str]] = []
        via: Via | None = None
        for name, value in fields:
            if name == "To" and "tag=" not in value.lower():
                value = f"{value};tag={self.ids.tag()}"
            elif name == "Via" and via is None:
                try:
                    parts = split_list_value(value)
                    via = Via.parse(parts[0])
                except (ParseError, IndexError):
                    break
                stamped = stamped_via(via, source)
                if "rport" in via.params:  # RFC 3581 §4: the port seen, whatever was written
                    stamped = via.with_params(received=source[0], rport=str(source[1]))
                if stamped is not None:  # §18.2.1, as for any request we answer
                    value = ", ".join([str(stamped), *parts[1:]])
            out.append((name, value))
        if via is None:  # no usable top Via: nowhere to answer (§18.2.2)
            self.stats["dropped_unparseable"] += 1
            return
        present = {n for n, _ in out}
        for name in ("From", "To"):
            if name not in present:
                out.append((name, f"<sip:anonymous@anonymous.invalid>;tag={self.ids.tag()}"))
        if "Call-ID" not in present:
            out.append(("Call-ID", self.ids.call_id()))
        try:
            CSeq.parse(next(v for n, v in out if n == "CSeq"))
        except (ParseError, StopIteration):
            out = [(n, v) for n, v in out if n != "CSeq"]
            out.append(("CSeq", f"0 {method}"))
        destination = source
        if not reliable:
            port = source[1] if "rport" in via.params else via.port
            if port is None:
                port = DEFAULT_TLS_PORT if via.transport == "TLS" else DEFAULT_PORT
            destination = (source[0], port)
        try:
            data = Response(status, reason, Headers(out)).to_bytes()
            parse_message(data)  # only valid SIP leaves (a method that is no token: drop)
        except ParseError:
            self.stats["dropped_unparseable"] += 1
            return
        self._outbox.append(Outgoing(data, destination))
        self.stats["rejected"] += 1
        self.stats["sent"] += 1

    # ---- the machine

    def _step(
        self,
        txn: Transaction,
        inp: Input,
        msg: Request | Response | None,
        source: Address | None,
        now: float,
    ) -> None:
        entry = TABLES[txn.kind].get((txn.state, inp))
        if entry is None:
            self.stats["ignored"] += 1
            return
        action, next_state = entry
        _ACTIONS[action](self, txn, inp, msg, source, now)
        if next_state is not txn.state:
            txn.state = next_state
            self._enter(txn, next_state, now)

    def _enter(self, txn: Transaction, state: State, now: float) -> None:
        """Start and stop the timers of the state just entered."""
        if state is State.TERMINATED:
            self._terminate(txn)
            return
        kind = txn.kind
        t = self.timers
        if kind is Kind.ICT:
            self._cancel(txn, Input.TIMER_A)
            self._cancel(txn, Input.TIMER_B)
            if state is State.COMPLETED:
                self._start_timer(txn, Input.TIMER_D, 0.0 if txn.reliable else t.d, now)
            elif state is State.ACCEPTED:
                self._start_timer(txn, Input.TIMER_M, t.t64, now)
        elif kind is Kind.NICT:
            if state is State.COMPLETED:
                self._cancel(txn, Input.TIMER_E)
                self._cancel(txn, Input.TIMER_F)
                self._start_timer(txn, Input.TIMER_K, 0.0 if txn.reliable else t.t4, now)
        elif kind is Kind.IST:
            if state is State.COMPLETED:
                if not txn.reliable:
                    txn.interval = t.t1
                    self._start_timer(txn, Input.TIMER_G, t.t1, now)
                self._start_timer(txn, Input.TIMER_H, t.t64, now)
            elif state is State.CONFIRMED:
                self._cancel(txn, Input.TIMER_G)
                self._cancel(txn, Input.TIMER_H)
                self._start_timer(txn, Input.TIMER_I, 0.0 if txn.reliable else t.t4, now)
            elif state is State.ACCEPTED:
                txn.interval = t.t1
                self._start_timer(txn, Input.TIMER_2XX, t.t1, now)
                self._start_timer(txn, Input.TIMER_L, t.t64, now)
        elif kind is Kind.NIST and state is State.COMPLETED:
            self._start_timer(txn, Input.TIMER_J, 0.0 if txn.reliable else t.t64, now)

    def abandon(self, txn: ClientTransaction, now: float) -> None:
        """Destroy a client transaction its TU has given up on; it sends nothing more.

        RFC 3261 §9.1: an INVITE still without a final response 64*T1 after
        its CANCEL is considered cancelled and its client transaction
        destroyed.  A :class:`TransactionTerminated` event follows.
        """
        if not txn.terminated:
            txn.state = State.TERMINATED
            self._terminate(txn)

    def _terminate(self, txn: Transaction) -> None:
        self._stale += len(txn.timers)
        txn.timers.clear()
        if isinstance(txn, ClientTransaction):
            if self._client.get(txn.key) is txn:
                del self._client[txn.key]
        elif self._server.get(txn.key) is txn:
            del self._server[txn.key]
            self._server_octets -= txn.octets
        self._events.append(TransactionTerminated(txn))

    def _start_timer(self, txn: Transaction, inp: Input, delay: float, now: float) -> None:
        if delay <= 0.0:  # reliable transports: the wait is zero, fire at once
            self._cancel(txn, inp)
            self._step(txn, inp, None, None, now)
            return
        self._seq += 1
        seq = self._seq
        if inp in txn.timers:
            self._stale += 1
        txn.timers[inp] = seq
        heap = self._heap
        heapq.heappush(heap, (now + delay, seq, txn, inp))
        if self._stale > _COMPACTION_THRESHOLD and 2 * self._stale > len(heap):
            self._compact()

    def _cancel(self, txn: Transaction, inp: Input) -> None:
        if txn.timers.pop(inp, None) is not None:
            self._stale += 1

    def _compact(self) -> None:
        heap = [e for e in self._heap if e[2].timers.get(e[3]) == e[1]]
        heapq.heapify(heap)
        self._heap = heap
        self._stale = 0

    def _send_response(self, st: ServerTransaction, response: Response) -> None:
        data = response.to_bytes()
        st.response_data = data
        if response.status >= 200:
            # The transaction lives on for its retransmission timers (up to
            # 64*T1) with only bytes to resend: keep the final response as
            # those bytes and its status, and drop the request's parsed
            # header values (rebuilt on demand), so the many long-lived
            # transactions of a busy UAS hold few objects for the garbage
            # collector to walk.
            st.last_response = None
            st.final_status = response.status
            st.request.headers.forget_parsed()
        else:
            st.last_response = response
        self._outbox.append(Outgoing(data, st.response_destination))
        self.stats["sent"] += 1

    # ---- actions: (layer, transaction, input, message or None, source or None, now)

    def _a_none(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        pass

    def _a_absorb(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        self.stats["absorbed"] += 1

    def _a_deliver(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        assert isinstance(txn, ClientTransaction) and isinstance(msg, Response)
        txn.last_response = msg
        self._events.append(ResponseReceived(msg, txn))

    def _a_ack_and_deliver(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        assert isinstance(txn, ClientTransaction) and isinstance(msg, Response)
        ack = build_ack(txn.request, msg)
        txn.ack = ack
        txn.ack_data = data = ack.to_bytes()
        self._outbox.append(Outgoing(data, txn.destination))
        self.stats["sent"] += 1
        self._a_deliver(txn, inp, msg, source, now)

    def _a_resend_ack(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        assert isinstance(txn, ClientTransaction)
        if txn.ack_data is not None:
            self._outbox.append(Outgoing(txn.ack_data, txn.destination))
            self.stats["retransmissions"] += 1

    def _a_retransmit_request(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        assert isinstance(txn, ClientTransaction)
        self._outbox.append(Outgoing(txn.data, txn.destination))
        self.stats["retransmissions"] += 1
        if txn.kind is Kind.ICT:  # Timer A doubles without a cap (§17.1.1.2)
            txn.interval *= 2
        elif txn.state is State.PROCEEDING:  # §17.1.2.2: T2 once a 1xx came
            txn.interval = self.timers.t2
        else:
            txn.interval = min(2 * txn.interval, self.timers.t2)
        self._start_timer(txn, inp, txn.interval, now)

    def _a_send_response(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        assert isinstance(txn, ServerTransaction) and isinstance(msg, Response)
        self._send_response(txn, msg)

    def _a_resend_response(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        assert isinstance(txn, ServerTransaction)
        if txn.response_data is not None:
            self._outbox.append(Outgoing(txn.response_data, txn.response_destination))
            self.stats["retransmissions"] += 1

    def _a_retransmit_response(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        self._a_resend_response(txn, inp, msg, source, now)
        txn.interval = min(2 * txn.interval, self.timers.t2)
        self._start_timer(txn, inp, txn.interval, now)

    def _a_timeout(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        self._events.append(TransactionTimedOut(txn, inp.value))

    def _a_transport_failure(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        self._events.append(TransactionTimedOut(txn, "transport"))

    def _a_deliver_ack(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        assert isinstance(txn, ServerTransaction) and isinstance(msg, Request)
        src = source if isinstance(source, tuple) else txn.source
        self._events.append(RequestReceived(stamp_received(msg, src), src, txn))

    def _a_stop_2xx(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        assert isinstance(txn, ServerTransaction)
        self._cancel(txn, Input.TIMER_2XX)
        txn.acked = True
        txn.response_data = None  # INVITE retransmissions are absorbed from now on

    def _a_expire_l(
        self, txn: Transaction, inp: Input, msg: object, source: object, now: float
    ) -> None:
        assert isinstance(txn, ServerTransaction)
        if not txn.acked:
            self._events.append(TransactionTimedOut(txn, "L"))


_ActionFn = Callable[
    [TransactionLayer, Transaction, Input, "Request | Response | None", "Address | None", float],
    None,
]

_ACTIONS: dict[Action, _ActionFn] = {
    Action.NONE: TransactionLayer._a_none,
    Action.ABSORB: TransactionLayer._a_absorb,
    Action.DELIVER: TransactionLayer._a_deliver,
    Action.ACK_AND_DELIVER: TransactionLayer._a_ack_and_deliver,
    Action.RESEND_ACK: TransactionLayer._a_resend_ack,
    Action.RETRANSMIT_REQUEST: TransactionLayer._a_retransmit_request,
    Action.SEND_RESPONSE: TransactionLayer._a_send_response,
    Action.RESEND_RESPONSE: TransactionLayer._a_resend_response,
    Action.RETRANSMIT_RESPONSE: TransactionLayer._a_retransmit_response,
    Action.TIMEOUT: TransactionLayer._a_timeout,
    Action.TRANSPORT_FAILURE: TransactionLayer._a_transport_failure,
    Action.DELIVER_ACK: TransactionLayer._a_deliver_ack,
    Action.STOP_2XX: TransactionLayer._a_stop_2xx,
    Action.EXPIRE_L: TransactionLayer._a_expire_l,
}


# --------------------------------------------------------------------------
# Helpers


#: Octets of each request not counted against ``max_server_octets``.
SERVER_OCTETS_FREE = 2048


def _request_octets(msg: Request) -> int:
    """The octets a request holds past :data:`SERVER_OCTETS_FREE` (header fields and body, estimated)."""
    size = 64 + len(msg.body) + msg.headers.text_length()
    return max(0, size - SERVER_OCTETS_FREE)


def _salvage_request(data: bytes) -> tuple[str, list[tuple[str, str]]] | None:
    """From bytes that failed to parse, the fields a stateless error response needs.

    Returns the method and every Via field line and the first From, To, Call-ID
    and CSeq field (whichever are present, §8.2.6.2), in order, or ``None`` when the bytes are
    not a request other than ACK or hold no Via (then there is nowhere to
    answer, §18.2.2).  A field whose value holds a control character is left
    out (a Via holding one gives ``None``).
    """
    if isinstance(data, memoryview | bytearray):
        data = bytes(data)
    if not isinstance(data, bytes):
        return None
    data = data.lstrip(b"\r\n")
    cut = data.find(b"\r\n\r\n")
    if cut < 0:
        cut = data.find(b"\n\n")
    head = data if cut < 0 else data[:cut]
    text = head.decode("utf-8", "replace")
    lines = text.split("\n")
    start = lines[0].strip().split()
    if len(start) != 3 or start[0].startswith("SIP/") or start[0] == "ACK":
        return None
    if not start[2].upper().startswith("SIP/"):
        return None
    fields: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw.rstrip("\r")
        if not line:
            break
        if line[0] in " \t":
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        canon = _COMPACT_NEEDED.get(name.strip().lower())
        if canon is not None:
            fields.append((canon, value.strip()))
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in fields:
        bad = not value or any(c < " " and c != "\t" for c in value)
        if name == "Via":
            if bad:
                return None
        elif bad or name in seen:  # two Call-IDs: the first is copied (§8.2.6.2)
            continue
        seen.add(name)
        out.append((name, value))
    if "Via" not in seen:
        return None
    return start[0], out


__all__ = [
    "Action",
    "ClientTransaction",
    "Event",
    "ICT_TABLE",
    "IST_TABLE",
    "INITIAL_STATE",
    "Input",
    "Kind",
    "NICT_TABLE",
    "NIST_TABLE",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "State",
    "StrayResponse",
    "TABLES",
    "Timers",
    "Transaction",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimedOut",
    "build_ack",
]
