"""The event and transfer values: sipfrag, Event, Subscription-State, Replaces, MWI, dialog-info, INFO DTMF."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txsipua.core import capabilities
from txsipua.errors import ParseError
from txsipua.media.dtmf_info import digits_of_info
from txsipua.sip.dialog_info import parse_dialog_info
from txsipua.sip.event_headers import (
    EventHeader,
    Replaces,
    SubscriptionState,
    replaces_of_uri_header,
)
from txsipua.sip.message_summary import MessageCounts, parse_message_summary
from txsipua.sip.sipfrag import StatusFragment, parse_status_fragment


def test_sipfrag_round_trip_and_errors() -> None:
    """The status line is read; anything else is a ParseError with a status."""
    assert parse_status_fragment(b"SIP/2.0 180 Ringing\r\n") == StatusFragment(180, "Ringing")
    assert parse_status_fragment(b"SIP/2.0 200 OK\r\nContact: <sip:a@192.0.2.1>\r\n\r\n").success
    assert parse_status_fragment(b"SIP/2.0 503\r\n") == StatusFragment(503, "")
    assert StatusFragment.of(100).to_bytes() == b"SIP/2.0 100 Trying\r\n"
    for bad in (b"", b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 99 x", b"\xff\xfe", b"SIP/2.0 200 " + b"x" * 9000):
        with pytest.raises(ParseError):
            parse_status_fragment(bad)
    with pytest.raises(ParseError) as e:
        parse_status_fragment(b"SIP/2.0 200 " + b"x" * 9000)
    assert e.value.status == 413


@given(st.integers(100, 699), st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_sipfrag_round_trips(status: int, reason: str) -> None:
    """Whatever we send reads back the same."""
    frag = StatusFragment(status, reason.strip())
    assert parse_status_fragment(frag.to_bytes()) == frag


@given(st.binary(max_size=200))
def test_body_parsers_raise_only_parse_error(data: bytes) -> None:
    """Any bytes: a value or ParseError, never another exception."""
    for parse in (parse_status_fragment, parse_message_summary, parse_dialog_info,
                  lambda b: digits_of_info("application/dtmf-relay", b), lambda b: digits_of_info("application/dtmf", b)):
        with contextlib.suppress(ParseError):
            parse(data)


def test_event_and_subscription_state() -> None:
    """Event package and id; Subscription-State with reason, expires, retry-after (RFC 6665 §8.2)."""
    assert EventHeader.parse("Refer;id=93809824") == EventHeader("refer", "93809824")
    assert str(EventHeader("refer", "7")) == "refer;id=7"
    assert EventHeader.parse("refer").matches(EventHeader("refer"))
    assert not EventHeader.parse("refer;id=1").matches(EventHeader("refer", "2"))
    s = SubscriptionState.parse("terminated;reason=NoResource;retry-after=30")
    assert (s.state, s.reason, s.retry_after, s.expires) == ("terminated", "noresource", 30, None)
    assert SubscriptionState.parse("active;expires=600").expires == 600
    assert SubscriptionState.parse("future-state").state == "active"  # RFC 6665 §4.1.3
    assert str(SubscriptionState("active", expires=60)) == "active;expires=60"
    for bad in ("", ";expires=1", "active;expires=ten", "active;=x"):
        with pytest.raises(ParseError):
            SubscriptionState.parse(bad)


def test_replaces() -> None:
    """Replaces: the recipient's dialog (RFC 3891 §6.1), as a header and as a Refer-To URI header."""
    r = Replaces.parse("98asjd8@198.51.100.2;to-tag=12345;from-tag=54321;early-only")
    assert r == Replaces("98asjd8@198.51.100.2", "12345", "54321", True)
    assert str(r) == "98asjd8@198.51.100.2;to-tag=12345;from-tag=54321;early-only"
    assert Replaces.for_dialog("c1", local_tag="mine", remote_tag="theirs") == Replaces("c1", "theirs", "mine")
    assert replaces_of_uri_header("c1%3Bto-tag%3Da%3Bfrom-tag%3Db") == Replaces("c1", "a", "b")
    for bad in ("c1;to-tag=a", "c1;from-tag=b", ";to-tag=a;from-tag=b", "c 1;to-tag=a;from-tag=b"):
        with pytest.raises(ParseError):
            Replaces.parse(bad)


