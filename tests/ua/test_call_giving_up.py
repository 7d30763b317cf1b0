"""A call given up by whoever waited for it, and a call whose SDP cannot be used (RFC 3261 §9.1, §13.2.2.4, §13.3.1.4, §15).

Cancelling ``answered`` (``ua.call()``'s Deferred, ``addTimeout``, ``cancel()``) hangs the call up:
CANCEL while ringing, BYE when the 2xx crossed; nothing is left in ``ua.calls``.  With media on,
a 2xx whose answer (or, after an offerless INVITE, whose offer) cannot be used is ACKed (the ACK
refusing the offer's streams, RFC 3264 §6) and BYEd at once, ``answered`` fails with
:class:`~txsipua.errors.MediaNegotiationFailed` and ``ended`` fires with ``"media"``; so does the
callee's call when the ACK's answer to the offer in its 2xx is unusable.  With media off SDP is
not looked at.  Two UAs on one fake clock (:mod:`wire`) and a peer played by hand
(:mod:`test_call_offer_answer`'s helpers).
"""

from __future__ import annotations

from typing import Any

import pytest
from test_call_offer_answer import BOB, agent, answer_invite, bob_sdp, incoming, requests, responses
from test_call_offer_answer import ack as send_ack
from twisted.internet import defer
from uafakes import UDPClock
from wire import Wire

import txsipua
from txsipua.errors import MediaNegotiationFailed
from txsipua.media.sdp import SessionDescription
from txsipua.ua.call import Call, IncomingCall
from txsipua.ua.useragent import UserAgent

GARBAGE = b"v=0\r\ngarbage\r\n"
FOO_ONLY = (b"v=0\r\no=bob 1 1 IN IP4 203.0.113.7\r\ns=-\r\nc=IN IP4 203.0.113.7\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 99\r\na=rtpmap:99 FOO/8000\r\n")


# ------------------------------------------------------- cancelling the Deferred hangs up


def ringing_bob(wire: Wire, answer_after: float | None = 1.0) -> tuple[UserAgent, list[IncomingCall]]:
    """Bob rings at once and answers ``answer_after`` seconds later (if the call still waits)."""
    bob = wire.ua("bob", "192.0.2.20", auto_answer=False)
    seen: list[IncomingCall] = []

    def ring(incoming: IncomingCall) -> None:
        seen.append(incoming)
        incoming.ring()
        if answer_after is not None:
            wire.clock.callLater(answer_after, lambda: incoming.answer() if incoming.pending else None)

    bob.on_incoming_call = ring
    return bob, seen


def test_a_timeout_on_the_call_deferred_cancels_the_call() -> None:
    """The reviewer's repro: Bob answers after 1 s, Alice's ``call()`` Deferred times out at 0.3 s.
    A CANCEL goes out, Bob's call ends "cancelled", Alice's ends, ``alice.calls`` is empty, and
    Bob's answer at 1 s finds nothing to answer."""
    wire = Wire()
    bob, seen = ringing_bob(wire)
    alice = wire.ua("alice", "192.0.2.10")
    d = alice.call(wire.uri(bob))
    d.addTimeout(0.3, wire.clock)
    failures: list[Any] = []
    d.addErrback(failures.append)
    wire.pump()
    [call] = alice.calls
    wire.advance(0.3)
    assert failures and failures[0].check(defer.TimeoutError)
    assert len(wire.sent("CANCEL")) == 1 and wire.ladder()[-2:] == ["bob -> alice 487 INVITE", "alice -> bob ACK"]
    assert seen[0].call.ended.result == "cancelled"
    assert call.ended.result == "cancelled" and alice.calls == set()
    wire.advance(1.0)
    assert wire.responses("INVITE")[-1].status == 487 and wire.sent("BYE") == []
    assert alice.calls == set() and bob.calls == set()


def test_cancel_on_a_placed_call_answered_sends_cancel_and_fails_with_cancelled_error() -> None:
    """``place_call(...).answered.cancel()`` while ringing: CancelledError, CANCEL, the call ends."""
    wire = Wire()
    bob, seen = ringing_bob(wire, answer_after=None)
    alice = wire.ua("alice", "192.0.2.10")
    call = alice.place_call(wire.uri(bob))
    wire.pump()
    failures: list[Any] = []
    call.answered.addErrback(failures.append)
    call.answered.cancel()
    wire.pump()
    assert failures[0].check(defer.CancelledError)
    assert len(wire.sent("CANCEL")) == 1 and call.ended.called and alice.calls == set()
    assert seen[0].call.ended.result == "cancelled"


