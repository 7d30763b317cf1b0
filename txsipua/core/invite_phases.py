"""The INVITE usage's vocabulary and its dialog phase (RFC 3261 §12, §13, §14, §15).

Theory of operation
-------------------
Both INVITE usages (:mod:`txsipua.core.invite_client`, §13.2;
:mod:`txsipua.core.invite_server`, §13.3) are tables ``{(Phase, Input):
(Action, next Phase)}`` run by :class:`~txsipua.core.invite.InviteSession`.
This module declares what those tables are made of: the :class:`Phase` of
either side, every :class:`Input` that can happen to a call, every
:class:`Action` (its value names the session method that performs it), and
the coarse :class:`SessionState` the user API shows (:data:`PUBLIC_STATE`).

It also holds the table both sides share, :data:`DIALOG_TABLE`, the dialog
phase drawn below: CONFIRMED, where in-dialog requests are sent
(:meth:`~txsipua.core.invite.InviteSession.request`, re-INVITE) and
received, TERMINATING while our BYE awaits its final response (so whoever
waits for the end may close the socket without losing the BYE's
retransmissions, §15.1.1), and TERMINATED.  A request we send in the dialog
(re-INVITE, INFO, MESSAGE...) answered 408, or that gets no response at all
(timeout or transport error), ends the call with a BYE; one answered 481 ends
it without (§12.2.1.2, §14.1).

Pure: no Twisted, no clock, no I/O.
"""

from __future__ import annotations

import enum


class SessionState(enum.Enum):
    """The coarse lifecycle of a call, as the user API sees it."""

    LOCATING = "locating"  # UAC: the next hop's name is being resolved (RFC 3263); nothing sent yet
    CALLING = "calling"
    PROCEEDING = "proceeding"
    RECEIVED = "received"
    RINGING = "ringing"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


class Phase(enum.Enum):
    """The phases of both INVITE usage tables."""

    __hash__ = object.__hash__

    CALLING = "calling"  # UAC: INVITE sent, no 1xx yet
    CANCEL_PENDING = "cancel pending"  # UAC: hung up before any 1xx; the CANCEL waits (§9.1)
    PROCEEDING = "proceeding"  # UAC: a 1xx came
    CANCELLING = "cancelling"  # UAC: CANCEL sent, waiting for the INVITE's final response
    RECEIVED = "received"  # UAS: INVITE received, nothing sent but 100
    RINGING = "ringing"  # UAS: a 1xx with our tag sent
    ACCEPTED = "accepted"  # UAS: 2xx sent, waiting for the ACK (§13.3.1.4)
    HANGUP_PENDING = "hangup pending"  # UAS: hung up after the 2xx; the BYE waits for the ACK (§15)
    CONFIRMED = "confirmed"  # the dialog is up
    TERMINATING = "terminating"  # our BYE is out (§15.1.1)
    TERMINATED = "terminated"

    @property
    def public(self) -> SessionState:
        """The :class:`SessionState` this phase is shown as."""
        return PUBLIC_STATE[self]


PUBLIC_STATE: dict[Phase, SessionState] = {
    Phase.CALLING: SessionState.CALLING,
    Phase.CANCEL_PENDING: SessionState.CALLING,
    Phase.PROCEEDING: SessionState.PROCEEDING,
    Phase.CANCELLING: SessionState.PROCEEDING,
    Phase.RECEIVED: SessionState.RECEIVED,
    Phase.RINGING: SessionState.RINGING,
    Phase.ACCEPTED: SessionState.ACCEPTED,
    Phase.HANGUP_PENDING: SessionState.TERMINATING,
    Phase.CONFIRMED: SessionState.CONFIRMED,
    Phase.TERMINATING: SessionState.TERMINATING,
    Phase.TERMINATED: SessionState.TERMINATED,
}


class Input(enum.Enum):
    """Everything that can happen to a call."""

    __hash__ = object.__hash__

    # responses to our INVITE (UAC)
    PROVISIONAL = "1xx"
    ANSWER = "2xx making the dialog"
    ANSWER_AGAIN = "2xx of the dialog again"
    ANSWER_FORK = "2xx of another dialog"
    ANSWER_UNUSABLE = "2xx without usable Contact"
    REQUEST_TERMINATED = "487, or a challenge after our hang-up"
    REJECTED = "300-699 other than 487"
    FAILED = "timeout, transport or authentication error"
    GIVE_UP = "64*T1 after CANCEL"
    # orders from the application (UAS) and requests received for the INVITE
    RING = "ring()"
    ACCEPT = "accept()"
    REJECT = "reject()"
    CANCEL = "CANCEL received"
    ACK = "ACK received"
    ACK_TIMEOUT = "Timer L: no ACK"
    # both sides
    HANGUP = "hangup()"
    MAX_DURATION = "max_call_duration reached"
    ABORT = "abort()"
    BYE_RECEIVED = "BYE received"
    BYE_DONE = "our BYE ended"
    DIALOG_LOST = "an in-dialog request got 408 or no response"
    DIALOG_GONE = "an in-dialog request got 481"
    PROVISIONAL_UNACKED = "64*T1 without PRACK for a reliable 1xx (RFC 3262 §3)"
    SESSION_EXPIRED = "no session refresh in time (RFC 4028 §10)"


