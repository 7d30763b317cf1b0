"""The optional C accelerator ``txsipua.sip._speedups`` against the pure path.

``split_head`` must give exactly what :func:`txsipua.sip.message._split_general` gives
for the header sections it accepts, and decline (``None``) the rest so the pure code
decides and raises.  In CI the extension must be built (``.ci/run`` installs with a
compiler), so these tests never skip there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.sip import message

try:
    from txsipua.sip._speedups import parse_head, split_head, tag_param
except ImportError:  # pragma: no cover - an install without a compiler
    parse_head = split_head = tag_param = None  # type: ignore[assignment]
NAMES = message._NAMES
pytestmark = pytest.mark.skipif(
    split_head is None, reason="the C accelerator is not built (no compiler at install time)"
)

BASE = (
    b"INVITE sip:bob@198.51.100.7 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:alice@192.0.2.1>;tag=a\r\n"
    b"To: <sip:bob@198.51.100.7>\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _general(data: bytes) -> object:
    try:
        start, fields, keys, body_start = message._split_general(data, data.find(b"\r\n\r\n"))
    except ParseError as e:
        return ("error", e.status, e.detail)
    return start, fields, keys, body_start


def _fast(data: bytes) -> object:
    end = data.find(b"\r\n\r\n")
    if end <= 0:
        return None
    got = split_head(data, end, NAMES)
    return None if got is None else (*got, end + 4)


def _fields(data: bytes, names: dict[Any, tuple[str, str]]) -> list[tuple[str, str, str]]:
    """The fields of an accepted split (asserting it was accepted)."""
    got = split_head(data, data.find(b"\r\n\r\n"), names)
    assert got is not None
    return got[1]


def test_plain_message_is_split_like_the_pure_path() -> None:
    got = split_head(BASE, BASE.find(b"\r\n\r\n"), NAMES)
    assert got is not None
    start, fields, keys = got
    assert start == "INVITE sip:bob@198.51.100.7 SIP/2.0"
    assert keys == ["via", "from", "to", "call-id", "cseq", "content-length"]
    assert fields[0] == ("via", "Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1")
    assert _fast(BASE) == _general(BASE)


@pytest.mark.parametrize(
    "data",
    [
        BASE.replace(b"Call-ID: c1", b"Call-ID: c1\r\n  more\r\n\t and more"),  # folding
        BASE.replace(b"Call-ID: c1", b"Call-ID:\r\n c1"),  # fold onto an empty value
        BASE.replace(b"Call-ID: c1", b"Call-ID: c1\r\n   "),  # a blank continuation
        BASE.replace(b"Call-ID: c1", b"Call-ID: \t c1 \t"),  # SP/HT around the value
        BASE.replace(b"From: <", "From: \"Zo\u00eb \u2028\" <".encode()),  # UTF-8, U+2028
        BASE.replace(b"Call-ID: c1", b"i: c1"),  # compact form
        BASE.replace(b"CSeq", b"CSEQ"),  # a spelling learned by the pure path first
        BASE.replace(b"Call-ID: c1", b"Subject: a: b: c"),  # colons in the value
        b"SIP/2.0 200 OK\r\n\r\n",  # no header fields
    ],
)
def test_accepted_shapes_agree_with_the_pure_path(data: bytes) -> None:
    want = _general(data)  # also teaches NAMES a new spelling, as parse_message would
    assert _fast(data) == want


@pytest.mark.parametrize(
    "data",
    [
        BASE.replace(b"Call-ID: c1", b"Call-ID: c\x00"),  # NUL
        BASE.replace(b"Call-ID: c1", b"Call-ID: c\x0b1"),  # VT (a line break for str)
        BASE.replace(b"Call-ID: c1", b"Call-ID: c\r1"),  # bare CR
        BASE.replace(b"Call-ID: c1", b"Call-ID: c\n1"),  # bare LF
        BASE.replace(b"Call-ID: c1", b"Call-ID: c\xff"),  # not UTF-8
        BASE.replace(b"Call-ID: c1", b"Call-ID c1"),  # no colon
        BASE.replace(b"Call-ID: c1", b"X-Never-Seen-Before-\xc3\xa9: 1"),  # unknown name
        BASE.replace(b"Call-ID: c1\r\n", b"Call-ID: c1\r\n\r\n", 1).replace(b"\r\n\r\n", b"\r\nx", 1),
        b" INVITE sip:a@b SIP/2.0\r\n\r\n".lstrip(b" ").replace(b"INVITE sip:a@b SIP/2.0", b""),
        b"INVITE sip:a@b SIP/2.0\r\n continuation first\r\n\r\n",  # fold before any field
        b"INVITE sip:a@b SIP/2.0\r\r\n\r\n",  # CR CR LF
    ],
)
def test_odd_input_is_declined_for_the_pure_path(data: bytes) -> None:
    end = data.find(b"\r\n\r\n")
    if end > 0:
        assert split_head(data, end, NAMES) is None


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        split_head(BASE, 0, NAMES)
    with pytest.raises(ValueError):
        split_head(BASE, len(BASE) + 1, NAMES)
    with pytest.raises(TypeError):
        split_head("text", 3, NAMES)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bad = b"A sip:a SIP/2.0\r\nX: 1\r\n\r\n"
        split_head(bad, bad.find(b"\r\n\r\n"), {"X": "not a tuple"})  # type: ignore[dict-item]


def test_memo_follows_the_names_dict() -> None:
    """A name memoised for one dict is not answered from the memo for another dict."""
    data = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"
    end = data.find(b"\r\n\r\n")
    assert split_head(data, end, NAMES) is not None
    assert split_head(data, end, {"Via": ("via", "Via")}) is not None
    assert split_head(data, end, {}) is None  # not from a stale memo
    assert _fields(data, {"Via": ("k", "V")}) == [("k", "V", "x")]
    assert _fields(data, NAMES) == [("via", "Via", "x")]


def test_memo_is_not_filled_for_a_dict_switched_to_during_the_lookup() -> None:
    """A key's __eq__ calling split_head with another dict mid-lookup: the entry found
    in the first dict is not memoised as the other dict's (it answered that dict's
    next call with the first dict's entry)."""
    data = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"
    end = data.find(b"\r\n\r\n")
    other = {"Via": ("k2", "V2")}

    class Reentrant(str):
        __hash__ = str.__hash__

        def __eq__(self, rhs: object) -> bool:
            split_head(data, end, other)  # switches the memo to `other`
            return str.__eq__(self, rhs)

    first = {Reentrant("Via"): ("via", "Via")}
    assert _fields(data, first) == [("via", "Via", "x")]
    assert _fields(data, other) == [("k2", "V2", "x")]
    assert _fields(data, first) == [("via", "Via", "x")]
    assert _fields(data, other) == [("k2", "V2", "x")]