def test_cancelling_confirmed_hangs_up_too() -> None:
    wire = Wire()
    bob, seen = ringing_bob(wire, answer_after=None)
    alice = wire.ua("alice", "192.0.2.10")
    call = alice.place_call(wire.uri(bob))
    call.answered.addErrback(lambda _: None)
    wire.pump()
    call.confirmed.addErrback(lambda _: None)
    call.confirmed.cancel()
    wire.pump()
    assert len(wire.sent("CANCEL")) == 1 and call.ended.called and alice.calls == set()


def test_cancelled_when_the_2xx_crossed_the_cancel_the_call_is_byed() -> None:
    """Bob's 200 is on the wire when Alice's Deferred is cancelled: CANCEL, then the 2xx is ACKed and
    BYEd (RFC 3261 §15); both calls end, nothing stays in ``alice.calls``."""
    wire = Wire()
    bob, seen = ringing_bob(wire, answer_after=None)
    alice = wire.ua("alice", "192.0.2.10")
    d = alice.call(wire.uri(bob))
    failures: list[Any] = []
    d.addErrback(failures.append)
    wire.pump()
    [call] = alice.calls
    seen[0].answer()  # written, not delivered yet
    d.cancel()
    wire.pump()
    assert failures[0].check(defer.CancelledError)
    assert len(wire.sent("CANCEL")) == 1 and len(wire.sent("BYE")) == 1
    ladder = wire.ladder()
    assert ladder.index("alice -> bob CANCEL") < ladder.index("alice -> bob ACK") < ladder.index("alice -> bob BYE")
    assert ladder.index("bob -> alice 200 INVITE") < ladder.index("alice -> bob ACK")
    assert ladder[-1] == "bob -> alice 200 BYE"
    assert call.ended.called and alice.calls == set() and seen[0].call.ended.result == "bye"


def test_cancelling_after_the_answer_changes_nothing() -> None:
    wire = Wire()
    bob, seen = ringing_bob(wire, answer_after=0.5)
    alice = wire.ua("alice", "192.0.2.10")
    d = alice.call(wire.uri(bob))
    wire.advance(0.5)
    results: list[Any] = []
    d.addBoth(results.append)
    d.cancel()
    wire.pump()
    assert isinstance(results[0], Call) and wire.sent("CANCEL") == [] and wire.sent("BYE") == []
    assert len(alice.calls) == 1


def test_callee_cancelling_confirmed_before_the_ack_byes_once_it_arrives(clock: UDPClock) -> None:
    """The callee's ``confirmed`` cancelled while our 2xx awaits its ACK: CancelledError, and the
    BYE goes once the ACK came (RFC 3261 §15); the call ends and leaves ``ua.calls``."""
    ua = agent(clock)
    call = incoming(ua, bob_sdp()).answer()
    failures: list[Any] = []
    call.confirmed.addErrback(failures.append)
    call.confirmed.cancel()
    assert failures[0].check(defer.CancelledError) and requests(ua, "BYE") == []
    send_ack(ua, responses(ua, 200)[-1])
    [bye] = requests(ua, "BYE")
    answer_invite(ua, bye, 200, tag=None)
    assert call.ended.result == "hangup" and ua.calls == set()


# ------------------------------------------------------------ an unusable SDP in the 2xx


def bye_answered(ua: UserAgent) -> None:
    answer_invite(ua, requests(ua, "BYE")[-1], 200, tag=None)


@pytest.mark.parametrize("offer", [GARBAGE, FOO_ONLY], ids=["garbage", "unknown-codec"])
def test_delayed_offer_an_unusable_offer_in_the_2xx_is_refused_in_the_ack_then_byed(
        clock: UDPClock, offer: bytes) -> None:
    """``place_call(offer=False)``, the 2xx offers garbage or only a codec we lack: the ACK refuses
    its streams (port 0; no body when it cannot be parsed), BYE at once, ``answered`` fails with
    MediaNegotiationFailed, ``ended`` fires "media"."""
    ua = agent(clock)
    call = ua.place_call(f"sip:bob@{BOB[0]}", offer=False)
    failures: list[Any] = []
    call.answered.addErrback(failures.append)
    answer_invite(ua, requests(ua, "INVITE")[-1], 200, body=offer)
    [ack] = requests(ua, "ACK")
    if offer is GARBAGE:
        assert ack.body == b""
    else:
        refusal = SessionDescription.parse(ack.body)
        assert ack.headers.get("Content-Type") == "application/sdp"
        assert [(m.media, m.port) for m in refusal.media] == [("audio", 0)]
    [bye] = requests(ua, "BYE")
    assert [type(m).__name__ + ":" + getattr(m, "method", "") for m in requests(ua, "ACK") + [bye]] == [
        "Request:ACK", "Request:BYE"]
    assert failures and failures[0].check(MediaNegotiationFailed)
    assert "offer in the 2xx" in str(failures[0].value) and call.media_error is failures[0].value
    assert not call.ended.called
    bye_answered(ua)
    assert call.ended.result == "media" and ua.calls == set()


