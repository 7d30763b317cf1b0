"""Offer/answer of the INVITE usage, both sides, on a fake clock (issue 9 part A; RFC 3261 §13.2.1, §14, RFC 3264).

Delayed offer (offer in the 2xx, answer in the ACK) as UAS and UAC, an offerless re-INVITE,
codec change, hold both ways, 491 glare with the §14.1 back-off, early media (forked 18x), and
the no-answer timeout (Timer C).  The peer is played by hand: what the UA wrote is parsed
(``uafakes.sent``) and answers are fed back through ``datagramReceived``; RTP goes to the fake
UDP ports of ``UDPClock``; time moves only with ``clock.advance``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from uafakes import UDPClock, alice, sent

from txsipua.errors import CallNotAnswered, LocalProtocolError, ReinviteFailed
from txsipua.media.negotiation import OfferAnswerState
from txsipua.media.offer_answer import PCMA, PCMU, make_answer, make_offer
from txsipua.media.rtp import RtpPacket
from txsipua.media.sdp import SessionDescription
from txsipua.sip.message import Request, Response
from txsipua.ua.call import Call, IncomingCall, glare_backoff
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

BOB = ("203.0.113.7", 5060)
BOB_RTP = ("203.0.113.7", 4000)
COMMON = [("From", "<sip:bob@example.com>;tag=b1"), ("Call-ID", "oa1@203.0.113.7"), ("Max-Forwards", "70")]


def agent(clock: UDPClock, **config: Any) -> UserAgent:
    ua = UserAgent(clock, Configuration(**config), alice(), UDPTransport(clock, "192.0.2.10", 0),
                   random=random.Random(9).random)
    ua.start()
    return ua


def bob_sdp(port: int = 4000, version: int = 1, direction: str = "sendrecv", codecs: Any = (PCMU,)) -> bytes:
    return make_offer(BOB[0], port, codecs=codecs, dtmf=False, session_id=1, session_version=version,
                      direction=direction).to_bytes()


def responses(ua: UserAgent, status: int) -> list[Response]:
    return [m for m in sent(ua) if isinstance(m, Response) and m.status == status]


def requests(ua: UserAgent, method: str) -> list[Request]:
    return [m for m in sent(ua) if isinstance(m, Request) and m.method == method]


def rtp_sent(clock: UDPClock, call: Call) -> list[tuple[RtpPacket, tuple[str, int]]]:
    # the stream's RTP port (an odd port the system gave first was closed: RTP binds an even one, RFC 3550 §11)
    port = next(p for p in clock.ports if p.protocol is call.media and p.getHost().port == call.media.port)
    return [(RtpPacket.parse(data), addr) for data, addr in port.written]


# ---------------------------------------------------------------- UAS side


def incoming(ua: UserAgent, body: bytes = b"", cseq: int = 1) -> IncomingCall:
    seen: list[IncomingCall] = []
    ua.on_incoming_call = seen.append
    headers = [("Via", f"SIP/2.0/UDP {BOB[0]}:5060;branch=z9hG4bKoa{cseq}"), *COMMON,
               ("To", "<sip:alice@example.com>"), ("CSeq", f"{cseq} INVITE"), ("Contact", f"<sip:bob@{BOB[0]}>")]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    ua.protocol.datagramReceived(Request("INVITE", "sip:alice@192.0.2.10", headers, body=body).to_bytes(), BOB)
    return seen[0]


def ack(ua: UserAgent, ok: Response, body: bytes = b"", branch: str = "z9hG4bKoaack") -> None:
    headers = [("Via", f"SIP/2.0/UDP {BOB[0]}:5060;branch={branch}"), *COMMON, ("To", ok.headers.get("To") or ""),
               ("CSeq", f"{ok.cseq.seq} ACK")]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    ua.protocol.datagramReceived(Request("ACK", "sip:alice@192.0.2.10", headers, body=body).to_bytes(), BOB)


def reinvite(ua: UserAgent, ok: Response, cseq: int, body: bytes = b"") -> None:
    headers = [("Via", f"SIP/2.0/UDP {BOB[0]}:5060;branch=z9hG4bKre{cseq}"), *COMMON,
               ("To", ok.headers.get("To") or ""), ("CSeq", f"{cseq} INVITE"), ("Contact", f"<sip:bob@{BOB[0]}>")]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    ua.protocol.datagramReceived(Request("INVITE", "sip:alice@192.0.2.10", headers, body=body).to_bytes(), BOB)


def confirmed_uas_call(ua: UserAgent) -> tuple[Call, Response]:
    call = incoming(ua, bob_sdp()).answer()
    ok = responses(ua, 200)[-1]
    ack(ua, ok)
    assert call.confirmed.called
    return call, ok


def test_delayed_offer_uas_offers_in_the_200_and_the_ack_answer_starts_media(clock: UDPClock) -> None:
    """INVITE without SDP: our 200 carries the offer; the ACK's answer configures the stream, and
    play() really sends RTP to the address of that answer (it used to wait for ever)."""
    ua = agent(clock, idle_silence=False)  # only the played packet on the wire
    call = incoming(ua).answer()
    ok = responses(ua, 200)[-1]
    offer = SessionDescription.parse(ok.body)
    assert ok.headers.get("Content-Type") == "application/sdp" and offer.media[0].port == call.media.port
    assert call.call_media is not None and call.call_media.state is OfferAnswerState.OFFER_SENT
    assert call.media_params is None
    answer = make_answer(offer, BOB[0], 4002, codecs=(PCMU, PCMA), dtmf=False, session_id=5)
    ack(ua, ok, answer.to_bytes())
    assert call.confirmed.called and call.call_media.state is OfferAnswerState.STABLE
    assert call.media_params is not None and call.media_params.remote_port == 4002
    played = call.call_media.play(b"\0\0" * 160)
    clock.advance(0.05)
    assert played.called and [addr for _, addr in rtp_sent(clock, call)] == [(BOB[0], 4002)]


def test_an_ack_without_the_answer_withdraws_our_offer(clock: UDPClock) -> None:
    """Offer in our 200, ACK without SDP: no media is configured, the offer is withdrawn (no session)."""
    ua = agent(clock)
    call = incoming(ua).answer()
    ack(ua, responses(ua, 200)[-1])
    assert call.confirmed.called and call.call_media is not None
    assert call.call_media.state is OfferAnswerState.NO_SESSION and call.media_params is None


def test_an_offerless_reinvite_gets_our_offer_and_the_ack_answers_it(clock: UDPClock) -> None:
    """Re-INVITE without SDP (RFC 3261 §14.2): 200 with our offer (version + 1); the ACK's answer moves the media."""
    ua = agent(clock)
    call, ok = confirmed_uas_call(ua)
    assert call.call_media is not None and call.call_media.local is not None
    version = call.call_media.local.session_version
    reinvite(ua, ok, 2)
    ok2 = responses(ua, 200)[-1]
    assert ok2.cseq.seq == 2 and SessionDescription.parse(ok2.body).session_version == version + 1
    assert call.call_media.state is OfferAnswerState.REOFFER_SENT
    ack(ua, ok2, bob_sdp(port=4010, version=2), branch="z9hG4bKoaack2")
    assert call.call_media.state is OfferAnswerState.STABLE
    assert call.media_params is not None and call.media_params.remote_port == 4010
    assert call.call_media.local.session_version == version + 1