def test_a_head_ending_with_a_line_end_is_declined() -> None:
    """data[:end] ending with CRLF has an empty last line, an error of the pure path:
    declined at every such end, not split without it."""
    for end in range(1, len(BASE) - 3):
        want = _general_at(BASE, end)
        got = split_head(BASE, end, NAMES)
        if BASE[:end].endswith(b"\r\n"):
            assert got is None
            assert want[0] == "error"
        if got is not None:
            assert (*got, end + 4) == want


def _general_at(data: bytes, end: int) -> tuple[object, ...]:
    try:
        return message._split_general(data, end)
    except ParseError as e:
        return ("error", e.status, e.detail)


_LINE_BITS = st.sampled_from(
    [b"Via", b"v", b"CSeq", b"Call-ID", b"X-A", b"Subject", b":", b": ", b" ", b"\t", b"\r\n",
     b"\r\n ", b"\r\n\t", b"\r", b"\n", b"\x00", b"\x7f", b"\xc3\xa9", b"\xe2\x80\xa8", b"\xff",
     b"a", b"1", b";", b"<sip:a@b>"]
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE_BITS, max_size=40))
def test_fuzzed_header_sections_agree(bits: list[bytes]) -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"".join(bits) + b"\r\n\r\n"
    want = _general(data)
    got = _fast(data)
    if got is not None:
        assert got == want


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    data = data + b"\r\n\r\n"
    end = data.find(b"\r\n\r\n")
    if end > 0:
        got = split_head(data, end, NAMES)
        if got is not None:
            assert got[0] and all(len(f) == 3 for f in got[1])


