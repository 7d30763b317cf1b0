"""The registration lifecycle table: each transition on the fake clock, and invariants of the table itself."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from uafakes import UDPClock, reply, requests

from txsipua.errors import LocalProtocolError, RegistrationFailed, TransactionTimeout
from txsipua.ua.registration import (
    REGISTRATION_TABLE,
    Registration,
    RegistrationAction,
    RegistrationInput,
    RegistrationState,
)
from txsipua.ua.useragent import UserAgent

S = RegistrationState
In = RegistrationInput


def grant(ua: UserAgent, seconds: int) -> None:
    """Answer the last REGISTER with 200 granting our Contact ``seconds``."""
    reply(ua, requests(ua, "REGISTER")[-1], 200, [("Contact", f"<{ua.core.contact_uri()}>;expires={seconds}")])


def registered(ua: UserAgent, seconds: int = 100) -> Registration:
    """A registration of ``ua`` granted ``seconds``, in state REGISTERED."""
    reg = ua.registration(seconds)
    reg.start()
    grant(ua, seconds)
    assert reg.state is S.REGISTERED
    return reg


def test_the_states_of_a_full_lifecycle(clock: UDPClock, ua: UserAgent) -> None:
    """unregistered -> registering -> registered -> refreshing -> registered -> unregistering -> unregistered."""
    reg = ua.registration(100)
    assert (reg.state, reg.registered, reg.next_attempt) == (S.UNREGISTERED, False, None)
    reg.start()
    assert reg.state is S.REGISTERING and not reg.registered
    grant(ua, 100)
    assert reg.state is S.REGISTERED and reg.registered
    assert reg.next_attempt == pytest.approx(68.0)
    clock.advance(68)
    assert reg.state is S.REFRESHING and reg.registered and reg.next_attempt is None
    grant(ua, 100)
    assert reg.state is S.REGISTERED and reg.next_attempt == pytest.approx(136.0)
    results: list[Any] = []
    reg.stop().addCallback(results.append)
    assert reg.state is S.UNREGISTERING and not reg.registered and reg.next_attempt is None
    reply(ua, requests(ua, "REGISTER")[-1], 200)
    assert reg.state is S.UNREGISTERED and results[0].expires == 0


def test_a_binding_lapses_when_no_refresh_succeeds(clock: UDPClock, ua: UserAgent) -> None:
    """Unanswered refresh: at the granted expiry registered turns False; the retry re-registers."""
    reg = registered(ua, 100)
    failures: list[Exception] = []
    reg.on_refresh_failed = failures.append
    clock.advance(68)  # the refresh goes out and is never answered
    clock.advance(31.9)  # t = 99.9
    assert reg.state is S.REFRESHING and reg.registered
    clock.advance(0.2)  # t = 100.1: the grant ran out (t = 100), then Timer F fired (t = 100)
    assert reg.state is S.LAPSED and not reg.registered
    assert len(failures) == 1 and isinstance(failures[0], TransactionTimeout)
    assert reg.next_attempt == pytest.approx(160.0, abs=0.2)  # RFC 5626 §4.5: 30 * 2^1 after one failure
    clock.advance(60)
    assert reg.state is S.RETRYING and not reg.registered
    grant(ua, 100)
    assert reg.state is S.REGISTERED and reg.registered


def test_a_failed_refresh_backs_off_while_the_binding_holds(clock: UDPClock, ua: UserAgent) -> None:
    """A 503 to a refresh: backing-off (still registered), on_refresh_failed hears it, retry after 2 * retry_after."""
    reg = registered(ua, 3600)
    reg.retry_after = 10.0
    failures: list[Exception] = []
    reg.on_refresh_failed = failures.append
    clock.advance(3568)
    reply(ua, requests(ua, "REGISTER")[-1], 503)
    assert reg.state is S.BACKING_OFF and reg.registered
    assert isinstance(failures[0], RegistrationFailed) and failures[0].status == 503
    assert reg.next_attempt == pytest.approx(3588.0)  # min(max, 10 * 2^1) at the top of the jitter
    clock.advance(20)
    assert reg.state is S.REFRESHING
    assert len({r.top_via.branch for r in requests(ua, "REGISTER")}) == 3
    grant(ua, 3600)
    assert reg.state is S.REGISTERED


def test_stop_during_a_refresh_ignores_the_refresh_answer(clock: UDPClock, ua: UserAgent) -> None:
    """stop() while a refresh is in flight sends Expires: 0; the late 200 to the refresh changes nothing."""
    reg = registered(ua, 100)
    clock.advance(68)
    refresh = requests(ua, "REGISTER")[-1]
    done: list[Any] = []
    reg.stop().addCallback(done.append)
    unregister = requests(ua, "REGISTER")[-1]
    assert unregister.headers.get("Expires") == "0" and reg.state is S.UNREGISTERING
    reply(ua, refresh, 200, [("Contact", f"<{ua.core.contact_uri()}>;expires=100")])
    assert reg.state is S.UNREGISTERING and done == []
    reply(ua, unregister, 200)
    assert reg.state is S.UNREGISTERED and done[0].expires == 0
    clock.advance(500)
    assert len(requests(ua, "REGISTER")) == 3


def test_abandon_stops_refreshing_and_sends_nothing(clock: UDPClock, ua: UserAgent) -> None:
    """abandon(): no refresh, no un-REGISTER; the binding is left to run out at the registrar."""
    reg = registered(ua, 100)
    reg.abandon()
    assert reg.state is S.UNREGISTERED and reg.next_attempt is None
    clock.advance(1000)
    assert len(requests(ua, "REGISTER")) == 1


def test_initial_failure_ends_unregistered_without_retry(clock: UDPClock, ua: UserAgent) -> None:
    """A 403 to the first REGISTER fails start() and schedules nothing; start() may then be called again."""
    reg = ua.registration(100)
    failures: list[Any] = []
    reg.start().addErrback(failures.append)
    reply(ua, requests(ua, "REGISTER")[-1], 403)
    assert failures[0].check(RegistrationFailed) and reg.state is S.UNREGISTERED
    assert reg.next_attempt is None
    clock.advance(100)
    assert len(requests(ua, "REGISTER")) == 1
    reg.start()
    assert reg.state is S.REGISTERING and len(requests(ua, "REGISTER")) == 2


def test_start_twice_is_a_local_error(clock: UDPClock, ua: UserAgent) -> None:
    """A running registration refuses a second start() (LocalProtocolError), sending nothing."""
    reg = registered(ua, 100)
    failures: list[Any] = []
    reg.start().addErrback(failures.append)
    assert failures[0].check(LocalProtocolError)
    assert len(requests(ua, "REGISTER")) == 1


def test_stop_while_lapsed_sends_nothing(clock: UDPClock, ua: UserAgent) -> None:
    """Lapsed (no binding believed held, retry pending): stop() fires with None and sends nothing."""
    reg = registered(ua, 100)
    clock.advance(68)  # the refresh goes out, unanswered
    clock.advance(32.1)  # t = 100.1: lapsed, then Timer F
    assert reg.state is S.LAPSED
    n = len(requests(ua, "REGISTER"))
    done: list[Any] = []
    reg.stop().addCallback(done.append)
    assert done == [None] and reg.state is S.UNREGISTERED and len(requests(ua, "REGISTER")) == n


# ---------------------------------------------------------------- the table


def test_every_state_is_reachable_from_unregistered() -> None:
    """A walk of the table from UNREGISTERED reaches every state."""
    seen = {S.UNREGISTERED}
    frontier = [S.UNREGISTERED]
    while frontier:
        state = frontier.pop()
        for (s, _), (_, nxt) in REGISTRATION_TABLE.items():
            if s is state and nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(S)


def test_abandon_and_stop_are_accepted_everywhere() -> None:
    """ABANDON leads every state to UNREGISTERED; STOP from every state but UNREGISTERING ends or unregisters."""
    for state in S:
        assert REGISTRATION_TABLE[(state, In.ABANDON)][1] is S.UNREGISTERED
        if state is S.STOP_PENDING:
            assert REGISTRATION_TABLE[(state, In.STOP)][1] is S.STOP_PENDING  # already stopping
        elif state is not S.UNREGISTERING:
            assert REGISTRATION_TABLE[(state, In.STOP)][1] in (S.UNREGISTERED, S.UNREGISTERING, S.STOP_PENDING)


@given(st.lists(st.sampled_from(list(In)), max_size=40))
def test_table_walks_keep_the_invariants(inputs: list[RegistrationInput]) -> None:
    """Any sequence of inputs: a REGISTER is in flight exactly in the in-flight states, and bound states arm refresh."""
    in_flight_states = {S.REGISTERING, S.REFRESHING, S.RETRYING, S.UNREGISTERING, S.STOP_PENDING}
    state = S.UNREGISTERED
    for event in inputs:
        entry = REGISTRATION_TABLE.get((state, event))
        if entry is None:
            continue  # ignored
        action, nxt = entry
        if action in (RegistrationAction.SEND, RegistrationAction.UNREGISTER, RegistrationAction.RECOVER):
            assert nxt in in_flight_states
        if action is RegistrationAction.ARM:
            assert nxt is S.REGISTERED
        if nxt is S.UNREGISTERED:
            assert action in (RegistrationAction.NONE, RegistrationAction.DISARM)
        if event in (In.GRANTED, In.CLEARED, In.FAILED, In.REJECTED):
            assert state in in_flight_states, "an answer arrives only while a REGISTER is in flight"
        if action is RegistrationAction.BACK_OFF:
            assert nxt in (S.BACKING_OFF, S.LAPSED), "a failure is always followed by a retry timer"
        if event is In.FLOW_FAILED:
            assert nxt not in (S.REGISTERED, S.BACKING_OFF), "a dead flow never leaves the binding believed held"
        state = nxt


# ------------------------------------------- stop while registering (review M2)


def test_stop_while_registering_undoes_the_late_grant(clock: UDPClock, ua: UserAgent) -> None:
    """stop() before the first 200: the grant that follows is undone (Expires: 0); stop() fires after that."""
    reg = ua.registration(600)
    started: list[Any] = []
    reg.start().addCallback(started.append)
    first = requests(ua, "REGISTER")[-1]
    stopped: list[Any] = []
    reg.stop().addCallback(stopped.append)
    assert reg.state is S.STOP_PENDING and stopped == [] and not reg.registered
    reply(ua, first, 200, [("Contact", f"<{ua.core.contact_uri()}>;expires=600")])
    unregister = requests(ua, "REGISTER")[-1]
    assert unregister is not first and unregister.headers.get("Expires") == "0"
    assert reg.state is S.UNREGISTERING and stopped == [] and started[0].expires == 600
    reply(ua, unregister, 200)
    assert reg.state is S.UNREGISTERED and stopped[0].expires == 0
    clock.advance(3600)
    assert len(requests(ua, "REGISTER")) == 2


def test_stop_while_registering_then_failure_fires_with_none(clock: UDPClock, ua: UserAgent) -> None:
    """stop() before the first answer, which is a 403: nothing more is sent, stop() fires with None."""
    reg = ua.registration(600)
    reg.start().addErrback(lambda f: None)
    stopped: list[Any] = []
    reg.stop().addCallback(stopped.append)
    reg.stop().addCallback(stopped.append)  # twice: both wait for the outcome
    reply(ua, requests(ua, "REGISTER")[-1], 403)
    assert stopped == [None, None] and reg.state is S.UNREGISTERED
    clock.advance(3600)
    assert len(requests(ua, "REGISTER")) == 1


# ------------------------------------------------------- back-off (review M6)


def test_retries_back_off_doubling_capped_and_jittered(clock: UDPClock, ua: UserAgent) -> None:
    """RFC 5626 §4.5: wait = min(max_retry, base * 2^failures), scaled 50-100 %; a grant resets it."""
    draws = iter([1.0, 0.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    reg = Registration(ua, 3600, retry_after=30.0, random=lambda: next(draws))
    reg.max_retry = 200.0
    reg.start()
    grant(ua, 3600)
    clock.advance(3568)  # the refresh
    delays = []
    for _ in range(6):
        reply(ua, requests(ua, "REGISTER")[-1], 403)
        assert reg.next_attempt is not None
        delays.append(reg.next_attempt - clock.seconds())
        clock.advance(delays[-1])
    # 60 * 1.0, 120 * 0.5, min(200, 240) * 1.0, 200 * 0.75, 200, 200
    assert delays == pytest.approx([60.0, 60.0, 200.0, 150.0, 200.0, 200.0])
    assert reg.failures == 6
    grant(ua, 3600)
    assert reg.failures == 0 and reg.state is S.REGISTERED
    clock.advance(3568)
    reply(ua, requests(ua, "REGISTER")[-1], 503)
    assert reg.next_attempt == pytest.approx(clock.seconds() + 60.0)


def test_the_default_jitter_stays_within_half_and_full(clock: UDPClock) -> None:
    """Without an injected source the delay is random, between 50 and 100 % of the ceiling."""
    from uafakes import alice

    from txsipua.ua.config import Configuration
    from txsipua.ua.transports import UDPTransport

    agent = UserAgent(clock, Configuration(media=False), alice(), UDPTransport(clock, "192.0.2.10", 0))
    reg = agent.registration(100)
    reg.failures = 3
    for _ in range(50):
        assert 120.0 <= reg.retry_delay() <= 240.0  # the RFC 5626 §4.5 example: 30 * 2^3 = 240


# ------------------------------------------ a failed un-REGISTER (review 8, minor 2)


def test_stop_fires_with_none_when_the_unregister_times_out(clock: UDPClock, ua: UserAgent) -> None:
    """Registrar gone, a retry REGISTER in flight: stop()'s Expires: 0 goes unanswered; after
    Timer F stop() fires with None (never an errback) and the error is in unregister_error."""
    reg = registered(ua, 100)
    clock.advance(68)  # the refresh goes out, unanswered
    clock.advance(32.1)  # t = 100.1: lapsed; Timer F
    clock.advance(reg.next_attempt - clock.seconds())  # the retry REGISTER goes out
    assert reg.state is S.RETRYING
    stopped: list[Any] = []
    failed: list[Any] = []
    changes: list[Any] = []
    reg.on_state_change = changes.append
    reg.stop().addCallbacks(stopped.append, failed.append)
    assert reg.state is S.UNREGISTERING and requests(ua, "REGISTER")[-1].headers.get("Expires") == "0"
    clock.advance(32.1)  # Timer F of the un-REGISTER (and of the retry)
    assert failed == [] and stopped == [None], failed
    assert isinstance(reg.unregister_error, TransactionTimeout)
    assert reg.state is S.UNREGISTERED and changes[-1].error is reg.unregister_error


def test_stop_fires_with_none_when_the_unregister_is_refused(clock: UDPClock, ua: UserAgent) -> None:
    """A 500 to the un-REGISTER (also the one undoing a late grant): None, the error kept."""
    reg = registered(ua, 100)
    stopped: list[Any] = []
    reg.stop().addCallbacks(stopped.append, stopped.append)
    reply(ua, requests(ua, "REGISTER")[-1], 500)
    assert stopped == [None] and isinstance(reg.unregister_error, RegistrationFailed)
    assert reg.unregister_error.status == 500

    late = ua.registration(600)
    late.start()
    late.stop().addCallbacks(stopped.append, stopped.append)
    late.stop().addCallbacks(stopped.append, stopped.append)
    reply(ua, requests(ua, "REGISTER")[-1], 200, [("Contact", f"<{ua.core.contact_uri()}>;expires=600")])
    assert late.unregister_error is None
    reply(ua, requests(ua, "REGISTER")[-1], 500)
    assert stopped == [None, None, None] and isinstance(late.unregister_error, RegistrationFailed)


def test_a_confirmed_unregister_leaves_no_error(clock: UDPClock, ua: UserAgent) -> None:
    """A 200 to the un-REGISTER: stop() fires with its result and unregister_error stays None."""
    reg = registered(ua, 100)
    stopped: list[Any] = []
    reg.stop().addCallback(stopped.append)
    reply(ua, requests(ua, "REGISTER")[-1], 200)
    assert stopped[0].expires == 0 and reg.unregister_error is None
