"""Tests for txsipua.media.digits: the digit collection table, each state x input, and its deadlines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txsipua.media.digits import TABLE, DigitCollector, DigitInput, DigitState


def test_table_covers_every_live_state_and_input() -> None:
    """Every (live state, input) is in the table; DONE has no entry (everything ignored there)."""
    for state in (DigitState.WAITING, DigitState.COLLECTING):
        for event in DigitInput:
            assert (state, event) in TABLE
    assert not [key for key in TABLE if key[0] is DigitState.DONE]


def test_max_digits_terminator_and_deadlines() -> None:
    """First-digit timeout, then the inter-digit one; the terminator is not kept; max ends at once."""
    c = DigitCollector(100.0, max_digits=4, timeout=5.0, inter_digit_timeout=2.0, terminator="#")
    assert c.get_timer() == 105.0
    c.digit("1", 101.0)
    assert c.state is DigitState.COLLECTING and c.get_timer() == 103.0
    c.handle_timer(102.9)  # early: nothing
    assert c.result is None
    c.digit("2", 102.5)
    c.digit("#", 103.0)
    assert c.result == "12" and c.result.reason == "terminator" and c.get_timer() is None
    full = DigitCollector(0.0, max_digits=2)
    full.digit("3", 1.0)
    full.digit("*", 1.5)
    assert full.result == "3*" and full.result.reason == "max"
    late = DigitCollector(0.0, max_digits=3, timeout=5.0, inter_digit_timeout=2.0)
    late.digit("7", 1.0)
    late.handle_timer(3.0)
    assert late.result == "7" and late.result.reason == "timeout"
    none = DigitCollector(0.0, timeout=5.0)
    none.handle_timer(5.0)
    assert none.result == "" and none.result.reason == "timeout"
    with pytest.raises(ValueError):
        DigitCollector(0.0, max_digits=0)


@given(st.lists(st.tuples(st.sampled_from(["digit", "terminator", "timer", "cancel"]),
                          st.sampled_from("0123456789*ABCD"),
                          st.floats(0, 20)), max_size=30),
       st.integers(1, 6), st.one_of(st.none(), st.floats(0, 10)), st.one_of(st.none(), st.floats(0, 10)))
def test_any_walk_keeps_the_invariants(steps, max_digits, timeout, inter) -> None:
    """Any sequence of inputs: at most max_digits kept, no terminator kept, one result, DONE absorbs all."""
    c = DigitCollector(0.0, max_digits=max_digits, timeout=timeout, inter_digit_timeout=inter)
    now = 0.0
    for kind, digit, dt in steps:
        now += dt
        before = c.result
        if kind == "digit":
            c.digit(digit, now)
        elif kind == "terminator":
            c.digit("#", now)
        elif kind == "timer":
            c.handle_timer(now)
        else:
            c.cancel(now)
        assert len(c.digits) <= max_digits and "#" not in c.digits
        if before is not None:
            assert c.result is before  # ended once
        assert (c.result is not None) == (c.state is DigitState.DONE)
        if c.state is DigitState.DONE:
            assert c.get_timer() is None and c.result == c.digits
            assert c.result.reason in ("max", "terminator", "timeout", "cancelled")
        else:
            assert len(c.digits) < max_digits