def test_pure_mode_by_environment() -> None:
    """TXSIPUA_PURE=1 makes parse_message use the pure path only."""
    code = "import txsipua.sip.message as m; print(m._split_head is None)"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "TXSIPUA_PURE": "1"},
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.strip() == "True"


# ---------------------------------------------------------------- tag_param


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("<sip:a@b>;tag=abc", "abc"),
        ('"Chloe \\"CJ\\" Jones" <sip:a@b;tag=no>;tag=x1;other', "x1"),
        ("sip:a@b;tag=t", "t"),  # addr-spec: header parameters after the URI
        ("<sip:a@b>", None),
        ("<sip:a@b;tag=in-uri>", None),  # a URI parameter is not the tag
        ("<sip:a@b>;TAG=x", NotImplemented),  # odd spelling: the full parser
        ("<sip:a@b>;tag=", NotImplemented),  # empty
        ("<sip:a@b>;tag=a;tag=b", NotImplemented),  # repeated
        ('<sip:a@b>;x="y";tag=a', NotImplemented),  # a quoted parameter
        ("<sip:a@b>;tag= a", NotImplemented),  # strip() would change it
        ("<sip:a@b>;tag=\u00e9", NotImplemented),  # non-ASCII
    ],
)
def test_tag_param_examples(value: str, want: object) -> None:
    assert tag_param(value) == want if want is not None else tag_param(value) is None
    if want is not NotImplemented:
        assert message._fast_tag(value) == want


def test_tag_param_refuses_non_str() -> None:
    with pytest.raises(TypeError):
        tag_param(b"<sip:a@b>;tag=1")  # type: ignore[arg-type]


_TAG_BITS = st.sampled_from(
    ["<", ">", "sip:a@b", ";", "tag", "TAG", "=", ";tag=", '"', "\\", " ", "\t", "x", "1",
     "\x1c", "\x7f", "\u00e9", ",", "Tag"]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_TAG_BITS, max_size=14).map("".join))
def test_tag_param_agrees_with_the_pure_code(value: str) -> None:
    got = tag_param(value)
    if got is not NotImplemented:
        try:
            want = message._fast_tag(value)
        except ParseError:
            pytest.fail(f"tag_param answered {got!r} where the pure code raises")
        assert got == want


# --------------------------------------------------------------- parse_head


def _head(data: bytes) -> Any:
    return parse_head(data, data.find(b"\r\n\r\n"), NAMES)


def test_parse_head_common_request_and_response() -> None:
    got = _head(BASE + b"body")
    assert got[2:] == (True, "INVITE", "sip:bob@198.51.100.7", 1, "INVITE", 0)
    resp = BASE.replace(b"INVITE sip:bob@198.51.100.7 SIP/2.0", b"SIP/2.0 180  Ringing \t")
    assert _head(resp)[2:] == (False, 180, "Ringing", 1, "INVITE", 0)
    bare = BASE.replace(b"INVITE sip:bob@198.51.100.7 SIP/2.0", b"SIP/2.0 200")
    assert _head(bare)[2:4] == (False, 200)
    assert _head(bare)[4] == ""
    no_cl = BASE.replace(b"Content-Length: 0\r\n", b"")
    assert _head(no_cl)[-1] == -1
    body = BASE.replace(b"Content-Length: 0", b"Content-Length: 4") + b"abcdEXTRA"
    assert _head(body)[-1] == 4


