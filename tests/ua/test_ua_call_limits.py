"""``Configuration.max_calls`` and ``max_call_duration`` through a UserAgent on a task.Clock."""

from __future__ import annotations

from typing import Any

import pytest
from test_ua_media_limits import CALLER, UDPClock, invite, responses
from twisted.logger import Logger, LogLevel

from txsipua.sip.message import Request, parse_message
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent


def answering(clock: UDPClock, **options: Any) -> UserAgent:
    agent = UserAgent(clock, Configuration(media=False, **options), None, UDPTransport(clock, "192.0.2.10", 0))
    agent.start()
    agent.auto_answer = True
    return agent


def ack_for(n: int, to: str) -> bytes:
    return (
        f"ACK sip:bob@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER[0]}:{CALLER[1]};branch=z9hG4bK-ack{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:carol@example.org>;tag=c{n}\r\nTo: {to}\r\n"
        f"Call-ID: call-{n}@192.0.2.20\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_defaults() -> None:
    config = Configuration()
    assert config.max_calls == 10_000 and config.max_call_duration is None


@pytest.mark.parametrize("options", [{"max_calls": -1}, {"max_call_duration": 0}, {"max_call_duration": -1.0}])
def test_bad_values_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Configuration(**options)


def test_max_calls_without_media_answers_503_and_logs() -> None:
    clock = UDPClock()
    ua = answering(clock, max_calls=1)
    logged: list[dict[str, Any]] = []
    ua.log = Logger(observer=logged.append)
    ua.protocol.datagramReceived(invite(1), CALLER)
    ua.protocol.datagramReceived(invite(2), CALLER)
    finals = [(r.call_id, r.status, r.headers.get("Retry-After")) for r in responses(clock) if r.status >= 200]
    assert finals == [("call-1@192.0.2.20", 200, None), ("call-2@192.0.2.20", 503, "5")]
    assert ua.core.context.stats["calls_refused"] == 1
    assert [e["log_level"] for e in logged] == [LogLevel.warn] and "max_calls" in logged[0]["log_format"]


def test_max_call_duration_ends_a_call_never_hung_up() -> None:
    clock = UDPClock()
    ua = answering(clock, max_call_duration=3600.0)
    ended: list[str] = []
    ua.protocol.datagramReceived(invite(1), CALLER)
    ok = next(r for r in responses(clock) if r.status == 200)
    next(iter(ua.calls)).ended.addCallback(ended.append)
    ua.protocol.datagramReceived(ack_for(1, ok.headers.get("To") or ""), CALLER)

    def byes() -> list[Request]:
        sent = [parse_message(d) for d, _ in clock.ports[0].written]
        return [m for m in sent if isinstance(m, Request) and m.method == "BYE"]

    clock.advance(3599)
    assert not byes()
    clock.advance(2)
    assert [b.call_id for b in byes()] == ["call-1@192.0.2.20"]
    clock.advance(40)  # the BYE goes unanswered: it times out, the call is over either way
    assert ended == ["max-duration"] and not ua.calls
