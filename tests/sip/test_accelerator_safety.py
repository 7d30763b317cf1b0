"""Regression tests of the C accelerator's memory-safety fixes and its on/off switch.

Each test here was written for a bug found in review of ``txsipua/sip/_speedups.c``
(a stale memo slot, a key that is not a str read as one, an entry used after a
finalizer freed it...); the agreement of the C and pure paths is checked in
``test_accelerator_differential.py``.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.sip import parse

try:
    from txsipua.sip._speedups import parse_head, tag_param, via_parts
except ImportError:  # pragma: no cover - an install without a compiler
    parse_head = tag_param = via_parts = None  # type: ignore[assignment]

NAMES = parse._NAMES
pytestmark = pytest.mark.skipif(
    parse_head is None, reason="the C accelerator is not built for this tree (`pip install -e .` or `python3 setup.py build_ext --inplace` builds it)"
)

REST = b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
"""The mandatory fields but Via, under their canonical names."""


def _msg(*lines: bytes) -> bytes:
    """A complete OPTIONS with ``lines`` (the Via among them) before the other fields."""
    return b"OPTIONS sip:a@b SIP/2.0\r\n" + b"".join(lines) + REST + b"\r\n"


def _names(**entries: tuple[Any, Any]) -> dict[Any, Any]:
    """The canonical names plus ``entries`` (a written name -> entry), Via left out."""
    out: dict[Any, Any] = {k: v for k, v in NAMES.items() if k != "Via"}
    out.update(entries)
    return out


def _head(data: bytes, names: dict[Any, Any]) -> Any:
    return parse_head(data, data.find(b"\r\n\r\n"), names)


def _fields(data: bytes, names: dict[Any, Any]) -> list[tuple[str, str, str]]:
    """The fields parse_head gives (asserting it answered)."""
    got = _head(data, names)
    assert got is not None
    return got[0]


def test_bad_arguments_raise() -> None:
    data = _msg(b"Via: SIP/2.0/UDP h\r\n")
    with pytest.raises(ValueError):
        parse_head(data, 0, NAMES)
    with pytest.raises(ValueError):
        parse_head(data, len(data) + 1, NAMES)
    with pytest.raises(TypeError):
        parse_head("text", 3, NAMES)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _head(data, {**NAMES, "Via": "not a tuple"})


def test_memo_follows_the_names_dict() -> None:
    """A name memoised for one dict is not answered from the memo for another dict."""
    data = _msg(b"Via: x\r\n")
    assert _fields(data, NAMES)[0] == ("via", "Via", "x")
    assert _fields(data, _names(Via=("via", "V")))[0] == ("via", "V", "x")
    assert _head(data, _names()) is None  # not from a stale memo
    assert _fields(data, NAMES)[0] == ("via", "Via", "x")


def test_memo_is_not_filled_for_a_dict_switched_to_during_the_lookup() -> None:
    """A key's __eq__ calling parse_head with another dict mid-lookup: the entry found
    in the first dict is not memoised as the other dict's (it answered that dict's
    next call with the first dict's entry)."""
    data = _msg(b"Via: x\r\n")
    other = _names(Via=("via", "V2"))

    class Reentrant(str):
        __hash__ = str.__hash__

        def __eq__(self, rhs: object) -> bool:
            _head(data, other)  # switches the memo to `other`
            return str.__eq__(self, rhs)

    first = _names()
    first[Reentrant("Via")] = ("via", "Via")
    assert _fields(data, first)[0] == ("via", "Via", "x")
    assert _fields(data, other)[0] == ("via", "V2", "x")
    assert _fields(data, first)[0] == ("via", "Via", "x")
    assert _fields(data, other)[0] == ("via", "V2", "x")


def test_a_head_ending_with_a_line_end_is_declined() -> None:
    """data[:end] ending with CRLF has an empty last line, an error of the pure path:
    declined at every such end."""
    data = _msg(b"Via: SIP/2.0/UDP h\r\n", b"Content-Length: 0\r\n")
    for end in range(1, len(data) - 3):
        if data[:end].endswith(b"\r\n"):
            assert parse_head(data, end, NAMES) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    data = data + b"\r\n\r\n"
    end = data.find(b"\r\n\r\n")
    if end > 0:
        got = parse_head(data, end, NAMES)
        if got is not None:
            assert all(len(f) == 3 for f in got[0])


@pytest.mark.parametrize("key", [None, 1, 2.5, b"via", ("via",), bytearray(b"via")])
def test_a_names_entry_whose_key_is_not_a_str_raises(key: object) -> None:
    """A ``names`` entry whose lookup key is not a str is a TypeError (parse_head used to
    read any key object as a str: a read past the object and a garbage count of the
    mandatory fields)."""
    data = _msg(b"Via: SIP/2.0/UDP h\r\n")
    with pytest.raises(TypeError):
        _head(data, {**NAMES, "Via": (key, "Via")})

    class Key(str):  # a str subclass is a str: accepted like the str itself
        pass

    got = _head(data, {**NAMES, "Via": (Key("via"), "Via")})
    assert got is not None and got[0][0] == ("via", "Via", "SIP/2.0/UDP h")


