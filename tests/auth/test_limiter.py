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


def test_an_active_lockout_survives_ten_thousand_other_failing_users() -> None:
    """Eviction drops only entries that are not locked (issue 12 review F4, the tester's repro)."""
    limiter = FailureLimiter()
    for _ in range(10):
        limiter.failed("user", "alice", 100.0)
    for i in range(10000):
        limiter.failed("user", f"u{i}", 102.0)
    assert limiter.locked_until("user", "alice", 103.0) == 160.0
    assert len(limiter) <= limiter.max_entries


def test_when_every_entry_is_locked_new_keys_fail_closed_until_the_oldest_lockout_ends() -> None:
    limiter = FailureLimiter(max_failures=1, window=60, lockout=100, max_entries=3)
    for i, t in enumerate((0.0, 1.0, 2.0)):
        assert limiter.failed("source", f"192.0.2.{i}", t) is not None
    assert limiter.locked_until("source", "198.51.100.7", 5.0) == 100.0  # not known: refused
    assert limiter.failed("source", "198.51.100.7", 5.0) is None  # and not counted
    assert len(limiter) == 3
    assert limiter.locked_until("source", "192.0.2.2", 5.0) == 102.0  # known keys keep their own
    assert limiter.locked_until("user", "198.51.100.7", 5.0) is None  # the other kind is apart
    # the oldest lockout ends: its entry can be evicted, new keys are counted again
    assert limiter.locked_until("source", "198.51.100.7", 100.0) is None
    assert limiter.failed("source", "198.51.100.7", 100.0) is not None
    assert limiter.locked_until("source", "192.0.2.1", 100.5) == 101.0
    assert len(limiter) == 3


def test_locked_entries_are_kept_while_unlocked_ones_are_evicted_oldest_first() -> None:
    limiter = FailureLimiter(max_failures=2, window=60, lockout=600, max_entries=3)
    limiter.failed("user", "a", 0.0)
    limiter.failed("user", "a", 0.0)  # locked
    limiter.failed("user", "b", 1.0)
    limiter.failed("user", "c", 2.0)
    limiter.failed("user", "d", 3.0)  # evicts b, the oldest not locked
    assert limiter.locked_until("user", "a", 4.0) == 600.0
    assert limiter.failed("user", "b", 4.0) is None  # b forgotten: count 1 again, evicts c
    assert limiter.failed("user", "d", 5.0) is not None  # d kept its count of 1
    assert len(limiter) == 3
