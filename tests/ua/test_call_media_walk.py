"""CallMedia driven through every offer/answer input in any order (hypothesis): the machine holds.

Each step is one of the five inputs of :class:`~txsipua.ua.media.CallMedia` (create_offer,
take_offer, take_answer, take_early_answer, rollback), with a valid or unusable body.  After each:
an input is either applied as ``media/negotiation.OA_TABLE`` says or refused with a typed error and
no change; ``pending`` is our outstanding offer; the stream carries the negotiated params; a hold
is reported only through ``on_hold_change`` and matches the attributes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.errors import LocalProtocolError, SIPError
from txsipua.media.negotiation import OA_TABLE, OfferAnswerInput, OfferAnswerState
from txsipua.media.offer_answer import PCMA, PCMU, make_offer
from txsipua.ua.config import Configuration
from txsipua.ua.media import CallMedia


class Stream:
    """Stands for the RTP stream: a port and the params it was configured with."""

    port = 40000

    def __init__(self) -> None:
        self.params: Any = None

    def configure(self, params: Any) -> None:
        self.params = params

    def stop(self) -> None:
        pass

    def start_recording(self) -> None:
        pass

    def add_sink(self, sink: Any, any_rate: bool = False) -> Any:
        return sink

    def add_digit_sink(self, sink: Any) -> None:
        pass


def peer(version: int, direction: str) -> bytes:
    return make_offer("203.0.113.7", 4000 + version, codecs=(PCMA, PCMU), dtmf=False, session_id=3,
                      session_version=version, direction=direction).to_bytes()


BODY = st.one_of(st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]), st.just("bad"))
STEP = st.tuples(st.sampled_from(["create_offer", "take_offer", "take_answer", "take_early_answer", "rollback"]),
                 BODY, st.sampled_from([None, "sendonly", "sendrecv"]), st.sampled_from(["a", "b"]))
INPUT = {"create_offer": OfferAnswerInput.SEND_OFFER, "take_answer": OfferAnswerInput.RECEIVE_ANSWER, "take_early_answer": OfferAnswerInput.RECEIVE_EARLY_ANSWER}


@settings(max_examples=200, deadline=None)
@given(st.lists(STEP, max_size=25))
def test_call_media_walk(steps: list[tuple[str, str, str | None, str]]) -> None:
    media = CallMedia(None, Configuration(), "192.0.2.10", session_id=9, stream_factory=lambda r, h: Stream())
    told: list[tuple[bool, bool]] = []
    media.on_hold_change = lambda local, remote: told.append((local, remote))
    for version, (name, body_kind, direction, tag) in enumerate(steps, start=1):
        body = b"v=0\r\nnot sdp" if body_kind == "bad" else peer(version, body_kind)
        state = media.state
        try:
            if name == "create_offer":
                media.create_offer(direction)
            elif name == "take_offer":
                media.take_offer(body)
            elif name == "take_answer":
                media.take_answer(body)
            elif name == "take_early_answer":
                media.take_early_answer(body, tag)
            else:
                media.rollback()
        except LocalProtocolError:
            assert name == "create_offer" and (state, OfferAnswerInput.SEND_OFFER) not in OA_TABLE
            assert media.state is state
            continue
        except SIPError as e:
            assert name == "take_offer" and media.state is state
            assert getattr(e, "status", 0) in (400, 488, 491, 500)
            continue
        if name == "take_offer":  # receive_offer then send_answer: two inputs, one call
            after = OA_TABLE[(state, OfferAnswerInput.RECEIVE_OFFER)][1]
            assert media.state is OA_TABLE[(after, OfferAnswerInput.SEND_ANSWER)][1] is OfferAnswerState.STABLE
        elif name in INPUT and (body_kind != "bad" or name == "create_offer") and (state, INPUT[name]) in OA_TABLE:
            assert media.state is OA_TABLE[(state, INPUT[name])][1]
        elif name == "take_answer" and body_kind == "bad" and state in (
                OfferAnswerState.OFFER_SENT, OfferAnswerState.EARLY, OfferAnswerState.REOFFER_SENT):
            assert media.state is OA_TABLE[(state, OfferAnswerInput.ROLLBACK)][1]  # withdrawn, RFC 3264 §8
        elif name != "rollback":
            assert media.state is state  # refused (bad SDP, or not expected now): nothing changes
        assert (media.pending is not None) == media.negotiation.our_offer_outstanding
        if media.params is not None:
            assert media.stream.params is media.params
        if media.state is OfferAnswerState.STABLE:
            assert media.local is not None and media.negotiation.remote is not None
        if told:
            assert told[-1] == (media.held_locally, media.held_remotely)
        else:
            assert not media.held_locally and not media.held_remotely
