"""Offer/answer and early media of txsipua's INVITE usage against real SIPp 3.6 peers (issue 9 part A).

A txsipua :class:`~txsipua.ua.useragent.UserAgent` runs in this process on the test reactor
(pytest-twisted), on 127.0.0.1 with free ports; SIPp runs as a subprocess with ``-rtp_echo``:
every RTP packet reaching its media port is sent back to its sender.  So a txsipua stream that
*receives* packets proves both directions: it sent RTP to the address the SDP negotiated, and
heard it back from there (the stream drops any other source).  SIPp's exit status is the verdict
on the far side (its scenario checks each SDP, see ``scenarios/``).

Flows (peer x flow rows of the interop matrix):

- delayed offer, SIPp calling: INVITE without SDP, our offer in the 200, SIPp's answer in the ACK;
- delayed offer, txsipua calling (``ua.call(offer=False)``): SIPp offers in the 200, our ACK answers;
- early media: SIPp answers the offer in a 183 and waits 2 s before its 200; RTP flows both ways
  before the 200;
- 491 glare: SIPp answers our hold re-INVITE 491; we ACK, wait the RFC 3261 §14.1 back-off
  (2.1-4 s: we own the Call-ID) and re-INVITE again, and the hold succeeds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from peers import HOST, MiniUAC, Sipp
from twisted.internet import defer, task

from txsipua.auth.credentials import InMemoryCredentials
from txsipua.sip.message import parse_message
from txsipua.ua.account import Account
from txsipua.ua.call import Call, IncomingCall
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

pytestmark = pytest.mark.interop

SECOND = b"\0\0" * 8000  # one second of silence, 16-bit PCM at 8000 Hz


@pytest.fixture
def reactor() -> Any:
    from twisted.internet import reactor as r

    return r


@pytest.fixture
def make_ua(reactor: Any) -> Iterator[Callable[[], Any]]:
    """``ua = yield make_ua()``: a started UserAgent on 127.0.0.1 (alice@127.0.0.1), stopped at teardown.

    ``ua.sent`` lists ``(reactor time, message)`` for every message it sent.
    """
    started: list[UserAgent] = []

    @defer.inlineCallbacks
    def make() -> Any:
        sent: list[tuple[float, Any]] = []

        def trace(direction: str, data: bytes, peer: Any) -> None:
            if direction == "send":
                sent.append((reactor.seconds(), parse_message(data)))

        account = Account(user="alice", domain=HOST, credentials=InMemoryCredentials([]))
        ua = UserAgent(reactor, Configuration(), account, UDPTransport(reactor, HOST, 0), trace=trace)
        ua.sent = sent  # type: ignore[attr-defined]
        yield ua.start()
        started.append(ua)
        return ua

    yield make
    for ua in started:
        pytest_twisted.blockon(ua.stop(1.0))


@defer.inlineCallbacks
def exited(reactor: Any, sipp: Sipp, timeout: float = 15.0) -> Any:
    """SIPp's exit status, waited for without blocking the reactor."""
    waited = 0.0
    while sipp.process.returncode is None and waited < timeout:
        yield task.deferLater(reactor, 0.1, lambda: None)
        waited += 0.1
    return sipp.process.returncode


def within(reactor: Any, d: defer.Deferred[Any], seconds: float) -> defer.Deferred[Any]:
    return d.addTimeout(seconds, reactor)


@pytest_twisted.inlineCallbacks
def test_delayed_offer_sipp_calling_txsipua(reactor: Any, make_ua: Any, sipp_factory: Any) -> Any:
    """SIPp's INVITE has no SDP: our 200 offers, SIPp's ACK answers, and RTP flows both ways on the
    answer's address (SIPp echoes it back) before SIPp's BYE."""
    ua = yield make_ua()
    calls: list[Call] = []

    def on_incoming(incoming: IncomingCall) -> None:
        call = incoming.answer()
        calls.append(call)
        call.confirmed.addCallback(lambda c: c.call_media.play(SECOND * 3))

    ua.on_incoming_call = on_incoming
    host, port = ua.local_address
    sipp = sipp_factory("uac_delayed_offer.xml", remote=(host, port), extra=["-s", "alice", "-rtp_echo"],
                        timeout=15)
    rc = yield exited(reactor, sipp)
    assert rc == 0, sipp.report()
    [call] = calls
    assert call.confirmed.called and call.media_params is not None
    ok = [m for _, m in ua.sent if not m.is_request and m.status == 200 and m.cseq.method == "INVITE"]
    assert ok and b"m=audio" in ok[0].body
    stats = call.media.stats
    assert stats.packets_sent > 20 and stats.packets_received > 20, (stats, sipp.report())