class Action(enum.Enum):
    """Side effects; the value names the method of the session that performs it."""

    __hash__ = object.__hash__

    NONE = "a_none"
    # UAC
    EMIT_PROVISIONAL = "a_emit_provisional"
    EMIT_AND_CANCEL = "a_emit_and_cancel"
    STOP_RETRIES = "a_stop_retries"
    SEND_CANCEL = "a_send_cancel"
    ANSWERED = "a_answered"
    ANSWERED_AFTER_CANCEL = "a_answered_after_cancel"
    RESEND_ACK = "a_resend_ack"
    ACK_AND_BYE_FORK = "a_ack_and_bye_fork"
    ACK_UNUSABLE = "a_ack_unusable"
    FAIL_RESPONSE = "a_fail_response"
    FAIL_ERROR = "a_fail_error"
    END_CANCELLED = "a_end_cancelled"
    ABANDON = "a_abandon"
    ABORT_CALL = "a_abort_call"
    # UAS
    SEND_1XX = "a_send_1xx"
    SEND_2XX = "a_send_2xx"
    SEND_FINAL = "a_send_final"
    DECLINE = "a_decline"
    SEND_487 = "a_send_487"
    CONFIRM = "a_confirm"
    NO_ACK = "a_no_ack"
    HANGUP_NO_ACK = "a_hangup_no_ack"
    REJECT_UNACKED = "a_reject_unacked"
    # both
    BYE_HANGUP = "a_bye_hangup"
    BYE_MAX_DURATION = "a_bye_max_duration"
    BYE_NO_ACK = "a_bye_no_ack"
    BYE_LOST = "a_bye_lost"
    BYE_EXPIRED = "a_bye_expired"
    END_BY_BYE = "a_end_by_bye"
    END_GONE = "a_end_gone"
    FINISH = "a_finish"
    ABORT = "a_abort"


Table = dict[tuple[Phase, Input], tuple[Action, Phase]]

P = Phase
I = Input  # noqa: E741
A = Action

# --------------------------------------------------------------------------
# The dialog phase (RFC 3261 §12.2, §14, §15), shared by both usages.
#
#         2xx received and ACKed (UAC) / ACK of our 2xx received (UAS)
#                              |
#                              v          ACK of a re-INVITE's 2xx: -
#                        +-----------+ <--+
#     BYE received:      |           | ---+
#     200, CallEnded     | CONFIRMED |          a request we sent in the dialog
#     "bye" <------------|           |--------> answered 481: CallEnded "error",
#     -> TERMINATED      +-----------+          no BYE -> TERMINATED
#                          |       |
#   hangup(), or the call  |       | a request we sent in the dialog answered
#   lasted max_call_dura-  |       | 408 or timed out (§12.2.1.2), or a
#   tion, or no session    |       | re-INVITE's 2xx never ACKed: BYE
#   refresh in time        |       |
#   (RFC 4028 §10): BYE    |       |
#                          v       v
#                     +-----------------+  BYE answered or failed, or the
#                     |   TERMINATING   |  peer's BYE crossed ours:
#                     +-----------------+  CallEnded -> TERMINATED
#
# abort() (the core destroyed the transactions) ends every live phase at once.
# Entering CONFIRMED arms one named deadline when the core has a
# max_call_duration; leaving the table (a_finish) cancels it.

DIALOG_TABLE: Table = {
    (P.CONFIRMED, I.HANGUP): (A.BYE_HANGUP, P.TERMINATING),
    (P.CONFIRMED, I.MAX_DURATION): (A.BYE_MAX_DURATION, P.TERMINATING),
    (P.CONFIRMED, I.SESSION_EXPIRED): (A.BYE_EXPIRED, P.TERMINATING),
    (P.CONFIRMED, I.BYE_RECEIVED): (A.END_BY_BYE, P.TERMINATED),
    (P.CONFIRMED, I.BYE_DONE): (A.FINISH, P.TERMINATED),  # a BYE sent with request("BYE")
    (P.CONFIRMED, I.ACK): (A.NONE, P.CONFIRMED),  # the ACK of a re-INVITE's 2xx
    (P.CONFIRMED, I.ACK_TIMEOUT): (A.BYE_NO_ACK, P.TERMINATING),  # a re-INVITE's 2xx never ACKed
    (P.CONFIRMED, I.DIALOG_LOST): (A.BYE_LOST, P.TERMINATING),
    (P.CONFIRMED, I.DIALOG_GONE): (A.END_GONE, P.TERMINATED),
    (P.CONFIRMED, I.ABORT): (A.ABORT, P.TERMINATED),
    (P.TERMINATING, I.BYE_DONE): (A.FINISH, P.TERMINATED),
    (P.TERMINATING, I.BYE_RECEIVED): (A.FINISH, P.TERMINATED),  # BYEs crossed
    (P.TERMINATING, I.ABORT): (A.ABORT, P.TERMINATED),
}
"""The dialog phase, shared by both usages (merged into each side's table)."""


__all__ = ["DIALOG_TABLE", "PUBLIC_STATE", "Action", "Input", "Phase", "SessionState", "Table"]
