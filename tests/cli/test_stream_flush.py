"""A stopping ``txsipua`` flushes its TCP connections: the last message written reaches the peer.

Each side exits right after writing its last message (the 200 to a BYE);
that 200 must still be sent before the connection closes, else the other side
waits for Timer F (32 s) and fails.  Real loopback TCP, 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clirun import HOST, Cli

Start = Callable[..., Cli]


def _account(tmp_path: Path) -> Path:
    acct = tmp_path / "c.toml"
    acct.write_text('user = "carol"\ndomain = "example.com"\n')
    return acct


def test_answer_count_flushes_the_200_to_the_callers_bye(cli: Start, tmp_path: Path) -> None:
    """``answer --count 1`` exits after its 200 (BYE): the caller gets that 200 and exits 0."""
    answerer = cli("answer", "--transport", "tcp", "--bind", f"{HOST}:0", "--count", "1", "--no-media")
    hostport = answerer.wait_for("ready ").split()[1]
    caller = cli("call", "--transport", "tcp", f"sip:bob@{hostport};transport=tcp", "--account",
                 str(_account(tmp_path)), "--bind", f"{HOST}:0", "--duration", "0.3")
    assert caller.wait(timeout=15) == 0, caller
    assert "hung up (hangup)" in caller.out, caller
    assert answerer.wait(timeout=10) == 0, answerer
    assert "answered=1 open_calls=0" in answerer.out, answerer
    assert not any("non-clean" in line for line in answerer.err), answerer


def test_caller_flushes_the_200_to_the_answerers_bye(cli: Start, tmp_path: Path) -> None:
    """``answer --duration`` hangs up; the caller exits after its 200 (BYE), which still arrives."""
    answerer = cli("answer", "--transport", "tcp", "--bind", f"{HOST}:0", "--count", "1",
                   "--duration", "0.3", "--no-media")
    hostport = answerer.wait_for("ready ").split()[1]
    caller = cli("call", "--transport", "tcp", f"sip:bob@{hostport};transport=tcp", "--account",
                 str(_account(tmp_path)), "--bind", f"{HOST}:0")
    assert caller.wait(timeout=15) == 0, caller
    assert "call ended by the peer (bye)" in caller.out, caller
    assert answerer.wait(timeout=15) == 0, answerer  # its BYE confirmed, well before Timer F
    assert "answered=1 open_calls=0" in answerer.out, answerer