def test_a_reinvite_changing_the_codec_is_answered_with_it(clock: UDPClock) -> None:
    """The peer re-offers PCMA only: we answer PCMA and send with it."""
    ua = agent(clock)
    call, ok = confirmed_uas_call(ua)
    assert call.media_params is not None and call.media_params.codec.name == "PCMU"
    reinvite(ua, ok, 2, bob_sdp(version=2, codecs=(PCMA,)))
    answer = SessionDescription.parse(responses(ua, 200)[-1].body)
    assert answer.media[0].formats == (8,)
    assert call.media_params.codec.name == "PCMA" and call.media.params.codec.name == "PCMA"


def test_remote_hold_is_reported_and_answered_recvonly(clock: UDPClock) -> None:
    """The peer holds us (sendonly), then resumes: held_remotely follows, on_hold_change is told each time."""
    ua = agent(clock)
    call, ok = confirmed_uas_call(ua)
    changes: list[tuple[bool, bool]] = []
    call.on_hold_change = lambda local, remote: changes.append((local, remote))
    reinvite(ua, ok, 2, bob_sdp(version=2, direction="sendonly"))
    assert SessionDescription.parse(responses(ua, 200)[-1].body).media[0].direction == "recvonly"
    assert call.held_remotely and not call.held_locally
    ack(ua, responses(ua, 200)[-1], branch="z9hG4bKa2")
    reinvite(ua, ok, 3, bob_sdp(version=3))
    assert not call.held_remotely
    assert changes == [(False, True), (False, False)]