def test_message_summary() -> None:
    """RFC 3842 §5: waiting flag, account and counts with urgent counts."""
    body = (b"Messages-Waiting: yes\r\nMessage-Account: sip:alice@example.com\r\n"
            b"Voice-Message: 2/8 (0/2)\r\nFax-Message: 0/1\r\n\r\nTo: <sip:alice@example.com>\r\n")
    s = parse_message_summary(body)
    assert s.waiting and s.account == "sip:alice@example.com"
    assert s.voice == MessageCounts(2, 8, 0, 2)
    assert s.counts["fax"] == MessageCounts(0, 1)
    assert str(s) == "waiting voice=2/8(0/2) fax=0/1"
    assert not parse_message_summary(b"Messages-Waiting: no\r\n").waiting
    for bad in (b"Voice-Message: 1/2\r\n", b"Messages-Waiting: maybe\r\n",
                b"Messages-Waiting: yes\r\nVoice-Message: x/2\r\n", b"junk"):
        with pytest.raises(ParseError):
            parse_message_summary(bad)


DIALOG_INFO = b"""<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:bob@example.com">
  <dialog id="as7d900as8" call-id="a84b4c76e66710" local-tag="1928301774" remote-tag="456887766"
          direction="initiator"><state>confirmed</state><note>x</note></dialog>
  <dialog id="d2"><state>terminated</state></dialog>
</dialog-info>"""


def test_dialog_info() -> None:
    """RFC 4235 §4.1: entity, version, full/partial and the dialogs' states."""
    info = parse_dialog_info(DIALOG_INFO)
    assert (info.entity, info.version, info.full, info.busy) == ("sip:bob@example.com", 3, True, True)
    first, second = info.dialogs
    assert (first.id, first.state, first.call_id, first.local_tag, first.remote_tag, first.direction) == (
        "as7d900as8", "confirmed", "a84b4c76e66710", "1928301774", "456887766", "initiator")
    assert second.state == "terminated"
    idle = parse_dialog_info(DIALOG_INFO.replace(b"confirmed", b"terminated"))
    assert not idle.busy and str(idle) == "sip:bob@example.com idle (terminated,terminated)"


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="x">&b;</dialog-info>',
    b'<?xml version="1.0"?><!DOCTYPE d SYSTEM "file:///etc/passwd">'
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="x"/>',
    b'<dialog-info version="1" state="full" entity="x"/>',  # no namespace
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="v" state="full" entity="x"/>',
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="some" entity="x"/>',
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full"/>',
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="x"><dialog/>'
    b'</dialog-info>',
    b"<dialog-info",
])
def test_dialog_info_refuses_entities_and_bad_documents(body: bytes) -> None:
    """Entities and DOCTYPEs are refused before expansion; bad documents raise ParseError."""
    with pytest.raises(ParseError):
        parse_dialog_info(body)


def test_info_dtmf_bodies() -> None:
    """dtmf-relay's Signal= and dtmf's bare digits; event codes 10-15 are * # A-D."""
    assert digits_of_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n") == "5"
    assert digits_of_info("Application/DTMF-Relay; x=1", b"Signal= 11\r\nDuration=100\r\n") == "#"
    assert digits_of_info("application/dtmf-relay", b"Signal=*\r\n") == "*"
    assert digits_of_info("application/dtmf", b"1\r\n") == "1"
    assert digits_of_info("application/dtmf", b"12") == "12"
    assert digits_of_info("application/dtmf", b"d") == "D"
    with pytest.raises(ParseError) as e:
        digits_of_info("text/plain", b"1")
    assert e.value.status == 415
    for body in (b"Duration=160", b"Signal=16", b"Signal=x", b""):
        with pytest.raises(ParseError):
            digits_of_info("application/dtmf-relay", body)


def test_capabilities_are_one_list() -> None:
    """Allow, Supported, Accept come from one module and list what is implemented."""
    assert capabilities.ALLOW == "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, REFER, NOTIFY, UPDATE, PRACK"
    assert "SUBSCRIBE" not in capabilities.ALLOW_METHODS  # we subscribe, we are no notifier
    assert {"100rel", "timer", "replaces"} == capabilities.SUPPORTED_EXTENSIONS
    assert "message/sipfrag" in capabilities.ACCEPT_TYPES
