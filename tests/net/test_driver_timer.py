"""The driver's one timer: armed for the core's earliest deadline, never late (txsipua.net.driver)."""

from __future__ import annotations

from twisted.internet.task import Clock

from txsipua.net.driver import SIPDatagramProtocol


class _Core:
    """A core whose next deadline the test sets; records when handle_timer runs."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.fired: list[float] = []

    def outbox(self) -> list[object]:
        return []

    def next_event(self) -> None:
        return None

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.fired.append(now)
        if self.deadline is not None and self.deadline <= now:
            self.deadline = None  # the due timer fired


def test_a_later_deadline_keeps_the_armed_call_which_wakes_early_and_rearms() -> None:
    clock, core = Clock(), _Core()
    driver = SIPDatagramProtocol(clock, core, lambda e: None)
    core.deadline = 1.0
    driver.pump()
    assert [c.getTime() for c in clock.getDelayedCalls()] == [1.0]
    core.deadline = 5.0  # the earliest timer stopped: the next one is later
    driver.pump()
    assert [c.getTime() for c in clock.getDelayedCalls()] == [1.0]  # kept, not re-made
    clock.advance(1.0)
    assert core.fired == [1.0]  # early wake-up: the core finds nothing due
    assert [c.getTime() for c in clock.getDelayedCalls()] == [5.0]
    clock.advance(4.0)
    assert core.fired == [1.0, 5.0]


def test_an_earlier_deadline_rearms_and_no_deadline_cancels() -> None:
    clock, core = Clock(), _Core()
    driver = SIPDatagramProtocol(clock, core, lambda e: None)
    core.deadline = 5.0
    driver.pump()
    core.deadline = 2.0
    driver.pump()
    assert [c.getTime() for c in clock.getDelayedCalls()] == [2.0]
    core.deadline = None
    driver.pump()
    assert clock.getDelayedCalls() == []
