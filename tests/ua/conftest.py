"""Fixtures of the user-API tests: a fake clock and a started UserAgent on it (see :mod:`uafakes`)."""

from __future__ import annotations

import pytest
from uafakes import UDPClock, alice

from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent


@pytest.fixture
def clock() -> UDPClock:
    """A fresh fake clock at t = 0 that can listen on UDP."""
    return UDPClock()


@pytest.fixture
def ua(clock: UDPClock) -> UserAgent:
    """alice's started UserAgent on 192.0.2.10 (media off), talking to the fake clock.

    The registration back-off jitter is pinned at its top (``random() -> 1.0``),
    so the first retry comes exactly ``registration_retry`` seconds after a failure.
    """
    agent = UserAgent(clock, Configuration(media=False), alice(), UDPTransport(clock, "192.0.2.10", 0),
                      random=lambda: 1.0)
    agent.start()
    return agent