@pytest.mark.parametrize(
    "data",
    [
        BASE.replace(b"Call-ID: c1\r\n", b""),  # missing Call-ID
        BASE.replace(b"Call-ID: c1", b"Call-ID: c1\r\ni: c2"),  # two Call-IDs
        BASE.replace(b"From: <sip:alice@192.0.2.1>;tag=a\r\n", b""),
        BASE.replace(b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n", b""),
        BASE.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0"),  # two CLs
        BASE.replace(b"Content-Length: 0", b"Content-Length: 5"),  # short body
        BASE.replace(b"Content-Length: 0", b"Content-Length: 0000000000"),  # 10 digits
        BASE.replace(b"Content-Length: 0", b"Content-Length: x"),
        BASE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"),  # method mismatch: 400
        BASE.replace(b"CSeq: 1 INVITE", b"CSeq: 4294967296 INVITE"),  # out of range
        BASE.replace(b"CSeq: 1 INVITE", b"CSeq: 1  INVITE"),
        BASE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 invite"),  # not a known method spelling
        BASE.replace(b"CSeq: 1 INVITE", b"CSeq: INVITE"),
        BASE.replace(b"INVITE sip:", b"INVITE  sip:"),  # two SPs
        BASE.replace(b" SIP/2.0\r\n", b" SIP/2.1\r\n", 1),  # 505 from the pure code
        BASE.replace(b"sip:bob@198.51.100.7 ", b"bob ", 1),  # no colon in the URI
        BASE.replace(b"sip:bob@198.51.100.7", "sip:b\u00f6b@h".encode(), 1),  # UTF-8 URI
        BASE.replace(b"INVITE sip:bob@198.51.100.7 SIP/2.0", b"SIP/2.0 099 Low"),
        BASE.replace(b"INVITE sip:bob@198.51.100.7 SIP/2.0", b"SIP/2.0 700 High"),
        BASE.replace(b"INVITE sip:bob@198.51.100.7 SIP/2.0", b"SIP/2.0 20 Short"),
        BASE.replace(b"INVITE sip:bob@198.51.100.7 SIP/2.0", b"SIP/2.0 200OK"),
    ],
)
def test_parse_head_declines_what_the_pure_code_must_decide(data: bytes) -> None:
    assert _head(data) is None
    # and the pure code (with every accelerator entry point off) decides it, same as
    # parse_message with the accelerator: both parse, or both raise the same error
    saved = (message._parse_head, message._split_head, message._tag_param)
    try:
        message._parse_head = message._split_head = message._tag_param = None
        try:
            pure: Any = message.parse_message(data)
        except ParseError as e:
            pure = (e.status, e.detail)
    finally:
        message._parse_head, message._split_head, message._tag_param = saved
    try:
        fast: Any = message.parse_message(data)
    except ParseError as e:
        fast = (e.status, e.detail)
    if isinstance(pure, tuple):
        assert fast == pure
    else:
        assert fast.headers._fields == pure.headers._fields and fast.body == pure.body


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(
    [b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", b"v: x\r\n", b"From: <sip:a@b>;tag=1\r\n",
     b"f: a\r\n", b"To: <sip:b@c>\r\n", b"Call-ID: c\r\n", b"i: d\r\n", b"CSeq: 1 INVITE\r\n",
     b"CSeq: 2 BYE\r\n", b"Content-Length: 3\r\n", b"l: 0\r\n", b"Content-Length: 99\r\n",
     b"Route: <sip:p;lr>\r\n", b"Route: <sip:q;lr>\r\n"]), max_size=12),
    st.sampled_from([b"INVITE sip:a@b SIP/2.0", b"SIP/2.0 200 OK", b"BYE sip:a@b SIP/2.0",
                     b"SIP/2.0 487 Request Terminated"]),
    st.binary(max_size=5))
def test_parse_head_agrees_with_the_pure_checks(lines: list[bytes], start: bytes,
                                                body: bytes) -> None:
    data = start + b"\r\n" + b"".join(lines) + b"\r\n" + body
    got = _head(data)
    if got is None:
        return
    saved = (message._parse_head, message._split_head, message._tag_param)
    try:
        message._parse_head = message._split_head = message._tag_param = None
        try:
            m = message.parse_message(data)
        except ParseError as e:
            pytest.fail(f"parse_head accepted what the pure code refuses: {e}")
    finally:
        message._parse_head, message._split_head, message._tag_param = saved
    fields, keys, is_request, first, second, seq, method, length = got
    assert fields == m.headers._fields and keys == list(m.headers._index())
    assert is_request == m.is_request
    assert (first, second) == ((m.method, m.uri_text) if m.is_request else (m.status, m.reason))
    assert (seq, method) == (m.cseq.seq, m.cseq.method)
    assert (data[data.find(b"\r\n\r\n") + 4:] if length < 0 else
            data[data.find(b"\r\n\r\n") + 4:][:length]) == m.body


