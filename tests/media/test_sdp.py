"""Tests for txsipua.media.sdp: golden parses, serialisation, errors and fuzzing (RFC 8866)."""

from __future__ import annotations

import contextlib

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.media.sdp import MediaDescription, SessionDescription


def crlf(text: str) -> bytes:
    """Turn a triple-quoted SDP into wire bytes with CRLF line ends."""
    return "".join(line + "\r\n" for line in text.strip().splitlines()).encode()


ASTERISK_OFFER = crlf("""
v=0
o=- 1733151702 1733151702 IN IP4 192.0.2.20
s=Asterisk
c=IN IP4 192.0.2.20
t=0 0
m=audio 10012 RTP/AVP 0 8 3 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

# What rtpengine, driven by Kamailio, writes into an INVITE relayed by the proxy.
RTPENGINE_OFFER = crlf("""
v=0
o=- 3713213 3713214 IN IP4 198.51.100.7
s=-
c=IN IP4 203.0.113.40
t=0 0
m=audio 30000 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendonly
a=rtcp:30001
a=ptime:20
""")

BARESIP_IPV6 = crlf("""
v=0
o=- 1818 2424 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 6000 RTP/AVP 96 0 8 101
b=AS:64
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:101 telephone-event/8000
a=label:1
a=sendrecv
m=video 6002 RTP/AVP 97
c=IN IP6 2001:db8::11
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=0
a=recvonly
m=image 0 udptl t38
a=inactive
""")


def test_asterisk_offer_parses():
    """Every field of an Asterisk-style offer lands where the contract says."""
    sdp = SessionDescription.parse(ASTERISK_OFFER)
    assert (sdp.username, sdp.session_id, sdp.session_version, sdp.address) == (
        "-", 1733151702, 1733151702, "192.0.2.20")
    assert sdp.session_name == "Asterisk"
    assert sdp.connection == "192.0.2.20"
    assert sdp.timing == (0, 0)
    (m,) = sdp.media
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 10012, "RTP/AVP", (0, 8, 3, 101))
    assert m.rtpmap == {0: "PCMU/8000", 8: "PCMA/8000", 3: "GSM/8000", 101: "telephone-event/8000"}
    assert m.fmtp == {101: "0-16"}
    assert m.ptime == 20
    assert m.direction == "sendrecv"
    assert m.attributes == (("maxptime", "150"),)
    assert m.connection is None
    assert sdp.media_connection(0) == "192.0.2.20"


def test_asterisk_offer_serialises_byte_for_byte():
    """A description in canonical order comes back identical."""
    assert SessionDescription.parse(ASTERISK_OFFER).to_bytes() == ASTERISK_OFFER


def test_rtpengine_offer():
    """Attribute order differs from ours: values survive, order is normalised."""
    sdp = SessionDescription.parse(RTPENGINE_OFFER)
    assert sdp.session_version == 3713214
    assert sdp.connection == "203.0.113.40"
    (m,) = sdp.media
    assert m.formats == (8, 0, 101)
    assert m.direction == "sendonly"
    assert m.attribute("rtcp") == "30001"
    assert m.ptime == 20
    again = SessionDescription.parse(sdp.to_bytes())
    assert again == sdp
    assert sdp.to_bytes().index(b"a=ptime:20") < sdp.to_bytes().index(b"a=sendonly")


def test_ipv6_several_media_and_non_rtp_formats():
    """IPv6, media-level c=, b= lines, dynamic payload types and a rejected T.38 stream."""
    sdp = SessionDescription.parse(BARESIP_IPV6)
    assert sdp.address == "2001:db8::10"
    audio, video, image = sdp.media
    assert audio.formats == (96, 0, 8, 101)
    assert audio.encoding(96) == "opus/48000/2"
    assert audio.encoding(0) == "PCMU/8000"  # static, no rtpmap (RFC 3551 Table 4)
    assert audio.encoding(100) is None
    assert audio.fmtp[96] == "stereo=1;sprop-stereo=1"
    assert audio.extra_lines == (("b", "AS:64"),)
    assert video.connection == "2001:db8::11"
    assert video.direction == "recvonly"
    assert sdp.media_connection(1) == "2001:db8::11"
    assert (image.media, image.port, image.proto, image.formats, image.other_formats) == (
        "image", 0, "udptl", (), ("t38",))
    out = sdp.to_bytes()
    assert b"c=IN IP6 2001:db8::11\r\n" in out
    assert b"m=image 0 udptl t38\r\n" in out
    assert SessionDescription.parse(out) == sdp


def test_bare_lf_blank_lines_and_float_ptime():
    """Tolerated sloppiness: LF line ends, blank lines, a=ptime:20.0, no s= line."""
    text = "v=0\no=bob 7 8 IN IP4 192.0.2.1\n\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 0\na=ptime:20.0\n"
    sdp = SessionDescription.parse(text)
    assert sdp.username == "bob"
    assert sdp.session_name == "-"
    assert sdp.media[0].ptime == 20
    assert sdp.media[0].rtpmap == {}
    assert sdp.to_bytes().endswith(b"\r\n")
    assert b"\n" not in sdp.to_bytes().replace(b"\r\n", b"")


def test_session_level_direction_is_inherited():
    """A session-level a=sendonly applies to media without their own (RFC 8866 §6.7)."""
    text = crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
a=sendonly
m=audio 4000 RTP/AVP 0
m=audio 4002 RTP/AVP 8
a=inactive
""")
    sdp = SessionDescription.parse(text)
    assert sdp.direction == "sendonly"
    assert [m.direction for m in sdp.media] == ["sendonly", "inactive"]
    assert SessionDescription.parse(sdp.to_bytes()) == sdp


