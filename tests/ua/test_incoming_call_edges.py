"""An incoming call the caller cancelled, or whose application handler fails (review8 M4).

Answering a call already cancelled raises and opens no RTP socket (it used to
open one that outlived ``ua.stop()``); an ``on_incoming_call`` that raises gets
the call refused with 500 and logged, never left unanswered.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.logger import globalLogPublisher
from uafakes import UDPClock, alice, sent

from txsipua.core.useragent import SessionState
from txsipua.errors import LocalProtocolError
from txsipua.sip.message import Request, Response
from txsipua.ua.call import IncomingCall
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

PEER = ("203.0.113.7", 5060)
SDP = b"v=0\r\no=- 1 1 IN IP4 203.0.113.7\r\ns=-\r\nc=IN IP4 203.0.113.7\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


def _request(method: str, cseq: str, body: bytes = b"") -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bKedge1"), ("Max-Forwards", "70"),
        ("From", "<sip:bob@example.com>;tag=b1"), ("To", "<sip:alice@example.com>"),
        ("Call-ID", "edge1@203.0.113.7"), ("CSeq", cseq), ("Contact", "<sip:bob@203.0.113.7>"),
    ]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return Request(method, "sip:alice@192.0.2.10", headers, body)


@pytest.fixture
def media_ua(clock: UDPClock) -> UserAgent:
    """alice's UserAgent with media on (its RTP ports open on the fake clock too)."""
    agent = UserAgent(clock, Configuration(), alice(), UDPTransport(clock, "192.0.2.10", 0))
    agent.start()
    return agent


def _finals(ua: UserAgent) -> list[int]:
    return [m.status for m in sent(ua) if isinstance(m, Response) and m.status >= 200 and m.cseq.method == "INVITE"]


def test_answering_a_cancelled_call_raises_and_opens_no_media(clock: UDPClock, media_ua: UserAgent) -> None:
    seen: list[IncomingCall] = []
    media_ua.on_incoming_call = lambda inc: (seen.append(inc), inc.ring())
    media_ua.protocol.datagramReceived(_request("INVITE", "1 INVITE", SDP).to_bytes(), PEER)
    media_ua.protocol.datagramReceived(_request("CANCEL", "1 CANCEL").to_bytes(), PEER)
    inc = seen[0]
    assert inc.call.state is SessionState.TERMINATED and inc.call.ended.called and not inc.pending
    ports = len(clock.ports)
    with pytest.raises(LocalProtocolError):
        inc.answer()
    assert inc.call.call_media is not None and inc.call.call_media.stream is None
    assert len(clock.ports) == ports  # no RTP socket
    assert _finals(media_ua) == [487]
    media_ua.stop(0.5)
    clock.advance(40)
    assert not clock.getDelayedCalls()


def test_a_failing_accept_closes_the_media_it_opened(clock: UDPClock, media_ua: UserAgent) -> None:
    seen: list[IncomingCall] = []
    media_ua.on_incoming_call = seen.append
    media_ua.protocol.datagramReceived(_request("INVITE", "1 INVITE", SDP).to_bytes(), PEER)
    inc = seen[0]

    def refuse(now: float, **kw: Any) -> None:
        raise LocalProtocolError("refused")

    inc.call.session.accept = refuse  # type: ignore[method-assign]
    media = inc.call.call_media
    assert media is not None
    stops: list[bool] = []
    stop = media.stop
    media.stop = lambda: (stops.append(True), stop())[1]  # type: ignore[method-assign]
    with pytest.raises(LocalProtocolError):
        inc.answer()
    assert media.stream is not None and stops == [True]
    inc.reject(500)


def test_a_raising_on_incoming_call_refuses_the_call_with_500(clock: UDPClock, media_ua: UserAgent) -> None:
    logged: list[dict[str, Any]] = []
    seen: list[IncomingCall] = []

    def bad(inc: IncomingCall) -> None:
        seen.append(inc)
        raise RuntimeError("application bug")

    media_ua.on_incoming_call = bad
    globalLogPublisher.addObserver(logged.append)
    try:
        media_ua.protocol.datagramReceived(_request("INVITE", "1 INVITE", SDP).to_bytes(), PEER)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert _finals(media_ua) == [500]
    assert seen[0].call.ended.called and seen[0].call.state is SessionState.TERMINATED
    assert not media_ua.calls
    failures = [e for e in logged if "log_failure" in e]
    assert failures and failures[0]["log_failure"].check(RuntimeError)


def test_a_handler_that_answered_then_raised_keeps_its_answer(clock: UDPClock, media_ua: UserAgent) -> None:
    def answer_then_fail(inc: IncomingCall) -> None:
        inc.answer()
        raise RuntimeError("after the answer")

    media_ua.on_incoming_call = answer_then_fail
    observer: Any = lambda e: None  # noqa: E731 - keep the logged failure out of the output
    globalLogPublisher.addObserver(observer)
    try:
        media_ua.protocol.datagramReceived(_request("INVITE", "1 INVITE", SDP).to_bytes(), PEER)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert _finals(media_ua) == [200]
