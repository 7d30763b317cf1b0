"""The bounded caches of parsed URIs and name-addrs (``SipURI.parse``, ``NameAddr.parse``)."""

from __future__ import annotations

import pytest

from txsipua.errors import ParseError
from txsipua.sip import uri as uri_module
from txsipua.sip import values as values_module
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr


def test_same_uri_text_gives_the_same_value() -> None:
    """A URI parsed twice is one immutable value, equal to a fresh parse."""
    text = "sip:alice@192.0.2.10:5070;transport=tcp"
    first = SipURI.parse(text)
    assert SipURI.parse(text) is first
    uri_module._PARSED.clear()
    again = SipURI.parse(text)
    assert again == first and again is not first
    assert (again.user, again.host, again.port, again.params) == ("alice", "192.0.2.10", 5070, {"transport": "tcp"})


def test_uri_cache_is_bounded_and_errors_are_not_kept() -> None:
    """Ever new URIs never hold more than the cache size; a bad URI raises every time."""
    for n in range(uri_module.PARSED_URI_CACHE_SIZE * 2 + 5):
        SipURI.parse(f"sip:user{n}@198.51.100.7")
    assert 0 < len(uri_module._PARSED) <= uri_module.PARSED_URI_CACHE_SIZE
    for _ in range(2):
        with pytest.raises(ParseError):
            SipURI.parse("sip:alice@bad host")
    assert "sip:alice@bad host" not in uri_module._PARSED


def test_same_name_addr_text_gives_the_same_value() -> None:
    """A name-addr parsed twice is one value; with a new tag it is a new parse."""
    text = '"Bob" <sip:bob@192.0.2.20>;tag=abc'
    first = NameAddr.parse(text)
    assert NameAddr.parse(text) is first
    other = NameAddr.parse('"Bob" <sip:bob@192.0.2.20>;tag=def')
    assert other.tag == "def" and first.tag == "abc" and other.uri is first.uri


def test_name_addr_cache_is_bounded_and_errors_are_not_kept() -> None:
    """Ever new name-addrs never hold more than the cache size; a bad one raises every time."""
    for n in range(values_module.PARSED_NAME_ADDR_CACHE_SIZE + 10):
        NameAddr.parse(f"<sip:bob@192.0.2.20>;tag=t{n}")
    assert 0 < len(values_module._PARSED_NAME_ADDRS) <= values_module.PARSED_NAME_ADDR_CACHE_SIZE
    for _ in range(2):
        with pytest.raises(ParseError):
            NameAddr.parse("<sip:bob@192.0.2.20")