def test_extra_lines_come_back_in_grammar_order():
    """i=, u=, e=, b=, r=, z=, k= lines are kept and written where RFC 8866 §5 puts them."""
    text = crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.1
s=A call
i=information
u=http://example.com/call
e=alice@example.com
c=IN IP4 192.0.2.1
b=CT:128
t=0 0
r=604800 3600 0
a=tool:test
m=audio 4000 RTP/AVP 0
i=the voice
b=AS:80
a=sendrecv
""")
    sdp = SessionDescription.parse(text)
    assert sdp.to_bytes() == text
    assert sdp.attributes == (("tool", "test"),)


def test_constructed_description_to_bytes():
    """Building a description by hand gives the expected lines."""
    sdp = SessionDescription(
        username="-", session_id=42, session_version=1, address="192.0.2.5", connection="192.0.2.5",
        media=(MediaDescription(port=5004, formats=(0, 101), rtpmap={0: "PCMU/8000", 101: "telephone-event/8000"},
                                fmtp={101: "0-16"}, ptime=20),),
    )
    assert sdp.to_bytes() == crlf("""
v=0
o=- 42 1 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 5004 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")
    assert str(sdp) == sdp.to_text()


def test_value_validation():
    """Bad constructor values raise ValueError, not a silently wrong description."""
    with pytest.raises(ValueError):
        MediaDescription(direction="both")
    with pytest.raises(ValueError):
        MediaDescription(port=70000)


def test_dicts_are_copied():
    """The rtpmap given to the constructor is copied, so later mutation does not leak in."""
    mapping = {0: "PCMU/8000"}
    m = MediaDescription(port=1, formats=(0,), rtpmap=mapping)
    mapping[8] = "PCMA/8000"
    assert m.rtpmap == {0: "PCMU/8000"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"", "empty"),
        (b"v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n", "v=0"),
        (b"o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n", "v=0"),
        (b"v=0\r\ns=-\r\n", "no o="),
        (b"v=0\r\no=- 1 1 IN IP4\r\n", "o="),
        (b"v=0\r\no=- x 1 IN IP4 192.0.2.1\r\n", "sess-id"),
        (b"v=0\r\no=- 1 1 ATM NSAP 47\r\n", "network"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4\r\n", "c="),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio\r\n", "m="),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio x RTP/AVP 0\r\n", "port"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 99999 RTP/AVP 0\r\n", "range"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 1 RTP/AVP 0\r\ns=late\r\n", "s="),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nhello\r\n", "bad SDP line"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=now\r\n", "t="),
    ],
)
def test_malformed_descriptions_raise_parse_error(text, words):
    """Each defect raises ParseError (status 400) whose detail names it."""
    with pytest.raises(ParseError) as info:
        SessionDescription.parse(text)
    assert words in info.value.detail
    assert info.value.status == 400


def test_malformed_known_attributes_are_kept_unused():
    """A bad rtpmap, fmtp or ptime does not fail the call: kept verbatim, not interpreted."""
    text = crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
