"""Tests for txsipua.media.offer_answer: codec choice, payload types, 488, hold (RFC 3264)."""

from __future__ import annotations

import attrs
import pytest

from txsipua.errors import SIPError
from txsipua.media.offer_answer import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    MediaParams,
    NoCommonCodec,
    hold_offer,
    make_answer,
    make_offer,
    negotiate,
    resume_offer,
)
from txsipua.media.sdp import SessionDescription


def sdp(text: str) -> SessionDescription:
    """Parse an SDP written with one line per source line."""
    return SessionDescription.parse("\r\n".join(text.strip().splitlines()) + "\r\n")


def offer_with(m_lines: str, c: str = "c=IN IP4 203.0.113.40") -> SessionDescription:
    """An offer from 203.0.113.40 with the given m= sections."""
    return sdp(f"v=0\no=- 5 5 IN IP4 203.0.113.40\ns=-\n{c}\nt=0 0\n{m_lines.strip()}")


G711_OFFER = offer_with("""
m=audio 30000 RTP/AVP 8 0 96
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-15
a=ptime:20
""")


def test_make_offer_layout():
    """The offer lists our codecs in order, telephone-event 101 with fmtp 0-16, ptime and direction."""
    offer = make_offer("192.0.2.10", 40000, session_id=77)
    assert offer.to_bytes() == (
        b"v=0\r\no=- 77 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 8 101\r\n"
        b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )


def test_make_offer_options():
    """IPv6, no DTMF, another order, a direction and a username."""
    offer = make_offer("2001:db8::5", 40002, codecs=(PCMA,), dtmf=False, session_id=1, session_version=9,
                       direction="sendonly", username="bot")
    assert b"o=bot 1 9 IN IP6 2001:db8::5" in offer.to_bytes()
    assert b"c=IN IP6 2001:db8::5" in offer.to_bytes()
    (m,) = offer.media
    assert m.formats == (8,)
    assert m.direction == "sendonly"
    with pytest.raises(ValueError):
        make_offer("192.0.2.1", 4000, codecs=(), session_id=1)
    with pytest.raises(ValueError):
        make_offer("192.0.2.1", 4000, codecs=(Codec("X", 101),), session_id=1)
    with pytest.raises(ValueError):
        make_offer("192.0.2.1", 0, session_id=1)
    with pytest.raises(ValueError):
        make_offer("192.0.2.1", 4000, session_id=1, direction="up")


def test_answer_follows_offer_order_and_payload_types():
    """Common codecs in the offer's order, the offer's telephone-event number (96) and fmtp."""
    answer = make_answer(G711_OFFER, "192.0.2.10", 40000, session_id=9)
    (m,) = answer.media
    assert m.formats == (8, 0, 96)
    assert m.rtpmap == {8: "PCMA/8000", 0: "PCMU/8000", 96: "telephone-event/8000"}
    assert m.fmtp == {96: "0-15"}
    assert m.direction == "sendrecv"
    assert answer.connection == "192.0.2.10"
    assert (answer.session_id, answer.session_version) == (9, 1)


def test_answer_local_preference():
    """With prefer='local' our order wins; only codecs we support are listed."""
    answer = make_answer(G711_OFFER, "192.0.2.10", 40000, session_id=9, prefer="local")
    assert answer.media[0].formats == (0, 8, 96)
    only_pcmu = make_answer(G711_OFFER, "192.0.2.10", 40000, session_id=9, codecs=(PCMU,), dtmf=False)
    assert only_pcmu.media[0].formats == (0,)
    with pytest.raises(ValueError):
        make_answer(G711_OFFER, "192.0.2.10", 40000, session_id=9, prefer="mine")


def test_answer_matches_dynamic_payload_types_by_name():
    """A codec offered under a dynamic number is matched by name and rate, keeping that number."""
    offer = offer_with("""
m=audio 30000 RTP/AVP 97 98
a=rtpmap:97 pcmu/8000
a=rtpmap:98 telephone-event/8000
""")
    (m,) = make_answer(offer, "192.0.2.10", 40000, session_id=1).media
    assert m.formats == (97, 98)
    assert m.fmtp == {98: "0-16"}


def test_answer_without_telephone_event_offered():
    """No telephone-event offered: none answered; negotiate reports None."""
    offer = offer_with("m=audio 30000 RTP/AVP 0")
    answer = make_answer(offer, "192.0.2.10", 40000, session_id=1)
    assert answer.media[0].formats == (0,)
    params = negotiate(answer, offer)
    assert params.telephone_event_pt is None
    assert params.local_telephone_event_pt is None