def _memo_slot(name: bytes) -> int:
    """The memo slot of a header name in _speedups.c (FNV-1a, 256 slots)."""
    h = 2166136261
    for c in name:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h & 255


def test_memo_switch_released_entry_finalizer_sees_no_stale_slot() -> None:
    """Switching the memo to another dict empties every slot before releasing any entry:
    a finalizer run by a release that calls parse_head with the new dict finds no slot
    of the old dict (it used to get the old dict's entry for a name the new dict has)."""
    first, later = sorted([b"Xa", b"Vv"], key=_memo_slot)
    assert _memo_slot(first) < _memo_slot(later)  # released first, looked up later
    data = _msg(later + b": 1\r\n")
    new = _names(**{later.decode(): ("via", "New")})
    seen: list[Any] = []

    class Canonical(str):
        def __del__(self) -> None:
            seen.append(_head(data, new))

    old = _names(**{first.decode(): ("first", Canonical("First")), later.decode(): ("via", "Old")})
    both = _msg(first + b": 0\r\n", later + b": 1\r\n")
    assert _head(both, old) is not None  # memo of `old`
    del old[first.decode()]  # the entry is now held by the memo only
    got = _head(data, new)  # switch: releasing it runs Canonical.__del__
    assert len(seen) == 1 and seen[0] is not None
    assert seen[0][0][0] == ("via", "New", "1")
    assert got == seen[0]


def test_entry_deleted_by_a_finalizer_mid_split_is_kept_alive() -> None:
    """A collection started by an allocation inside parse_head may run a finalizer that
    clears the names dict and switches the memo: the entry in use stays alive (it was
    borrowed, then read after its release: a use after free under ASan)."""
    data = _msg(b"Via: x\r\n", b"Via: y\r\n")
    other = _msg(b"Via: z\r\n")
    state: dict[str, Any] = {}

    class Bomb:
        def __init__(self) -> None:
            self.me = self  # a cycle: freed by the collector only

        def __del__(self) -> None:
            state["n"] += 1
            if state["n"] == state["at"] and state["names"] is not None:
                state["names"].clear()
                _head(other, _names(Via=("via", "V")))
            elif state["n"] < state["at"]:
                Bomb()
                state["junk"].extend([] for _ in range(state["extra"]))

    saved = gc.get_threshold()
    try:
        for at in range(1, 10):
            for extra in (0, 1, 2):
                key, canonical = "".join(["v", "ia", "!"])[:3], "".join(["V", "ia", "!"])[:3]
                names = _names(Via=(key, canonical))
                del key, canonical
                state.update(n=0, at=at, extra=extra, names=names, junk=[])
                gc.collect()
                Bomb()
                gc.set_threshold(1, 1000, 1000)
                try:
                    got = _head(data, names)
                    if got is not None:
                        assert got[0][:2] == [("via", "Via", "x"), ("via", "Via", "y")]
                finally:
                    gc.set_threshold(*saved)
                state["names"] = None
                del names
                gc.collect()
    finally:
        gc.set_threshold(*saved)


def test_tag_param_refuses_non_str() -> None:
    with pytest.raises(TypeError):
        tag_param(b"<sip:a@b>;tag=1")  # type: ignore[arg-type]


def test_via_parts_non_str_raises_type_error() -> None:
    for bad in (b"SIP/2.0/UDP h", None, 5, ["SIP/2.0/UDP h"]):
        with pytest.raises(TypeError):
            via_parts(bad)  # type: ignore[arg-type]


def test_via_parts_str_subclass_gives_plain_values() -> None:
    class S(str):
        def lower(self) -> str:  # never consulted: the C code reads the characters
            return "overridden"

    got = via_parts(S("SIP/2.0/UDP h:1;X=y"))
    assert got == ("UDP", "h", 1, {"x": "y"})
    assert type(got[1]) is str


def test_via_parts_no_reference_or_memory_leak() -> None:
    texts = [
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport;received=198.51.100.2",
        "SIP/2.0/Udp [2001:db8::1];Odd=1;odd=2;x",
        "SIP/2.0/UDP h:65536;branch=x",  # declined after the head
        "SIP/2.0/UDP h;branch=x;bad=\"q\"",  # declined in the parameters
        "SIP/2.0/UDP é",
    ]
    shared = [via_parts(texts[0])[0], *via_parts(texts[0])[3]]
    for t in texts:
        via_parts(t)
    before = [sys.getrefcount(s) for s in shared]
    none_before = sys.getrefcount(None)
    tracemalloc.start()
    try:
        for t in texts:
            via_parts(t)
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(2000):
            for t in texts:
                via_parts(t)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - base < 4096
    assert [sys.getrefcount(s) for s in shared] == before
    assert abs(sys.getrefcount(None) - none_before) < 100  # a leak would be 2000+


def test_txsipua_pure_turns_it_off() -> None:
    """TXSIPUA_PURE=1 switches every entry point off; unset, they are in use."""
    code = ("from txsipua.sip import message, parse, values; "
            "print(parse._parse_head is None, message._tag_param is None, values._via_parts is None)")
    env = dict(os.environ, TXSIPUA_PURE="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "True True True"
    env.pop("TXSIPUA_PURE")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False False False"