t=0 0
m=audio 1 RTP/AVP 0 96
a=rtpmap:x PCMU/8000
a=rtpmap:96 PCMU
a=rtpmap:300 X/8000
a=fmtp:
a=ptime:fast
a=ptime:0
a=sendrecv   \t
""")
    (m,) = SessionDescription.parse(text).media
    assert m.rtpmap == {} and m.fmtp == {} and m.ptime is None
    assert m.attributes == (("rtpmap", "x PCMU/8000"), ("rtpmap", "96 PCMU"), ("rtpmap", "300 X/8000"),
                            ("fmtp", ""), ("ptime", "fast"), ("ptime", "0"))
    assert m.direction == "sendrecv"
    assert m.encoding(96) is None


def test_descriptions_are_hashable():
    """Frozen values can be hashed (the dict fields are left out of the hash)."""
    sdp = SessionDescription.parse(ASTERISK_OFFER)
    assert hash(sdp) == hash(SessionDescription.parse(ASTERISK_OFFER))


def test_non_utf8_bytes_survive():
    """A Latin-1 session name is carried through unchanged (surrogate escapes)."""
    data = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=Caf\xe9\r\nt=0 0\r\n"
    assert SessionDescription.parse(data).to_bytes() == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes_only_parse_error(data):
    """Whatever bytes arrive, only ParseError escapes."""
    with contextlib.suppress(ParseError):
        SessionDescription.parse(data)


_line = st.sampled_from(
    ["v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.9", "t=0 0", "m=audio 4000 RTP/AVP 0 8",
     "m=video 0 RTP/AVP 31", "a=rtpmap:0 PCMU/8000", "a=fmtp:101 0-15", "a=ptime:30", "a=sendonly",
     "a=rtpmap:200 X/1", "a=fmtp:x", "a=ptime:0", "b=AS:1", "c=IN IP6 ::1", "m=audio 1/2 RTP/AVP 0",
     "a=recvonly", "a=", "m=", "o=", "x=1", "a=rtcp:4001"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=12), st.booleans())
def test_fuzz_structured_only_parse_error_and_round_trip(lines, prefix):
    """Plausible line soups either raise ParseError or round-trip to an equal value."""
    text = "\r\n".join((["v=0", "o=- 1 1 IN IP4 192.0.2.1"] if prefix else []) + lines) + "\r\n"
    try:
        sdp = SessionDescription.parse(text)
    except ParseError:
        return
    assert SessionDescription.parse(sdp.to_bytes()) == sdp


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_media = st.builds(
    MediaDescription,
    media=st.sampled_from(["audio", "video"]),
    port=st.integers(0, 65535),
    proto=st.sampled_from(["RTP/AVP", "RTP/SAVP"]),
    formats=st.lists(st.integers(0, 127), max_size=4, unique=True).map(tuple),
    rtpmap=st.dictionaries(st.integers(0, 127), st.sampled_from(["PCMU/8000", "opus/48000/2"]), max_size=3),
    fmtp=st.dictionaries(st.integers(0, 127), st.sampled_from(["0-16", "mode=20"]), max_size=2),
    direction=st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]),
    ptime=st.one_of(st.none(), st.integers(1, 200)),
    attributes=st.lists(st.tuples(_token, st.one_of(st.none(), _token)), max_size=3).map(tuple),
    connection=st.one_of(st.none(), st.sampled_from(["192.0.2.7", "2001:db8::7"])),
)
_session = st.builds(
    SessionDescription,
    username=_token,
    session_id=st.integers(0, 2**64),
    session_version=st.integers(0, 2**64),
    address=st.sampled_from(["192.0.2.1", "2001:db8::1"]),
    session_name=_token,
    connection=st.one_of(st.none(), st.just("198.51.100.1")),
    media=st.lists(_media, max_size=3).map(tuple),
)


def _drop_direction_attrs(m: MediaDescription) -> MediaDescription:
    return attrs.evolve(m, attributes=tuple(a for a in m.attributes
                                            if a[0] not in ("sendrecv", "sendonly", "recvonly", "inactive",
                                                            "rtpmap", "fmtp", "ptime")))


@settings(max_examples=200, deadline=None)
@given(_session)
def test_round_trip_generated(sdp):
    """Any description we can build serialises and parses back to an equal value."""
    sdp = attrs.evolve(sdp, media=tuple(_drop_direction_attrs(m) for m in sdp.media))
    assert SessionDescription.parse(sdp.to_bytes()) == sdp


def test_extra_lines_out_of_grammar_order_round_trip() -> None:
    """A second t= before b= (out of RFC 8866 §5's order) is kept, written in order, and re-parses equal."""
    text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\nt=0 0\r\nb=AS:1\r\n"
    sdp = SessionDescription.parse(text)
    assert sdp.extra_lines == (("b", "AS:1"), ("t", "0 0"))
    assert SessionDescription.parse(sdp.to_bytes()) == sdp
