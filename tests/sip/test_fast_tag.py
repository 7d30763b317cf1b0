"""``Message.from_tag``/``to_tag`` (the no-URI-parse fast path) agree with ``from_.tag``/``to.tag``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.errors import ParseError
from txsipua.sip import NameAddr, Request, parse_message
from txsipua.testing import strategies as sst


def _with_from(value: str) -> Request:
    data = (
        "OPTIONS sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKft\r\n"
        f"From: {value}\r\n"
        f"To: {value}\r\n"
        "Call-ID: ft@192.0.2.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


@pytest.mark.parametrize(
    "value",
    [
        '<sip:a@example.com>;foo="a;tag=b"',  # ";tag=" inside a quoted parameter
        '<sip:a@example.com>;foo="x>y";tag=3',
        "<sip:a@example.com>;tag=1;tag=2",  # repeated: the full parser keeps the last
        "<sip:a@example.com>;tag=",  # empty tag
        '<sip:a@example.com>;tag="q"',
        "<sip:a@example.com;tag=5>",  # a URI parameter, not the header's tag
        '"tag=x>" <sip:a@example.com>',
        '"Al" <sip:a@example.com>;TAG = 7',
        "sip:a@example.com;tag=1",  # addr-spec: the parameters are the header's
        "<sip:a@example.com> ; tag=9",
        "<sip:alice@example.com>;tag=ab>cd",  # a '>' in the tag (review finding)
        "<sip:a@example.com>;tag=1;TAG=2",  # the last of two spellings wins
        "<sip:a@example.com>;tag=1,<sip:c@example.com>",  # a comma and a second '>'
        "<sip:a@example.com>;tagx=1;tag=2",
    ],
)
def test_fast_tag_matches_full_parse(value: str) -> None:
    """The fast path gives the tag the full name-addr parser gives."""
    msg = _with_from(value)
    assert msg.from_tag == NameAddr.parse(value).tag
    assert msg.to_tag == NameAddr.parse(value).tag
    assert msg.from_tag == msg.from_.tag  # and once cached


@settings(max_examples=150, deadline=None)
@given(sst.name_addrs())
def test_fast_tag_on_generated_name_addrs(na: NameAddr) -> None:
    """For any name-addr the strategies draw, the fast tag is the parsed tag."""
    msg = _with_from(str(na))
    assert msg.from_tag == na.tag and msg.to_tag == na.tag


def test_fast_tag_missing_header() -> None:
    """A missing From raises ParseError from from_tag, like from_."""
    msg = _with_from("<sip:a@example.com>;tag=1")
    msg.headers.remove("From")
    with pytest.raises(ParseError):
        msg.from_tag  # noqa: B018


_BITS = ["<", ">", "sip:a@b", ";", "tag", "TAG", "Tag", "=", ";tag=", '"', " ", "x", "1", ",",
         ">x", "<sip:c@d>"]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_BITS), max_size=12).map("".join))
def test_fast_tag_never_disagrees_with_a_successful_full_parse(value: str) -> None:
    """Whenever the full name-addr parse succeeds, from_tag/to_tag give its tag.

    (When the full parse fails, the fast path may still answer: it reads only the tag.)
    Dialogs are stored under ``from_.tag``/``to.tag`` and looked up with
    ``from_tag``/``to_tag``, so a difference would answer an in-dialog request 481.
    """
    try:
        want = NameAddr.parse(value).tag
    except ParseError:
        return
    try:
        msg = _with_from(value)
    except ParseError:
        return  # not a valid From header line at all (e.g. empty)
    assert msg.from_tag == want and msg.to_tag == want