def test_a_reinvite_crossing_ours_gets_491(clock: UDPClock) -> None:
    """Glare as UAS: our hold is pending, the peer's re-INVITE gets 491 and changes nothing (RFC 3261 §14.2)."""
    ua = agent(clock)
    call, ok = confirmed_uas_call(ua)
    call.hold()
    reinvite(ua, ok, 2, bob_sdp(version=2))
    assert [r.cseq.seq for r in responses(ua, 491)] == [2]
    assert call.call_media is not None and call.call_media.state is OfferAnswerState.REOFFER_SENT


def test_early_media_as_uas_then_the_same_answer_in_the_200(clock: UDPClock) -> None:
    """IncomingCall.early_media(): 183 with our answer, RTP flows before the 200; the 200 repeats the answer."""
    ua = agent(clock, idle_silence=False)  # only the played packet on the wire
    pending = incoming(ua, bob_sdp())
    call = pending.early_media()
    progress = responses(ua, 183)[-1]
    assert progress.headers.get("Content-Type") == "application/sdp" and progress.body
    call.call_media.play(b"\0\0" * 160)  # type: ignore[union-attr]
    clock.advance(0.05)
    assert [addr for _, addr in rtp_sent(clock, call)] == [BOB_RTP]
    pending.answer()
    assert responses(ua, 200)[-1].body == progress.body


# ---------------------------------------------------------------- UAC side


def answer_invite(ua: UserAgent, invite: Request, status: int, *, tag: str | None = "t1", body: bytes = b"",
                  reason: str | None = None) -> None:
    """Bob's response to ``invite`` (or any request: ``tag=None`` keeps its To as it is)."""
    headers = [("Via", v) for v in invite.headers.get_all("Via")]
    to = invite.headers.get("To") or ""
    headers += [("From", invite.headers.get("From") or ""), ("To", to if tag is None else f"{to};tag={tag}"),
                ("Call-ID", invite.call_id), ("CSeq", str(invite.cseq))]
    if status > 100 and status < 300:
        headers.append(("Contact", f"<sip:bob@{BOB[0]}>"))
    if body:
        headers.append(("Content-Type", "application/sdp"))
    ua.protocol.datagramReceived(Response(status, reason, headers, body=body).to_bytes(), BOB)