def test_no_common_codec_is_488():
    """Only G.729 and opus offered: NoCommonCodec, a SIPError with status 488."""
    offer = offer_with("""
m=audio 30000 RTP/AVP 18 111
a=rtpmap:111 opus/48000/2
""")
    with pytest.raises(NoCommonCodec) as info:
        make_answer(offer, "192.0.2.10", 40000, session_id=1)
    assert isinstance(info.value, SIPError)
    assert info.value.status == 488
    assert "G729/8000" in str(info.value) and "opus/48000/2" in str(info.value)


def test_pcmu_at_16khz_is_not_pcmu():
    """The clock rate is part of the codec: PCMU/16000 does not match PCMU/8000."""
    offer = offer_with("m=audio 30000 RTP/AVP 96\na=rtpmap:96 PCMU/16000")
    with pytest.raises(NoCommonCodec):
        make_answer(offer, "192.0.2.10", 40000, session_id=1)


def test_unsupported_lines_rejected_with_port_zero():
    """Video, SRTP and a second audio stream are rejected with port 0, order and count kept (§6)."""
    offer = offer_with("""
m=video 30002 RTP/AVP 97
a=rtpmap:97 H264/90000
m=audio 30004 RTP/SAVP 0
m=audio 30000 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
m=audio 30006 RTP/AVP 8
m=image 30008 udptl t38
""")
    answer = make_answer(offer, "192.0.2.10", 40000, session_id=1)
    assert [(m.media, m.port, m.proto) for m in answer.media] == [
        ("video", 0, "RTP/AVP"), ("audio", 0, "RTP/SAVP"), ("audio", 40000, "RTP/AVP"),
        ("audio", 0, "RTP/AVP"), ("image", 0, "udptl")]
    assert answer.media[0].formats == (97,)
    assert answer.media[4].other_formats == ("t38",)
    params = negotiate(answer, offer)
    assert (params.remote_port, params.media_index) == (30000, 2)
    # the answer parses back: every m= line has at least one format
    assert SessionDescription.parse(answer.to_bytes()) == answer


def test_offer_with_only_disabled_audio_is_488():
    """An audio stream offered with port 0 cannot be accepted."""
    with pytest.raises(NoCommonCodec):
        make_answer(offer_with("m=audio 0 RTP/AVP 0"), "192.0.2.10", 40000, session_id=1)


def test_offer_without_connection_address_is_rejected():
    """No c= anywhere for the audio stream: the stream cannot be used (488)."""
    with pytest.raises(NoCommonCodec) as info:
        make_answer(offer_with("m=audio 30000 RTP/AVP 0", c=""), "192.0.2.10", 40000, session_id=1)
    assert "connection" in str(info.value)


def test_media_level_connection_wins():
    """negotiate sends to the media-level c= when there is one."""
    offer = offer_with("m=audio 30000 RTP/AVP 0\nc=IN IP4 198.51.100.99")
    answer = make_answer(offer, "192.0.2.10", 40000, session_id=1)
    assert negotiate(answer, offer).remote_address == "198.51.100.99"


@pytest.mark.parametrize(
    ("offered", "hold", "answered", "ours"),
    [
        ("sendrecv", False, "sendrecv", "sendrecv"),
        ("sendrecv", True, "sendonly", "sendonly"),
        ("sendonly", False, "recvonly", "recvonly"),
        ("sendonly", True, "inactive", "inactive"),
        ("recvonly", False, "sendonly", "sendonly"),
        ("recvonly", True, "sendonly", "sendonly"),
        ("inactive", False, "inactive", "inactive"),
        ("inactive", True, "inactive", "inactive"),
    ],
)
def test_direction_answers(offered, hold, answered, ours):
    """RFC 3264 §6.1 direction mirroring, and the direction negotiate gives us."""
    offer = offer_with(f"m=audio 30000 RTP/AVP 0\na={offered}")
    answer = make_answer(offer, "192.0.2.10", 40000, session_id=1, hold=hold)
    assert answer.media[0].direction == answered
    assert negotiate(answer, offer).direction == ours


def test_rfc2543_hold_with_zero_address():
    """c=0.0.0.0 is the old way to hold (RFC 3264 §8.4): answered recvonly, we never send there."""
    offer = offer_with("m=audio 30000 RTP/AVP 0", c="c=IN IP4 0.0.0.0")
    answer = make_answer(offer, "192.0.2.10", 40000, session_id=1)
    assert answer.media[0].direction == "recvonly"
    params = negotiate(answer, offer)
    assert not params.sending and params.receiving


