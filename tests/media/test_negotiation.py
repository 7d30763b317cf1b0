"""The offer/answer machine of one session (txsipua.media.negotiation, RFC 3264 §4): table and walk."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.errors import LocalProtocolError, OfferAnswerError
from txsipua.media.negotiation import OA_TABLE, Negotiation, OfferAnswerInput, OfferAnswerState
from txsipua.media.offer_answer import make_offer

S = OfferAnswerState
In = OfferAnswerInput


def sdp(version: int) -> object:
    return make_offer("192.0.2.1", 4000 + version, session_id=7, session_version=version)


def feed(n: Negotiation, inp: OfferAnswerInput, version: int, tag: str = "t1") -> None:
    if inp is In.RECEIVE_EARLY_ANSWER:
        n.receive_early_answer(sdp(version), tag)  # type: ignore[arg-type]
    elif inp is In.ROLLBACK:
        n.rollback()
    else:
        getattr(n, inp.value)(sdp(version))


def test_the_table_names_every_state_and_input() -> None:
    """Every state is reachable in the table and every input appears in it."""
    assert {s for s, _ in OA_TABLE} | {nxt for _, nxt in OA_TABLE.values()} == set(S)
    assert {i for _, i in OA_TABLE} == set(In)


def test_a_delayed_offer_exchange() -> None:
    """Offerless INVITE (UAS): our offer in the 2xx, the answer in the ACK, both in force."""
    n = Negotiation()
    ours, theirs = sdp(1), sdp(2)
    n.send_offer(ours)  # type: ignore[arg-type]
    assert n.state is S.OFFER_SENT and n.offer is ours
    n.receive_answer(theirs)  # type: ignore[arg-type]
    assert (n.state, n.local, n.remote, n.offer) == (S.STABLE, ours, theirs, None)


def test_early_answers_by_tag_then_the_final_decides() -> None:
    """Two early dialogs send SDP: the latest is in use; the final answer replaces both."""
    n = Negotiation()
    n.send_offer(sdp(1))  # type: ignore[arg-type]
    a, b, final = sdp(2), sdp(3), sdp(4)
    n.receive_early_answer(a, "fork-a")  # type: ignore[arg-type]
    n.receive_early_answer(b, "fork-b")  # type: ignore[arg-type]
    assert n.state is S.EARLY and n.early_answer() is b and n.early_answer("fork-a") is a
    n.receive_answer(final)  # type: ignore[arg-type]
    assert n.state is S.STABLE and n.remote is final and n.early == {} and n.early_tag is None


def test_a_refused_reoffer_leaves_what_was_in_force() -> None:
    """STABLE -> REOFFER_SENT -> rollback: the same descriptions, nothing outstanding (RFC 3264 §8)."""
    n = Negotiation()
    n.receive_offer(sdp(1))  # type: ignore[arg-type]
    n.send_answer(sdp(2))  # type: ignore[arg-type]
    local, remote = n.local, n.remote
    n.send_offer(sdp(3))  # type: ignore[arg-type]
    n.rollback()
    assert (n.state, n.local, n.remote, n.offer) == (S.STABLE, local, remote, None)


def test_glare_is_refused_with_491_and_changes_nothing() -> None:
    """The peer's offer while ours is outstanding: OfferAnswerError 491 (RFC 3261 §14.2)."""
    n = Negotiation()
    n.send_offer(sdp(1))  # type: ignore[arg-type]
    n.receive_answer(sdp(2))  # type: ignore[arg-type]
    n.send_offer(sdp(3))  # type: ignore[arg-type]
    before = (n.state, n.offer)
    with pytest.raises(OfferAnswerError) as info:
        n.receive_offer(sdp(4))  # type: ignore[arg-type]
    assert info.value.status == 491 and (n.state, n.offer) == before


def test_an_answer_nobody_asked_for_is_400_and_a_local_mistake_is_local() -> None:
    n = Negotiation()
    with pytest.raises(OfferAnswerError) as info:
        n.receive_answer(sdp(1))  # type: ignore[arg-type]
    assert info.value.status == 400
    with pytest.raises(LocalProtocolError):
        n.send_answer(sdp(1))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        n.rollback()
    assert n.state is S.NO_SESSION


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(In)), st.sampled_from(["t1", "t2"])), max_size=30))
def test_walk_every_state_and_input(steps: list[tuple[OfferAnswerInput, str]]) -> None:
    """Any sequence of inputs: each is applied exactly as the table says or refused without change.

    Invariants: an offer is held exactly while one is outstanding; early answers only in EARLY;
    in STABLE both descriptions are in force; a refused local input raises LocalProtocolError,
    a refused remote one OfferAnswerError (491 only for an offer crossing ours).
    """
    n = Negotiation()
    for version, (inp, tag) in enumerate(steps):
        before = (n.state, n.local, n.remote, n.offer, dict(n.early))
        entry = OA_TABLE.get((n.state, inp))
        if entry is None:
            expected = LocalProtocolError if inp.local else OfferAnswerError
            with pytest.raises(expected) as info:
                feed(n, inp, version, tag)
            if isinstance(info.value, OfferAnswerError):
                glare = inp is In.RECEIVE_OFFER and before[0] in (S.OFFER_SENT, S.EARLY, S.REOFFER_SENT)
                assert (info.value.status == 491) == glare
            assert (n.state, n.local, n.remote, n.offer, dict(n.early)) == before
            continue
        feed(n, inp, version, tag)
        assert n.state is entry[1]
        assert (n.offer is not None) == n.state.offer_outstanding
        assert bool(n.early) == (n.state is S.EARLY)
        if n.state is S.STABLE:
            assert n.local is not None and n.remote is not None
        if n.state in (S.NO_SESSION, S.OFFER_SENT, S.OFFER_RECEIVED, S.EARLY):
            assert n.local is None and n.remote is None


PATHS = {
    S.NO_SESSION: [],
    S.OFFER_SENT: [In.SEND_OFFER],
    S.EARLY: [In.SEND_OFFER, In.RECEIVE_EARLY_ANSWER],
    S.OFFER_RECEIVED: [In.RECEIVE_OFFER],
    S.STABLE: [In.SEND_OFFER, In.RECEIVE_ANSWER],
    S.REOFFER_SENT: [In.SEND_OFFER, In.RECEIVE_ANSWER, In.SEND_OFFER],
    S.REOFFER_RECEIVED: [In.SEND_OFFER, In.RECEIVE_ANSWER, In.RECEIVE_OFFER],
}


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("inp", list(In))
def test_every_state_and_input(state: OfferAnswerState, inp: OfferAnswerInput) -> None:
    """Each of the 7 x 6 pairs: the table's next state, or a typed refusal that changes nothing."""
    n = Negotiation()
    for version, step in enumerate(PATHS[state]):
        feed(n, step, version)
    assert n.state is state
    entry = OA_TABLE.get((state, inp))
    if entry is None:
        with pytest.raises(LocalProtocolError if inp.local else OfferAnswerError):
            feed(n, inp, 99)
        assert n.state is state
    else:
        feed(n, inp, 99)
        assert n.state is entry[1]