@pytest_twisted.inlineCallbacks
def test_delayed_offer_txsipua_calling_sipp(reactor: Any, make_ua: Any, sipp_factory: Any) -> Any:
    """ua.call(offer=False): the INVITE has no SDP (SIPp checks), SIPp's 200 offers, our ACK answers
    (SIPp checks m=audio ... RTP/AVP 0), and our audio comes back from SIPp's media port."""
    ua = yield make_ua()
    sipp = sipp_factory("uas_delayed_offer.xml", extra=["-rtp_echo"], timeout=15)
    call = yield within(reactor, ua.call(f"sip:carol@{HOST}:{sipp.port}", offer=False), 10)
    invite = [m for _, m in ua.sent if m.is_request and m.method == "INVITE"][0]
    assert invite.body == b""
    ack = [m for _, m in ua.sent if m.is_request and m.method == "ACK"][0]
    assert ack.headers.get("Content-Type") == "application/sdp" and b"m=audio" in ack.body
    yield within(reactor, call.call_media.play(SECOND), 5)
    yield task.deferLater(reactor, 0.3, lambda: None)
    stats = call.media.stats
    yield call.hangup()
    rc = yield exited(reactor, sipp)
    assert rc == 0, sipp.report()
    assert stats.packets_sent >= 50 and stats.packets_received > 20, (stats, sipp.report())


@pytest_twisted.inlineCallbacks
def test_early_media_before_the_200(reactor: Any, make_ua: Any, sipp_factory: Any) -> Any:
    """SIPp answers in a 183 and holds its 200 back 2 s: our stream sends from the 183 on and hears
    the echo from the 183's address while the call still rings; the 200 then confirms the same media."""
    ua = yield make_ua()
    sipp = sipp_factory("uas_early_media.xml", extra=["-rtp_echo"], timeout=15)
    call = ua.place_call(f"sip:carol@{HOST}:{sipp.port}")
    at_answer: dict[str, int] = {}

    def progress(response: Any) -> None:
        if response.status == 183 and call.call_media is not None and not at_answer:
            at_answer["started"] = 1
            call.call_media.play(SECOND * 4)

    call.on_progress = progress

    def answered(c: Call) -> Call:
        at_answer["sent"] = c.media.stats.packets_sent
        at_answer["received"] = c.media.stats.packets_received
        return c

    call.answered.addCallback(answered)
    yield within(reactor, call.answered, 10)
    assert at_answer["sent"] > 50 and at_answer["received"] > 50, (at_answer, sipp.report())
    assert call.media_params is not None and call.media_params.remote_port == call.media.params.remote_port
    yield call.hangup()
    rc = yield exited(reactor, sipp)
    assert rc == 0, sipp.report()


@pytest_twisted.inlineCallbacks
def test_491_glare_on_a_hold_is_retried_after_the_backoff(reactor: Any, make_ua: Any, sipp_factory: Any) -> Any:
    """SIPp answers our hold 491: the retry comes 2.1-4 s later (RFC 3261 §14.1, we own the Call-ID),
    with CSeq + 1 and a sendonly offer again; SIPp accepts it and hold() fires, the call held."""
    ua = yield make_ua()
    sipp = sipp_factory("uas_reinvite_glare.xml", timeout=20)
    call = yield within(reactor, ua.call(f"sip:carol@{HOST}:{sipp.port}"), 10)
    response = yield within(reactor, call.hold(), 10)
    assert response.status == 200 and call.held_locally
    reinvites = [(t, m) for t, m in ua.sent if m.is_request and m.method == "INVITE" and m.to.tag]
    firsts = {m.cseq.seq: t for t, m in reinvites}  # first sending of each CSeq (not retransmissions)
    for t, m in reinvites:
        firsts[m.cseq.seq] = min(firsts[m.cseq.seq], t)
    (seq1, t1), (seq2, t2) = sorted(firsts.items())
    assert seq2 == seq1 + 1
    assert 2.1 - 0.05 <= t2 - t1 <= 4.0 + 0.5, t2 - t1
    yield call.hangup()
    rc = yield exited(reactor, sipp)
    assert rc == 0, sipp.report()


# --------------------------------------------------------------------------------------------
# the scenarios themselves can fail (driven by peers.MiniUAC, independent of txsipua)


def test_harness_uas_delayed_offer_rejects_an_invite_with_an_offer(sipp_factory: Any) -> None:
    """MiniUAC offers in its INVITE (and its ACK carries no answer): the scenario fails."""
    sipp = sipp_factory("uas_delayed_offer.xml", timeout=6)
    with MiniUAC((HOST, sipp.port)) as uac, contextlib.suppress(TimeoutError):
        uac.call(f"sip:carol@{HOST}:{sipp.port}", credentials={}, invite_timeout=3)
    assert sipp.wait(10) != 0, sipp.report()


def test_harness_uas_early_media_accepts_a_plain_caller(sipp_factory: Any) -> None:
    """A caller that ignores the 183 and ACKs the 200 passes: the scenario checks SIP only (RTP is
    judged by the txsipua test from what its own stream heard)."""
    sipp = sipp_factory("uas_early_media.xml", timeout=8)
    with MiniUAC((HOST, sipp.port)) as uac:
        assert uac.call(f"sip:carol@{HOST}:{sipp.port}", credentials={}, invite_timeout=5) == [200, 200]
    assert sipp.wait(10) == 0, sipp.report()


def test_harness_uas_reinvite_glare_fails_a_caller_that_never_retries(sipp_factory: Any) -> None:
    """A caller that hangs up instead of re-INVITEing after the 491 fails the scenario."""
    sipp = sipp_factory("uas_reinvite_glare.xml", timeout=6)
    with MiniUAC((HOST, sipp.port)) as uac, contextlib.suppress(TimeoutError):
        uac.call(f"sip:carol@{HOST}:{sipp.port}", credentials={}, invite_timeout=3)
    assert sipp.wait(10) != 0, sipp.report()
