"""SDES keys and SRTP/RTCP-mux offer/answer (txsipua.media.sdes, RFC 4568, RFC 5761)."""

from __future__ import annotations

import pytest

from txsipua.errors import NoCommonCodec, ParseError
from txsipua.media.offer_answer import make_answer, make_offer, negotiate
from txsipua.media.sdes import CryptoAttribute
from txsipua.media.sdp import SessionDescription

KEY_A = bytes(range(30))
KEY_B = bytes(range(100, 130))


def test_crypto_attribute_round_trip_and_lifetime_mki_accepted() -> None:
    """RFC 4568 §9.1: tag, suite, inline key; a lifetime and MKI are read and ignored."""
    c = CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", KEY_A)
    assert CryptoAttribute.parse(c.to_value()) == c
    assert CryptoAttribute.parse(c.to_value() + "|2^20|1:4").key == KEY_A


@pytest.mark.parametrize("value", ["", "x AES_CM_128_HMAC_SHA1_80 inline:AAAA", "1 AES_CM_128_HMAC_SHA1_80 inline:!!",
                                   "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"])
def test_bad_crypto_attributes(value: str) -> None:
    """Bad grammar, bad base64 and a short key for a known suite are ParseError 488."""
    with pytest.raises(ParseError) as info:
        CryptoAttribute.parse(value)
    assert info.value.status == 488


def offer(**kw: object) -> SessionDescription:
    """Parse back an offer, as a peer would see it."""
    return SessionDescription.parse(make_offer("192.0.2.10", 4000, session_id=1, **kw).to_bytes())  # type: ignore[arg-type]


def test_savp_offer_answer_negotiates_keys_each_way() -> None:
    """The answer picks the first offered suite with its tag; each side sends with its key, hears the other's."""
    o = offer(crypto=(CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", KEY_A),
                      CryptoAttribute(2, "AES_CM_128_HMAC_SHA1_32", bytes(30))), rtcp_mux=True)
    assert o.media[0].proto == "RTP/SAVP"
    a = SessionDescription.parse(make_answer(o, "192.0.2.20", 5000, session_id=2, srtp_key=KEY_B,
                                             rtcp_mux=True).to_bytes())
    m = a.media[0]
    assert m.proto == "RTP/SAVP" and m.attribute("crypto") == CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80",
                                                                                  KEY_B).to_value()
    ours = negotiate(a, o)
    assert ours.srtp is not None and ours.srtp.local_key == KEY_B and ours.srtp.remote_key == KEY_A
    assert ours.rtcp_mux
    theirs = negotiate(o, a)
    assert theirs.srtp is not None and theirs.srtp.local_key == KEY_A and theirs.srtp.remote_key == KEY_B


def test_savp_refused_without_key_and_avp_refused_when_required() -> None:
    """No SRTP key: an RTP/SAVP offer is 488; srtp_required: a plain RTP/AVP offer is 488."""
    with pytest.raises(NoCommonCodec):
        make_answer(offer(crypto=(CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", KEY_A),)), "192.0.2.20", 5000,
                    session_id=2)
    with pytest.raises(NoCommonCodec):
        make_answer(offer(), "192.0.2.20", 5000, session_id=2, srtp_key=KEY_B, srtp_required=True)
    plain = make_answer(offer(), "192.0.2.20", 5000, session_id=2, srtp_key=KEY_B)
    assert plain.media[0].proto == "RTP/AVP" and plain.media[0].attribute("crypto") is None


def test_unknown_suite_only_is_refused() -> None:
    """An offer with only suites we do not know cannot be answered."""
    o = SessionDescription.parse(make_offer("192.0.2.10", 4000, session_id=1,
                                            crypto=(CryptoAttribute(1, "F8_128_HMAC_SHA1_80", KEY_A),)).to_bytes())
    with pytest.raises(NoCommonCodec):
        make_answer(o, "192.0.2.20", 5000, session_id=2, srtp_key=KEY_B)


def test_rtcp_mux_only_when_both_and_rtcp_port_read() -> None:
    """a=rtcp-mux is answered only when offered and wanted; a=rtcp gives the peer's RTCP port (RFC 3605)."""
    o = offer(rtcp_mux=False)
    a = make_answer(o, "192.0.2.20", 5000, session_id=2, rtcp_mux=True)
    assert not negotiate(a, o).rtcp_mux
    o2 = SessionDescription.parse(make_offer("192.0.2.10", 4000, session_id=1).to_text().replace(
        "a=sendrecv", "a=rtcp:4009 IN IP4 192.0.2.10\r\na=sendrecv"))
    a2 = make_answer(o2, "192.0.2.20", 5000, session_id=2)
    assert negotiate(a2, o2).rtcp_port == 4009
