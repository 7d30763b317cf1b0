"""Headers of a target URI (RFC 3261 §19.1.1 Table 1, §19.1.5): never in the Request-URI, To or From.

``ua.options("sip:bob@...?X-Uri-Header=1&Subject=hi")`` used to send the
``?...`` in the Request-URI and in To.  Now every out-of-dialog request takes
them off and turns the harmless ones into header fields of the request; the
ones §19.1.5 calls dangerous (Via, From, Call-ID, CSeq, Route...), the ones
the request already has, and values holding CR/LF are not honoured.
"""

from __future__ import annotations

import pytest
from uafakes import UDPClock, requests

from txsipua.core.builders import URI_HEADERS_REFUSED, new_request
from txsipua.sip.message import Request, parse_message
from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr
from txsipua.ua.useragent import UserAgent

TARGET = "sip:bob@192.0.2.20:5070?X-Uri-Header=1&Subject=hi"


def _clean(req: Request) -> None:
    """No URI headers left where Table 1 forbids them, and the request still parses back."""
    assert "?" not in str(req.uri) and not req.uri.headers
    assert not req.to.uri.headers and not req.from_.uri.headers
    assert "?" not in (req.headers.get("To") or "") and "?" not in (req.headers.get("From") or "")
    again = parse_message(req.to_bytes())
    assert isinstance(again, Request) and str(again.uri) == str(req.uri)


def test_options_takes_the_headers_off_and_adds_them_as_fields(clock: UDPClock, ua: UserAgent) -> None:
    ua.options(TARGET).addErrback(lambda f: None)
    req = requests(ua, "OPTIONS")[-1]
    _clean(req)
    assert str(req.uri) == "sip:bob@192.0.2.20:5070"
    assert req.headers.get("X-Uri-Header") == "1" and req.headers.get("Subject") == "hi"


def test_every_out_of_dialog_request_is_cleaned(clock: UDPClock, ua: UserAgent) -> None:
    """MESSAGE, INVITE, SUBSCRIBE and REGISTER (a registrar URI with headers) alike."""
    from txsipua.ua.account import Account

    ua.message(TARGET, "hello").addErrback(lambda f: None)
    call = ua.place_call(TARGET)
    call.answered.addErrback(lambda f: None)
    ua.subscribe(TARGET, "message-summary")
    for method in ("MESSAGE", "INVITE", "SUBSCRIBE"):
        req = requests(ua, method)[-1]
        _clean(req)
        assert req.headers.get("Subject") == "hi", method
    assert requests(ua, "MESSAGE")[-1].body == b"hello"  # the request's own body wins
    assert requests(ua, "SUBSCRIBE")[-1].headers.get_all("Event") == ["message-summary"]

    assert ua.account is not None
    other = Account("carol", "example.com", registrar="sip:192.0.2.21?Subject=reg")
    agent = UserAgent(clock, ua.config, other, type(ua.transport)(clock, "192.0.2.40", 0))
    agent.start()
    agent.register(60).addErrback(lambda f: None)
    reg = [parse_message(d) for d, _ in clock.ports[-1].written][-1]
    assert isinstance(reg, Request) and reg.method == "REGISTER"
    _clean(reg)
    assert str(reg.uri) == "sip:192.0.2.21"


def test_dangerous_fields_and_injections_are_not_honoured(clock: UDPClock, ua: UserAgent) -> None:
    """§19.1.5: no Via, From, Call-ID, CSeq, Route, Contact, To... from a URI; no CR/LF injected."""
    target = ("sip:bob@192.0.2.20?Via=SIP/2.0/UDP%20203.0.113.9&From=sip:eve@203.0.113.9&Call-ID=evil"
              "&CSeq=9%20OPTIONS&Route=%3Csip:203.0.113.9%3E&Contact=%3Csip:eve@203.0.113.9%3E"
              "&To=sip:eve@203.0.113.9&Max-Forwards=1&Content-Length=99&i=evil2"
              "&X-Inject=a%0D%0AX-Evil:%201&Bad%20Name=1&Priority=urgent")
    ua.options(target).addErrback(lambda f: None)
    req = requests(ua, "OPTIONS")[-1]
    _clean(req)
    text = req.to_bytes().decode()
    assert "203.0.113.9" not in text and "evil" not in text.lower(), text
    assert req.headers.get("Max-Forwards") == "70"
    assert len(req.headers.get_all("Via")) == 1 and len(req.headers.get_all("Call-ID")) == 1
    assert "X-Inject" not in req.headers and "Bad Name" not in text
    assert req.headers.get("Priority") == "urgent"


def _build(uri: str, method: str = "OPTIONS", body: bytes = b"", content_type: str | None = None) -> Request:
    target = SipURI.parse(uri)
    return new_request(method, target, NameAddr(SipURI.parse("sip:alice@example.com"), params={"tag": "t"}),
                       NameAddr(target), via="SIP/2.0/UDP 192.0.2.1:5060", call_id="c1",
                       body=body, content_type=content_type)


def test_a_body_parameter_sets_the_body_of_a_request_without_one() -> None:
    """``body=`` (with the URI's Content-Type, else text/plain); never an INVITE's, never over a given body."""
    req = _build("sip:bob@192.0.2.20?body=hello%20there&Content-Type=text/x-note")
    assert req.body == b"hello there" and req.headers.get("Content-Type") == "text/x-note"
    assert parse_message(req.to_bytes()).body == b"hello there"  # type: ignore[union-attr]
    req = _build("sip:bob@192.0.2.20?body=hi")
    assert req.body == b"hi" and req.headers.get("Content-Type") == "text/plain"
    req = _build("sip:bob@192.0.2.20?body=hi&Content-Type=text/x-note", "INVITE")
    assert req.body == b"" and "Content-Type" not in req.headers
    req = _build("sip:bob@192.0.2.20?body=hi&Content-Type=text/x-note", "MESSAGE", b"mine", "text/plain")
    assert req.body == b"mine" and req.headers.get_all("Content-Type") == ["text/plain"]


def test_a_request_uri_given_as_text_is_cleaned_too() -> None:
    req = new_request("OPTIONS", "sip:bob@192.0.2.20?Subject=hi", NameAddr(SipURI.parse("sip:a@example.com")),
                      NameAddr(SipURI.parse("sip:bob@192.0.2.20")), via="SIP/2.0/UDP 192.0.2.1:5060", call_id="c")
    assert str(req.uri) == "sip:bob@192.0.2.20" and req.headers.get("Subject") == "hi"


@pytest.mark.parametrize("name", ["Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length",
                                  "Max-Forwards", "Route", "Record-Route", "Authorization",
                                  "Proxy-Authorization", "Supported", "Allow", "User-Agent", "Require"])
def test_the_refused_fields(name: str) -> None:
    from txsipua.sip.headers import header_key

    assert header_key(name) in URI_HEADERS_REFUSED