def test_delayed_offer_uac_answers_the_200_offer_in_the_ack(clock: UDPClock) -> None:
    """ua.place_call(offer=False): INVITE without SDP; the 200's offer is answered in the ACK (§13.2.1)."""
    ua = agent(clock)
    call = ua.place_call(f"sip:bob@{BOB[0]}", offer=False)
    invite = requests(ua, "INVITE")[-1]
    assert invite.body == b"" and "Content-Type" not in invite.headers
    answer_invite(ua, invite, 200, body=bob_sdp(port=4020))
    acks = requests(ua, "ACK")
    assert len(acks) == 1 and acks[0].headers.get("Content-Type") == "application/sdp"
    ours = SessionDescription.parse(acks[0].body)
    assert ours.media[0].port == call.media.port and ours.media[0].direction == "sendrecv"
    assert call.answered.called and call.media_params is not None and call.media_params.remote_port == 4020


def confirmed_uac_call(ua: UserAgent) -> Call:
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    invite = requests(ua, "INVITE")[-1]
    offer = SessionDescription.parse(invite.body)
    answer = make_answer(offer, BOB[0], 4000, codecs=(PCMU, PCMA), dtmf=False, session_id=5)
    answer_invite(ua, invite, 200, body=answer.to_bytes())
    assert call.answered.called
    return call


def answer_reinvite(ua: UserAgent, status: int, direction: str = "recvonly") -> Request:
    invite = requests(ua, "INVITE")[-1]
    body = bob_sdp(version=2, direction=direction) if status == 200 else b""
    answer_invite(ua, invite, status, tag=None, body=body)
    return invite


def test_hold_and_resume_as_uac_report_local_hold(clock: UDPClock) -> None:
    """hold(): sendonly re-INVITE; on its 200 held_locally turns True (told to on_hold_change); resume() undoes it."""
    ua = agent(clock)
    call = confirmed_uac_call(ua)
    changes: list[tuple[bool, bool]] = []
    call.on_hold_change = lambda local, remote: changes.append((local, remote))
    done: list[Any] = []
    call.hold().addBoth(done.append)
    assert not call.held_locally  # not before the answer
    held = answer_reinvite(ua, 200)
    assert SessionDescription.parse(held.body).media[0].direction == "sendonly"
    assert done[0].status == 200 and call.held_locally and changes == [(True, False)]
    call.resume().addBoth(done.append)
    answer_reinvite(ua, 200, "sendrecv")
    assert done[1].status == 200 and not call.held_locally and changes[-1] == (False, False)


def test_change_codecs_reoffers_only_those(clock: UDPClock) -> None:
    """change_codecs(["PCMA"]): the re-INVITE offers PCMA only; the answer switches the stream to it."""
    ua = agent(clock)
    call = confirmed_uac_call(ua)
    done: list[Any] = []
    call.change_codecs(["PCMA"]).addBoth(done.append)
    invite = requests(ua, "INVITE")[-1]
    formats = SessionDescription.parse(invite.body).media[0].formats
    assert formats[0] == 8 and 0 not in formats  # PCMA (and telephone-event), no PCMU
    answer_invite(ua, invite, 200, tag=None, body=bob_sdp(version=2, codecs=(PCMA,)))
    assert done[0].status == 200 and call.media_params is not None and call.media_params.codec.name == "PCMA"


def test_491_is_retried_after_the_backoff_then_fails(clock: UDPClock) -> None:
    """hold() answered 491: sent again after exactly the §14.1 back-off drawn from the injected random
    (we placed the call: 2.1-4 s), twice (glare_retries=2); the third 491 errs with ReinviteFailed, the
    session unchanged and not held.  The hold never fires as success."""
    ua = agent(clock)
    call = confirmed_uac_call(ua)
    assert call.call_media is not None
    before = call.call_media.local
    draws = random.Random(9)  # the same seeded sequence as the UA's injected random
    done: list[Any] = []
    call.hold().addBoth(done.append)
    seqs = [requests(ua, "INVITE")[-1].cseq.seq]
    for _ in range(2):
        answer_reinvite(ua, 491)
        delay = glare_backoff(True, draws.random)
        assert 2.1 <= delay <= 4.0
        clock.advance(delay - 0.01)
        assert requests(ua, "INVITE")[-1].cseq.seq == seqs[-1], "not before the back-off"
        clock.advance(0.01)
        again = requests(ua, "INVITE")[-1]
        assert again.cseq.seq == seqs[-1] + 1 and SessionDescription.parse(again.body).media[0].direction == "sendonly"
        seqs.append(again.cseq.seq)
        assert done == []
    answer_reinvite(ua, 491)
    assert len(done) == 1 and done[0].check(ReinviteFailed) and done[0].value.status == 491
    assert call.call_media.local is before and not call.held_locally
    assert call.call_media.state is OfferAnswerState.STABLE