@pytest.mark.parametrize("answer", [GARBAGE, FOO_ONLY], ids=["garbage", "codec-never-offered"])
def test_an_unusable_answer_in_the_2xx_is_acked_then_byed(clock: UDPClock, answer: bytes) -> None:
    """Our offer in the INVITE, a garbage answer or one picking a codec never offered: ACK, BYE
    at once, ``answered`` fails with MediaNegotiationFailed, ``ended`` fires "media"."""
    ua = agent(clock)
    d = ua.call(f"sip:bob@{BOB[0]}")
    failures: list[Any] = []
    d.addErrback(failures.append)
    [call] = ua.calls
    answer_invite(ua, requests(ua, "INVITE")[-1], 200, body=answer)
    assert len(requests(ua, "ACK")) == 1 and len(requests(ua, "BYE")) == 1
    assert failures and failures[0].check(MediaNegotiationFailed) and "answer in the 2xx" in str(failures[0].value)
    assert not call.confirmed.called
    bye_answered(ua)
    assert call.ended.result == "media" and ua.calls == set()


def test_with_media_off_the_2xx_sdp_is_not_our_business(clock: UDPClock) -> None:
    """``Configuration(media=False)``: a garbage SDP in the 2xx is ignored as before: answered, no BYE."""
    ua = agent(clock, media=False)
    call = ua.place_call(f"sip:bob@{BOB[0]}", offer=False)
    answer_invite(ua, requests(ua, "INVITE")[-1], 200, body=GARBAGE)
    assert call.answered.called and call.confirmed.called and requests(ua, "BYE") == []
    assert call.media_error is None


def test_a_good_answer_still_confirms_the_call(clock: UDPClock) -> None:
    ua = agent(clock)
    call = ua.place_call(f"sip:bob@{BOB[0]}", offer=False)
    answer_invite(ua, requests(ua, "INVITE")[-1], 200, body=bob_sdp())
    assert call.answered.called and call.confirmed.called and requests(ua, "BYE") == []
    assert call.media_params is not None and call.media_error is None


@pytest.mark.parametrize("answer", [GARBAGE, FOO_ONLY], ids=["garbage", "codec-never-offered"])
def test_uas_an_unusable_answer_in_the_ack_is_byed(clock: UDPClock, answer: bytes) -> None:
    """Offerless INVITE, our 200 offers, the ACK's answer is unusable: BYE at once (§13.3.1.4),
    ``confirmed`` fails with MediaNegotiationFailed, ``ended`` fires "media"."""
    ua = agent(clock)
    call = incoming(ua).answer()
    failures: list[Any] = []
    call.confirmed.addErrback(failures.append)
    send_ack(ua, responses(ua, 200)[-1], answer)
    [bye] = requests(ua, "BYE")
    assert failures and failures[0].check(MediaNegotiationFailed) and "ACK" in str(failures[0].value)
    assert call.media_error is failures[0].value
    answer_invite(ua, bye, 200, tag=None)
    assert call.ended.result == "media" and ua.calls == set()


def test_the_error_is_exported() -> None:
    assert txsipua.MediaNegotiationFailed is MediaNegotiationFailed
    assert issubclass(MediaNegotiationFailed, txsipua.SIPError)


def test_icall_names_what_the_readme_uses_and_both_sides_provide_it(clock: UDPClock) -> None:
    """ICall has ``call_media``, ``update`` and ``on_progress`` (the README's embedding example and
    UPDATE section use them) and ``media_error``; both sides' calls provide it (verifyObject)."""
    from zope.interface.verify import verifyObject

    from txsipua.ua.interfaces import ICall

    assert {"call_media", "update", "on_progress", "media_error", "confirmed"} <= set(ICall.names())
    assert "UAC" in ICall["confirmed"].getDoc() and "UAS" in ICall["confirmed"].getDoc()
    ua = agent(clock)
    caller = ua.place_call(f"sip:bob@{BOB[0]}")
    callee = incoming(ua, bob_sdp()).call
    for call in (caller, callee):
        assert verifyObject(ICall, call) and call.call_media is not None
