"""Keep-alives on the flow to the registrar (RFC 5626 §4.4): the flow machine on the fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import task

from txsipua.ua.keepalive import (
    FLOW_TABLE,
    DatagramFlow,
    FlowAction,
    FlowInput,
    FlowKeepAlive,
    FlowState,
    StreamFlow,
)

F = FlowState
FI = FlowInput


class FakeStreamDriver:
    """What StreamFlow needs of a StreamDriver: pings written, pongs counted, listeners told of closes."""

    def __init__(self) -> None:
        self.flow_listeners: list[Any] = []
        self.pings: list[tuple[str, int]] = []
        self.pongs = 0
        self.open = True
        self.dropped: list[tuple[str, int]] = []

    def send_keepalive(self, destination: tuple[str, int]) -> bool:
        if not self.open:
            return False
        self.pings.append(destination)
        return True

    def pongs_received(self, destination: tuple[str, int]) -> int | None:
        return self.pongs if self.open else None

    def drop_flow(self, destination: tuple[str, int]) -> None:
        self.dropped.append(destination)

    def close(self, destination: tuple[str, int]) -> None:
        self.open = False
        for listener in list(self.flow_listeners):
            listener(destination)


DEST = ("198.51.100.5", 5060)


def keepalive(clock: task.Clock, driver: FakeStreamDriver, dead: list[str]) -> FlowKeepAlive:
    return FlowKeepAlive(clock, StreamFlow(driver, DEST), 100.0, 10.0, dead.append, random=lambda: 0.5)


def test_pings_every_90_percent_and_pongs_keep_the_flow() -> None:
    """random() = 0.5: a ping every 90 s (80-100 % of 100); a pong within 10 s keeps the flow alive."""
    clock, driver, dead = task.Clock(), FakeStreamDriver(), []
    ka = keepalive(clock, driver, dead)
    clock.advance(89.9)
    assert driver.pings == []
    clock.advance(0.1)
    assert driver.pings == [DEST] and ka.state is F.PINGING
    driver.pongs += 1
    clock.advance(10.0)
    assert ka.state is F.WAITING and dead == []
    clock.advance(79.9)  # t = 179.9: the next ping is due 90 s after the last one, not after the check
    assert len(driver.pings) == 1
    clock.advance(0.1)
    assert len(driver.pings) == 2


def test_no_pong_within_the_timeout_is_a_dead_flow_and_the_connection_is_dropped() -> None:
    """RFC 5626 §4.4.1: no pong 10 s after the ping: the flow is dead, told once, the connection closed."""
    clock, driver, dead = task.Clock(), FakeStreamDriver(), []
    ka = keepalive(clock, driver, dead)
    clock.advance(90.0)
    clock.advance(9.9)
    assert dead == []
    clock.advance(0.1)
    assert ka.state is F.DEAD and dead == ["no answer to a keep-alive within 10 s"]
    assert driver.dropped == [DEST]
    clock.advance(1000.0)
    assert len(driver.pings) == 1 and len(dead) == 1


def test_a_closed_connection_is_a_dead_flow_at_once() -> None:
    """The connection to the registrar closes: the flow is dead without waiting for a ping."""
    clock, driver, dead = task.Clock(), FakeStreamDriver(), []
    ka = keepalive(clock, driver, dead)
    clock.advance(30.0)
    driver.close(("192.0.2.99", 5060))  # another destination: not ours
    assert dead == []
    driver.open = True
    driver.close(DEST)
    assert ka.state is F.DEAD and dead == ["connection lost"]


def test_no_connection_to_ping_on_is_a_dead_flow() -> None:
    """The ping finds no connection: dead."""
    clock, driver, dead = task.Clock(), FakeStreamDriver(), []
    driver.open = False
    ka = keepalive(clock, driver, dead)
    clock.advance(90.0)
    assert ka.state is F.DEAD and dead == ["no connection to the registrar"]


def test_stop_cancels_everything_and_unsubscribes() -> None:
    """stop(): no more pings, no report, the close listener removed."""
    clock, driver, dead = task.Clock(), FakeStreamDriver(), []
    ka = keepalive(clock, driver, dead)
    ka.stop()
    assert driver.flow_listeners == [] and ka.state is F.STOPPED
    clock.advance(1000.0)
    assert driver.pings == [] and dead == [] and clock.getDelayedCalls() == []


def test_udp_crlf_needs_no_answer() -> None:
    """UDP without STUN: a CRLF pair per interval, never a dead flow."""

    class Datagrams:
        stun_listeners: list[Any] = []

        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def send_keepalive(self, data: bytes, destination: tuple[str, int]) -> None:
            self.sent.append(data)

    clock, driver, dead = task.Clock(), Datagrams(), []
    ka = FlowKeepAlive(clock, DatagramFlow(driver, DEST, use_stun=False), 25.0, 10.0, dead.append,
                       random=lambda: 1.0)
    for _ in range(4):
        clock.advance(25.0)
    assert driver.sent == [b"\r\n\r\n"] * 4 and dead == [] and ka.state is F.WAITING


def test_every_state_and_input_of_the_flow_table() -> None:
    """DEAD and STOPPED are final: from DEAD only STOP leads out; nothing leaves STOPPED."""
    for state in F:
        for event in FI:
            entry = FLOW_TABLE.get((state, event))
            if state is F.STOPPED:
                assert entry is None
            if state is F.DEAD and entry is not None:
                assert event is FI.STOP
            if event is FI.STOP and state is not F.STOPPED:
                assert entry is not None and entry[1] is F.STOPPED


@given(st.lists(st.sampled_from(list(FI)), max_size=30))
def test_flow_table_walks_keep_the_invariants(inputs: list[FlowInput]) -> None:
    """Any input sequence: the dead report comes at most once and only from a live state; a ping waits in PINGING."""
    state = F.WAITING
    reports = 0
    for event in inputs:
        entry = FLOW_TABLE.get((state, event))
        if entry is None:
            continue
        action, nxt = entry
        if action is FlowAction.DEAD:
            assert state in (F.WAITING, F.PINGING)
            reports += 1
        if action is FlowAction.PING:
            assert nxt is F.PINGING
        state = nxt
    assert reports <= 1


@pytest.mark.parametrize("stun", [True, False])
def test_datagram_flow_only_expects_answers_with_stun(stun: bool) -> None:
    class Datagrams:
        def __init__(self) -> None:
            self.stun_listeners: list[Any] = []

        def send_keepalive(self, data: bytes, destination: tuple[str, int]) -> None:
            pass

    driver = Datagrams()
    flow = DatagramFlow(driver, DEST, use_stun=stun)
    assert flow.expects_answer() is stun and len(driver.stun_listeners) == int(stun)
    flow.close()
    assert driver.stun_listeners == []


def test_a_stream_flow_without_outbound_support_is_never_dead_on_silence() -> None:
    """RFC 5626 §4.4.1: no pong expected (the registrar did not signal Outbound): pings go on, no dead flow."""
    clock, driver, dead = task.Clock(), FakeStreamDriver(), []
    ka = FlowKeepAlive(clock, StreamFlow(driver, DEST, expect_answer=False), 100.0, 10.0, dead.append,
                       random=lambda: 0.5)
    for _ in range(5):
        clock.advance(100.0)
    assert len(driver.pings) == 5 and dead == [] and ka.state is F.WAITING


@pytest.mark.parametrize(("headers", "expected"), [
    ([], False), ([("Require", "outbound")], True), ([("Require", "path, Outbound")], True),
    ([("Flow-Timer", "25")], True), ([("Require", "100rel")], False)])
def test_registrar_supports_outbound(headers: list[tuple[str, str]], expected: bool) -> None:
    from txsipua.sip.message import Response
    from txsipua.ua.keepalive import registrar_supports_outbound

    assert registrar_supports_outbound(Response(200, None, headers)) is expected
    assert registrar_supports_outbound(None) is False
