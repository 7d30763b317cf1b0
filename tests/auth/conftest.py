"""Fixtures of the auth tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest


@pytest.fixture
def cnonces() -> Iterator[str]:
    """Deterministic client nonces."""
    return (f"cn{i:06d}" for i in itertools.count(1))