def test_491_then_200_fires_the_hold(clock: UDPClock) -> None:
    """A 491 followed, after the back-off, by a 200: hold() fires with that 200 and the call is held."""
    ua = agent(clock, glare_retries=1)
    call = confirmed_uac_call(ua)
    done: list[Any] = []
    call.hold().addBoth(done.append)
    answer_reinvite(ua, 491)
    clock.advance(4.0)
    answer_reinvite(ua, 200)
    assert done[0].status == 200 and call.held_locally


@given(st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_the_glare_backoff_bounds(r: float) -> None:
    """RFC 3261 §14.1: owner of the Call-ID 2.1-4 s, else 0-2 s, in units of 10 ms."""
    owner, other = glare_backoff(True, lambda: r), glare_backoff(False, lambda: r)
    assert 2.1 <= owner <= 4.0 and 0.0 <= other <= 2.0
    assert round(owner * 100) == pytest.approx(owner * 100) and round(other * 100) == pytest.approx(other * 100)


def test_early_media_follows_the_fork_that_sent_sdp_and_the_2xx_decides(clock: UDPClock) -> None:
    """183 with SDP from fork a: RTP to a's address before any 200; 183 from fork b: media moves to b;
    the 200 of fork a without SDP confirms a's early answer (RFC 3261 §13.2.1)."""
    ua = agent(clock)
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    invite = requests(ua, "INVITE")[-1]
    offer = SessionDescription.parse(invite.body)

    def early(port: int) -> bytes:
        return make_answer(offer, BOB[0], port, codecs=(PCMU,), dtmf=False, session_id=port).to_bytes()

    answer_invite(ua, invite, 180, tag="a")  # no SDP: no media yet
    assert call.media_params is None
    answer_invite(ua, invite, 183, tag="a", body=early(4100))
    assert call.media_params is not None and call.media_params.remote_port == 4100
    call.call_media.play(b"\0\0" * 320)  # type: ignore[union-attr]
    clock.advance(0.01)
    answer_invite(ua, invite, 183, tag="b", body=early(4200))
    clock.advance(0.03)
    ports = [addr[1] for _, addr in rtp_sent(clock, call)]
    assert ports[0] == 4100 and ports[-1] == 4200 and not call.answered.called
    answer_invite(ua, invite, 200, tag="a")
    assert call.answered.called and call.media_params.remote_port == 4100
    assert call.call_media.state is OfferAnswerState.STABLE  # type: ignore[union-attr]


def test_received_early_rtp_is_heard_before_the_answer(clock: UDPClock) -> None:
    """Ringback from the 183's address reaches the stream (recorded) while the call still rings."""
    ua = agent(clock)
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    invite = requests(ua, "INVITE")[-1]
    offer = SessionDescription.parse(invite.body)
    answer_invite(ua, invite, 183, tag="a",
                  body=make_answer(offer, BOB[0], 4100, codecs=(PCMU,), dtmf=False, session_id=1).to_bytes())
    call.media.start_recording()
    packet = RtpPacket(payload_type=0, sequence=1, timestamp=160, ssrc=5, payload=b"\xff" * 160)
    call.media.datagramReceived(packet.to_bytes(), (BOB[0], 4100))
    assert call.media.stats.packets_received == 1 and not call.answered.called


def test_no_answer_timeout_cancels_the_ringing_call(clock: UDPClock) -> None:
    """Timer C: ringing for no_answer_timeout (30 s here) sends CANCEL at exactly 30 s; the 487 fails
    the call with CallNotAnswered naming the timeout."""
    ua = agent(clock, media=False, no_answer_timeout=30.0)
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    invite = requests(ua, "INVITE")[-1]
    answer_invite(ua, invite, 180)
    failures: list[Any] = []
    call.answered.addErrback(failures.append)
    clock.advance(29.99)
    assert requests(ua, "CANCEL") == []
    clock.advance(0.01)
    [cancel] = requests(ua, "CANCEL")
    assert cancel.cseq.seq == invite.cseq.seq and cancel.top_via.branch == invite.top_via.branch
    answer_invite(ua, invite, 487)
    assert failures and failures[0].check(CallNotAnswered)
    assert failures[0].value.timeout == 30.0 and "30 s" in str(failures[0].value)
    assert call.ended.called


def test_the_default_no_answer_timeout_is_three_minutes_and_none_turns_it_off(clock: UDPClock) -> None:
    """Configuration().no_answer_timeout is 180 s (RFC 3261 §16.6 item 11); None never cancels."""
    assert Configuration().no_answer_timeout == 180.0
    with pytest.raises(ValueError, match="no_answer_timeout"):
        Configuration(no_answer_timeout=0)
    ua = agent(clock, media=False, no_answer_timeout=None)
    ua.place_call(f"sip:bob@{BOB[0]}")
    answer_invite(ua, requests(ua, "INVITE")[-1], 180)
    clock.advance(600)
    assert requests(ua, "CANCEL") == []


def test_an_answered_call_is_never_cancelled_by_the_timeout(clock: UDPClock) -> None:
    ua = agent(clock, media=False, no_answer_timeout=5.0)
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    answer_invite(ua, requests(ua, "INVITE")[-1], 200)
    clock.advance(10)
    assert call.answered.called and requests(ua, "CANCEL") == [] and requests(ua, "BYE") == []


def test_a_call_ending_during_the_glare_backoff_fails_the_hold(clock: UDPClock) -> None:
    """491, then the call ends before the retry: hold() errs at once and no re-INVITE follows."""
    ua = agent(clock)
    call = confirmed_uac_call(ua)
    done: list[Any] = []
    call.hold().addBoth(done.append)
    answer_reinvite(ua, 491)
    call.hangup()
    bye = requests(ua, "BYE")[-1]
    answer_invite(ua, bye, 200, tag=None)
    assert call.ended.called and len(done) == 1 and done[0].check(LocalProtocolError)
    count = len(requests(ua, "INVITE"))
    clock.advance(5)
    assert len(requests(ua, "INVITE")) == count


def test_silent_early_media_does_not_cancel_a_ringing_call(clock: UDPClock) -> None:
    """A 183 with SDP and then no RTP for longer than the media timeout (60 s): the call keeps ringing
    (no CANCEL) until the no-answer timeout; the media timeout ends only answered calls."""
    ua = agent(clock, no_answer_timeout=120.0)
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    invite = requests(ua, "INVITE")[-1]
    offer = SessionDescription.parse(invite.body)
    answer_invite(ua, invite, 183, tag="a",
                  body=make_answer(offer, BOB[0], 4100, codecs=(PCMU,), dtmf=False, session_id=1).to_bytes())
    call.answered.addErrback(lambda f: None)
    clock.advance(61)
    assert requests(ua, "CANCEL") == [] and not call.ended.called
    clock.advance(59)
    assert len(requests(ua, "CANCEL")) == 1


def test_we_hold_a_peer_that_holds_us_and_its_inactive_answer_keeps_the_remote_hold(clock: UDPClock) -> None:
    """The peer holds us (sendonly); we hold it too: our offer is inactive and so must be the answer
    (RFC 3264 §6.1), which says nothing of the peer's wish: held_remotely stays True (§8.4) until
    the peer resumes in an offer of its own."""
    ua = agent(clock)
    call, ok = confirmed_uas_call(ua)
    reinvite(ua, ok, 2, bob_sdp(version=2, direction="sendonly"))
    ack(ua, responses(ua, 200)[-1], branch="z9hG4bKa2")
    assert call.held_remotely
    done: list[Any] = []
    call.hold().addBoth(done.append)
    ours = requests(ua, "INVITE")[-1]
    assert SessionDescription.parse(ours.body).media[0].direction == "inactive"
    answer_invite(ua, ours, 200, tag=None, body=bob_sdp(version=3, direction="inactive"))
    assert done[0].status == 200
    assert call.held_locally and call.held_remotely
    reinvite(ua, ok, 4, bob_sdp(version=4))  # the peer resumes
    assert call.held_locally and not call.held_remotely
    assert SessionDescription.parse(responses(ua, 200)[-1].body).media[0].direction == "sendonly"


@pytest.mark.parametrize("nat", [False, True], ids=["default", "symmetric-rtp"])
def test_an_idle_confirmed_call_sends_silence_every_ptime_and_none_while_held(clock: UDPClock, nat: bool) -> None:
    """Nothing played: the call still sends one silence packet per 20 ms to the peer (its frames, its
    RTP timeout, NAT); held by the peer (we answer recvonly) it sends nothing, and silence resumes after.
    The same with the stream factory of symmetric RTP (where it matters most: the peer latches on it)."""
    ua = agent(clock, symmetric_rtp=True) if nat else agent(clock)
    call, ok = confirmed_uas_call(ua)
    clock.advance(0)
    for _ in range(10):
        clock.advance(0.02)
    sent = rtp_sent(clock, call)
    assert 9 <= len(sent) <= 11 and {addr for _, addr in sent} == {BOB_RTP}
    assert all(p.payload == bytes([0xFF]) * 160 for p, _ in sent)  # PCMU silence
    reinvite(ua, ok, 2, bob_sdp(version=2, direction="sendonly"))  # bob holds us: we answer recvonly
    assert SessionDescription.parse(responses(ua, 200)[-1].body).media[0].direction == "recvonly"
    ack(ua, responses(ua, 200)[-1], branch="z9hG4bKa2")
    before = len(rtp_sent(clock, call))
    for _ in range(10):
        clock.advance(0.02)
    assert len(rtp_sent(clock, call)) == before  # held: nothing sent
    reinvite(ua, ok, 3, bob_sdp(version=3, direction="sendrecv"))
    for _ in range(10):
        clock.advance(0.02)
    assert len(rtp_sent(clock, call)) >= before + 9  # resumed: silence again


def test_the_caller_call_is_confirmed_when_its_ack_is_sent(clock: UDPClock) -> None:
    """UAC: ``confirmed`` fires with the call once the 2xx arrived and our ACK went out (RFC 3261
    §13.2.2.4), after ``answered``; not while ringing, nor on a final failure."""
    ua = agent(clock)
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    invite = requests(ua, "INVITE")[-1]
    order: list[str] = []
    call.answered.addCallback(lambda _: order.append("answered"))
    call.confirmed.addCallback(lambda c: order.append("confirmed" if c is call else "?"))
    answer_invite(ua, invite, 180)
    assert not call.confirmed.called
    answer = make_answer(SessionDescription.parse(invite.body), BOB[0], 4000, codecs=(PCMU,), dtmf=False,
                         session_id=5)
    answer_invite(ua, invite, 200, body=answer.to_bytes())
    assert len(requests(ua, "ACK")) == 1 and order == ["answered", "confirmed"]
    rejected = ua.place_call(f"sip:bob@{BOB[0]}")
    answer_invite(ua, requests(ua, "INVITE")[-1], 486)
    rejected.answered.addErrback(lambda _: None)
    assert not rejected.confirmed.called
