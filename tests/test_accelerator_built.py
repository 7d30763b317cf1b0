"""CI installs with a compiler, so the optional C accelerator must be built and in use there."""

from __future__ import annotations

import importlib.util
import os

import pytest

from txsipua.sip import message, parse, values


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI promises a C compiler")
def test_accelerator_is_built_and_used_in_ci() -> None:
    """``.ci/run`` installs with gcc and the Python headers: the parser uses every C entry point."""
    assert importlib.util.find_spec("txsipua.sip._speedups") is not None
    if not os.environ.get("TXSIPUA_PURE"):
        assert parse._parse_head is not None
        assert message._tag_param is not None and values._via_parts is not None
