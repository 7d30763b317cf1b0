"""Offer/answer carried by reliable provisionals and UPDATE in the early dialog (RFC 3262 §5, RFC 3311 §5.1).

The peer is played by hand as in ``test_call_offer_answer``: what the UA wrote is parsed
(``uafakes.sent``) and Bob's responses are fed back through ``datagramReceived``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from uafakes import UDPClock, alice, sent

from txsipua.errors import LocalProtocolError
from txsipua.media.negotiation import OfferAnswerState
from txsipua.media.offer_answer import PCMU, make_answer, make_offer
from txsipua.media.sdp import SessionDescription
from txsipua.sip.message import Request, Response
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent

BOB = ("203.0.113.7", 5060)


def agent(clock: UDPClock) -> UserAgent:
    ua = UserAgent(clock, Configuration(), alice(), UDPTransport(clock, "192.0.2.10", 0),
                   random=random.Random(9).random)
    ua.start()
    return ua


def requests(ua: UserAgent, method: str) -> list[Request]:
    return [m for m in sent(ua) if isinstance(m, Request) and m.method == method]


def respond(ua: UserAgent, request: Request, status: int, *, tag: str | None = "t1", body: bytes = b"",
            extra: tuple[tuple[str, str], ...] = ()) -> None:
    headers = [("Via", v) for v in request.headers.get_all("Via")]
    to = request.headers.get("To") or ""
    headers += [("From", request.headers.get("From") or ""), ("To", to if tag is None else f"{to};tag={tag}"),
                ("Call-ID", request.call_id), ("CSeq", str(request.cseq)), *extra]
    if 100 < status < 300:
        headers.append(("Contact", f"<sip:bob@{BOB[0]}>"))
    if body:
        headers.append(("Content-Type", "application/sdp"))
    ua.protocol.datagramReceived(Response(status, None, headers, body=body).to_bytes(), BOB)


RELIABLE = (("Require", "100rel"), ("RSeq", "7"))


def bob_offer(port: int = 4300) -> bytes:
    return make_offer(BOB[0], port, codecs=(PCMU,), dtmf=False, session_id=3, session_version=1).to_bytes()


def test_an_offer_in_a_reliable_183_to_an_offerless_invite_is_answered_in_the_prack(clock: UDPClock) -> None:
    """INVITE without SDP, 183 (100rel) with Bob's offer: the PRACK carries our answer and the media starts."""
    ua = agent(clock)
    call = ua.place_call(f"sip:bob@{BOB[0]}", offer=False)
    invite = requests(ua, "INVITE")[-1]
    assert invite.body == b""
    respond(ua, invite, 183, body=bob_offer(), extra=RELIABLE)
    [prack] = requests(ua, "PRACK")
    assert prack.headers.get("RAck") == f"7 {invite.cseq.seq} INVITE"
    assert prack.headers.get("Content-Type") == "application/sdp"
    answer = SessionDescription.parse(prack.body)
    assert call.media is not None and answer.media[0].port == call.media.port
    assert call.call_media is not None and call.call_media.state is OfferAnswerState.STABLE
    assert call.media_params is not None and call.media_params.remote_port == 4300
    assert not call.answered.called
    respond(ua, prack, 200)
    respond(ua, invite, 200, body=bob_offer())  # the 2xx repeats the SDP: no new offer, the ACK has no body
    [ack] = requests(ua, "ACK")
    assert ack.body == b"" and "Content-Type" not in ack.headers
    assert call.answered.called and call.media_params.remote_port == 4300


def early_answered_call(ua: UserAgent) -> tuple[Any, Request]:
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    invite = requests(ua, "INVITE")[-1]
    offer = SessionDescription.parse(invite.body)
    answer = make_answer(offer, BOB[0], 4400, codecs=(PCMU,), dtmf=False, session_id=4).to_bytes()
    respond(ua, invite, 183, body=answer, extra=RELIABLE)
    [prack] = requests(ua, "PRACK")
    respond(ua, prack, 200)
    return call, invite


def test_update_in_the_early_dialog_after_the_reliable_answer_offers(clock: UDPClock) -> None:
    """INVITE offer answered in a PRACKed 183: update("sendonly") sends the UPDATE offer (RFC 3311 §5.1)."""
    ua = agent(clock)
    call, _ = early_answered_call(ua)
    assert call.call_media.state is OfferAnswerState.STABLE
    d = call.update("sendonly")
    [update] = requests(ua, "UPDATE")
    assert update.headers.get("Content-Type") == "application/sdp"
    assert SessionDescription.parse(update.body).media[0].direction == "sendonly"
    got: list[Any] = []
    d.addBoth(got.append)
    bob = make_answer(SessionDescription.parse(update.body), BOB[0], 4400, codecs=(PCMU,), dtmf=False,
                      session_id=4, session_version=2).to_bytes()
    respond(ua, update, 200, tag=None, body=bob)
    assert isinstance(got[0], Response) and got[0].status == 200 and call.held_locally


def test_update_while_our_invite_offer_is_unanswered_says_so(clock: UDPClock) -> None:
    """An unreliable 183 answer leaves our offer outstanding: the UPDATE is refused with that reason."""
    ua = agent(clock)
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    invite = requests(ua, "INVITE")[-1]
    respond(ua, invite, 180)
    failures: list[Any] = []
    call.update("sendonly").addErrback(failures.append)
    assert failures and failures[0].check(LocalProtocolError)
    message = str(failures[0].value)
    assert "not answered" in message and "no media to re-offer" not in message
    assert requests(ua, "UPDATE") == []


@pytest.mark.parametrize("reliable", [False, True])
def test_the_early_answer_kind_decides_the_state(clock: UDPClock, reliable: bool) -> None:
    """A 183 answer is early (still outstanding) unless the 183 is reliable (then the exchange is complete)."""
    ua = agent(clock)
    call = ua.place_call(f"sip:bob@{BOB[0]}")
    invite = requests(ua, "INVITE")[-1]
    answer = make_answer(SessionDescription.parse(invite.body), BOB[0], 4500, codecs=(PCMU,), dtmf=False,
                         session_id=4).to_bytes()
    respond(ua, invite, 183, body=answer, extra=RELIABLE if reliable else ())
    want = OfferAnswerState.STABLE if reliable else OfferAnswerState.EARLY
    assert call.call_media.state is want and call.media_params.remote_port == 4500
