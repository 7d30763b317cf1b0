"""Which dialog an INVITE with Replaces replaces, and every refusal (RFC 3891 §3)."""

from __future__ import annotations

from typing import Any

import pytest

from txsipua.core.dialogs import DialogTable
from txsipua.core.invite import Phase
from txsipua.core.replaces import find_replaced
from txsipua.sip.message import Request


class Usage:
    """A dialog usage as the table holds it: only its phase is read."""

    def __init__(self, phase: Phase) -> None:
        self.phase = phase


def invite(*replaces: str) -> Request:
    return Request("INVITE", "sip:carol@192.0.2.30", [("Replaces", r) for r in replaces])


@pytest.mark.parametrize(("phase", "value", "expected"), [
    (Phase.CONFIRMED, "c1;to-tag=mine;from-tag=theirs", "replaced"),
    (Phase.ACCEPTED, "c1;to-tag=mine;from-tag=theirs", "replaced"),  # our 2xx awaits its ACK
    (Phase.CONFIRMED, "c1;to-tag=theirs;from-tag=mine", 481),  # tags the wrong way round
    (Phase.CONFIRMED, "c2;to-tag=mine;from-tag=theirs", 481),
    (Phase.TERMINATING, "c1;to-tag=mine;from-tag=theirs", 603),
    (Phase.HANGUP_PENDING, "c1;to-tag=mine;from-tag=theirs", 603),
    (Phase.CONFIRMED, "c1;to-tag=mine;from-tag=theirs;early-only", 486),
    (Phase.CONFIRMED, "c1;to-tag=mine", 400),
])
def test_find_replaced(phase: Phase, value: str, expected: Any) -> None:
    """The dialog is looked up with to-tag as our local tag; the RFC's status otherwise."""
    table: DialogTable[Any] = DialogTable()
    usage = Usage(phase)
    table.add(("c1", "mine", "theirs"), usage)
    found = find_replaced(table, invite(value))
    if expected == "replaced":
        assert found is usage
    else:
        assert isinstance(found, tuple) and found[0] == expected


def test_two_replaces_is_400() -> None:
    """More than one Replaces field: 400."""
    table: DialogTable[Any] = DialogTable()
    table.add(("c1", "mine", "theirs"), Usage(Phase.CONFIRMED))
    found = find_replaced(table, invite("c1;to-tag=mine;from-tag=theirs", "c1;to-tag=mine;from-tag=theirs"))
    assert isinstance(found, tuple) and found[0] == 400