def test_negotiate_as_offerer_uses_first_codec_of_answer_and_their_numbers():
    """The offerer sends with the answer's first codec (§7), under the answer's payload types."""
    offer = make_offer("192.0.2.10", 40000, session_id=1)  # PCMU 0, PCMA 8, te 101
    answer = sdp("""
v=0
o=- 8 8 IN IP4 203.0.113.40
s=-
c=IN IP4 203.0.113.40
t=0 0
m=audio 30000 RTP/AVP 8 0 100
a=rtpmap:100 telephone-event/8000
a=ptime:30
""")
    params = negotiate(offer, answer)
    assert params == MediaParams(
        remote_address="203.0.113.40", remote_port=30000, codec=PCMA, telephone_event_pt=100,
        direction="sendrecv", ptime=30, media_index=0, local_telephone_event_pt=101)
    assert params.sending and params.receiving


def test_negotiate_as_answerer_uses_offer_preference():
    """The answerer sends with the most preferred offered codec it also listed (§6.1)."""
    answer = make_answer(G711_OFFER, "192.0.2.10", 40000, session_id=1, prefer="local")
    params = negotiate(answer, G711_OFFER)
    assert params.codec == PCMA
    assert params.telephone_event_pt == 96
    assert params.local_telephone_event_pt == 96


def test_negotiate_answer_rejecting_audio():
    """An answer with port 0 leaves no usable stream: NoCommonCodec."""
    offer = make_offer("192.0.2.10", 40000, session_id=1)
    answer = offer_with("m=audio 0 RTP/AVP 0")
    with pytest.raises(NoCommonCodec):
        negotiate(offer, answer)
    with pytest.raises(NoCommonCodec):
        negotiate(offer, offer_with("m=audio 3000 RTP/AVP 18"))


def test_round_trip_between_two_of_us():
    """Our offer, answered by us: both sides agree on codec, ports and event numbers."""
    offer = make_offer("192.0.2.10", 40000, session_id=1, codecs=(PCMA, PCMU))
    answer = make_answer(SessionDescription.parse(offer.to_bytes()), "192.0.2.20", 50000, session_id=2)
    a_side = negotiate(offer, SessionDescription.parse(answer.to_bytes()))
    b_side = negotiate(answer, offer)
    assert (a_side.remote_address, a_side.remote_port) == ("192.0.2.20", 50000)
    assert (b_side.remote_address, b_side.remote_port) == ("192.0.2.10", 40000)
    assert a_side.codec == b_side.codec == PCMA
    assert a_side.telephone_event_pt == b_side.telephone_event_pt == TELEPHONE_EVENT.payload_type


def test_hold_and_resume_offers():
    """Hold: sendonly (inactive for recvonly), version + 1; resume: sendrecv, version + 1 (§8.4)."""
    offer = make_offer("192.0.2.10", 40000, session_id=1, session_version=3)
    held = hold_offer(offer)
    assert held.session_version == 4
    assert held.session_id == 1
    assert held.media[0].direction == "sendonly"
    assert attrs.evolve(held.media[0], direction="sendrecv") == offer.media[0]
    resumed = resume_offer(held)
    assert resumed.session_version == 5
    assert resumed.media[0].direction == "sendrecv"
    recvonly = make_offer("192.0.2.10", 40000, session_id=1, direction="recvonly")
    assert hold_offer(recvonly).media[0].direction == "inactive"


def test_hold_keeps_rejected_lines():
    """Re-offers keep every m= line; rejected ones stay port 0 and untouched (§8)."""
    offer = offer_with("m=video 30002 RTP/AVP 97\nm=audio 30000 RTP/AVP 0")
    answer = make_answer(offer, "192.0.2.10", 40000, session_id=1)
    held = hold_offer(answer)
    assert [(m.port, m.direction) for m in held.media] == [(0, "sendrecv"), (40000, "sendonly")]


def test_held_by_peer_then_negotiated():
    """The peer re-offers sendonly: we answer recvonly and stop sending."""
    offer = make_offer("192.0.2.10", 40000, session_id=1)
    peer = make_answer(offer, "192.0.2.20", 50000, session_id=2)
    reoffer = hold_offer(peer)
    answer = make_answer(reoffer, "192.0.2.10", 40000, session_id=1, session_version=2)
    assert answer.media[0].direction == "recvonly"
    assert negotiate(answer, reoffer).direction == "recvonly"
