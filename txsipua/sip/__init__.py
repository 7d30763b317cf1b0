"""The SIP wire format (RFC 3261 §7, §19, §20, §25): pure, no I/O."""

from txsipua.sip.message import Headers, Message, Request, Response, parse_message, reason_phrase
from txsipua.sip.uri import AbsoluteURI, SipURI
from txsipua.sip.values import CSeq, NameAddr, Via

__all__ = [
    "AbsoluteURI",
    "CSeq",
    "Headers",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "SipURI",
    "Via",
    "parse_message",
    "reason_phrase",
]