@pytest.mark.parametrize("key", [None, 1, 2.5, b"via", ("via",), bytearray(b"via")])
def test_a_names_entry_whose_key_is_not_a_str_raises(key: object) -> None:
    """A ``names`` entry whose lookup key is not a str is a TypeError, for split_head and
    parse_head alike (parse_head used to read any key object as a str: a read past the
    object and a garbage count of the mandatory fields)."""
    data = (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\n"
            b"To: <sip:b@c>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n")
    end = data.find(b"\r\n\r\n")
    names: dict[str, Any] = {**NAMES, "Via": (key, "Via")}
    for fn in (split_head, parse_head):
        with pytest.raises(TypeError):
            fn(data, end, names)
    # a str subclass is a str: accepted like the str itself
    class Key(str):
        pass

    got = parse_head(data, end, {**NAMES, "Via": (Key("via"), "Via")})
    assert got is not None and got[0][0] == ("via", "Via", "SIP/2.0/UDP h")


def _memo_slot(name: bytes) -> int:
    """The memo slot of a header name in _speedups.c (FNV-1a, 256 slots)."""
    h = 2166136261
    for c in name:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h & 255


def test_memo_switch_released_entry_finalizer_sees_no_stale_slot() -> None:
    """Switching the memo to another dict empties every slot before releasing any entry:
    a finalizer run by a release that calls split_head with the new dict finds no slot
    of the old dict (it used to get the old dict's entry for a name the new dict has)."""
    first, later = sorted([b"Xa", b"Via"], key=_memo_slot)
    assert _memo_slot(first) < _memo_slot(later)  # released first, looked up later
    data = b"A sip:b SIP/2.0\r\n" + later + b": 1\r\n\r\n"
    end = data.find(b"\r\n\r\n")
    new = {later.decode(): ("new", "New")}
    seen: list[Any] = []

    class Canonical(str):
        def __del__(self) -> None:
            seen.append(split_head(data, end, new))

    old: dict[str, tuple[str, str]] = {
        first.decode(): ("first", Canonical("First")),
        later.decode(): ("old", "Old"),
    }
    both = b"A sip:b SIP/2.0\r\n" + first + b": 0\r\n" + later + b": 1\r\n\r\n"
    assert split_head(both, both.find(b"\r\n\r\n"), old) is not None  # memo of `old`
    del old[first.decode()]  # the entry is now held by the memo only
    got = split_head(data, end, new)  # switch: releasing it runs Canonical.__del__
    assert seen == [("A sip:b SIP/2.0", [("new", "New", "1")], ["new"])]
    assert got == seen[0]


def test_entry_deleted_by_a_finalizer_mid_split_is_kept_alive() -> None:
    """A collection started by an allocation inside split_head/parse_head may run a
    finalizer that clears the names dict and switches the memo: the entry in use stays
    alive (it was borrowed, then read after its release: a use after free under ASan)."""
    import gc

    data = b"A sip:b SIP/2.0\r\nVia: x\r\nVia: y\r\n\r\n"
    other = b"A sip:b SIP/2.0\r\nX: 1\r\n\r\n"
    state: dict[str, Any] = {}

    class Bomb:
        def __init__(self) -> None:
            self.me = self  # a cycle: freed by the collector only

        def __del__(self) -> None:
            state["n"] += 1
            if state["n"] == state["at"] and state["names"] is not None:
                state["names"].clear()
                split_head(other, other.find(b"\r\n\r\n"), {"X": ("x", "X")})
            elif state["n"] < state["at"]:
                Bomb()
                state["junk"].extend([] for _ in range(state["extra"]))

    saved = gc.get_threshold()
    try:
        for at in range(1, 10):
            for extra in (0, 1, 2):
                key, canonical = "".join(["v", "ia", "!"])[:3], "".join(["V", "ia", "!"])[:3]
                names = {"Via": (key, canonical)}
                del key, canonical
                state.update(n=0, at=at, extra=extra, names=names, junk=[])
                gc.collect()
                Bomb()
                gc.set_threshold(1, 1000, 1000)
                try:
                    for fn in (split_head, parse_head):
                        got = fn(data, data.find(b"\r\n\r\n"), names)
                        if got is not None and fn is split_head:
                            assert got[1] == [("via", "Via", "x"), ("via", "Via", "y")]
                finally:
                    gc.set_threshold(*saved)
                state["names"] = None
                del names
                gc.collect()
    finally:
        gc.set_threshold(*saved)
