"""FailureLimiter (issue 12): counting windows, lockouts, and memory bounded under spraying."""

from __future__ import annotations

import pytest

from txsipua.auth.limiter import FailureLimiter, Lockout


def test_lockout_at_the_limit_then_released() -> None:
    limiter = FailureLimiter(max_failures=3, window=10, lockout=20)
    assert limiter.failed("source", "192.0.2.1", 0.0) is None
    assert limiter.failed("source", "192.0.2.1", 1.0) is None
    lockout = limiter.failed("source", "192.0.2.1", 2.0)
    assert lockout == Lockout("source", "192.0.2.1", 3, 22.0)
    assert limiter.locked_until("source", "192.0.2.1", 21.9) == 22.0
    assert limiter.locked_until("source", "192.0.2.1", 22.0) is None
    assert limiter.locked_until("user", "192.0.2.1", 5.0) is None  # kinds are apart
    assert limiter.lockouts == 1


def test_failures_outside_the_window_start_again() -> None:
    limiter = FailureLimiter(max_failures=3, window=10, lockout=20)
    limiter.failed("user", "alice", 0.0)
    limiter.failed("user", "alice", 5.0)
    assert limiter.failed("user", "alice", 10.0) is None  # new window: count 1
    assert limiter.failed("user", "alice", 11.0) is None
    assert limiter.failed("user", "alice", 12.0) is not None


def test_failures_while_locked_do_not_extend_or_report_again() -> None:
    limiter = FailureLimiter(max_failures=2, window=100, lockout=10)
    limiter.failed("user", "bob", 0.0)
    assert limiter.failed("user", "bob", 1.0) is not None
    assert limiter.failed("user", "bob", 2.0) is None
    assert limiter.failed("user", "bob", 3.0) is None
    assert limiter.locked_until("user", "bob", 5.0) == 11.0


def test_succeeded_clears_the_count_not_the_lockout() -> None:
    limiter = FailureLimiter(max_failures=2, window=100, lockout=10)
    limiter.failed("user", "carol", 0.0)
    limiter.succeeded("user", "carol")
    assert limiter.failed("user", "carol", 1.0) is None  # count started again
    assert limiter.failed("user", "carol", 2.0) is not None
    limiter.succeeded("user", "carol")
    assert limiter.locked_until("user", "carol", 3.0) == 12.0


def test_memory_is_bounded_under_spraying() -> None:
    """A million sprayed sources and users never hold more than max_entries per kind."""
    limiter = FailureLimiter(max_failures=5, window=60, lockout=60, max_entries=1000)
    for i in range(100_000):
        limiter.failed("source", f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", float(i) / 1000)
        limiter.failed("user", f"user{i}", float(i) / 1000)
    assert len(limiter) <= 2000


def test_a_locked_key_that_keeps_trying_survives_spraying() -> None:
    limiter = FailureLimiter(max_failures=2, window=60, lockout=600, max_entries=100)
    limiter.failed("source", "203.0.113.7", 0.0)
    limiter.failed("source", "203.0.113.7", 0.0)
    for i in range(1000):
        limiter.failed("source", f"198.51.100.{i % 250}-{i}", 1.0)
        assert limiter.locked_until("source", "203.0.113.7", 1.0) == 600.0  # touched: stays


@pytest.mark.parametrize("kwargs", [{"max_failures": 0}, {"window": 0}, {"lockout": -1}, {"max_entries": 0}])
def test_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FailureLimiter(**kwargs)  # type: ignore[arg-type]
