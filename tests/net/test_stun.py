"""The STUN Binding codec (RFC 8489) against the RFC 5769 test vectors."""

from __future__ import annotations

import struct
import zlib

import pytest

from txsipua.errors import ParseError
from txsipua.net import stun

# RFC 5769 §2.2: sample IPv4 response (SOFTWARE "test vector ", XOR-MAPPED-ADDRESS
# 192.0.2.1:32853, MESSAGE-INTEGRITY, FINGERPRINT)
RFC5769_IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)


def test_rfc5769_ipv4_response() -> None:
    """The mapped address and transaction id of the RFC 5769 §2.2 vector; its FINGERPRINT verifies."""
    r = stun.parse_binding_response(RFC5769_IPV4_RESPONSE)
    assert r.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert r.mapped == ("192.0.2.1", 32853)


def test_a_wrong_fingerprint_is_refused() -> None:
    bad = RFC5769_IPV4_RESPONSE[:-1] + b"\x97"
    with pytest.raises(ParseError, match="FINGERPRINT"):
        stun.parse_binding_response(bad)


def test_binding_request_layout_and_fingerprint() -> None:
    """RFC 8489 §5-6: type 0x0001, length 8 (the FINGERPRINT), the magic cookie, the id; CRC-32 xor 'STUN'."""
    tid = bytes(range(12))
    req = stun.binding_request(tid)
    kind, length, cookie, got = struct.unpack("!HHI12s", req[:20])
    assert (kind, length, cookie, got) == (0x0001, 8, 0x2112A442, tid)
    atype, alen, crc = struct.unpack("!HHI", req[20:])
    assert (atype, alen) == (0x8028, 4) and crc == zlib.crc32(req[:20]) ^ 0x5354554E
    assert stun.binding_request(tid, fingerprint=False) == req[:2] + b"\x00\x00" + req[4:20]
    assert stun.is_stun(req) and not stun.is_stun(b"REGISTER sip:x SIP/2.0\r\n\r\n")
    with pytest.raises(ValueError):
        stun.binding_request(b"short")


def test_ipv6_xor_mapped_address_round_trip() -> None:
    """An IPv6 XOR-MAPPED-ADDRESS is xored with the cookie and the transaction id (§14.2)."""
    import ipaddress

    tid = bytes.fromhex("b7e7a701bc34d686fa87dfae")
    raw = ipaddress.ip_address("2001:db8:1234:5678:11:2233:4455:6677").packed
    mask = struct.pack("!I", 0x2112A442) + tid
    value = struct.pack("!BBH", 0, 2, 32853 ^ 0x2112) + bytes(a ^ b for a, b in zip(raw, mask, strict=True))
    msg = struct.pack("!HHI12s", 0x0101, 4 + len(value), 0x2112A442, tid) + struct.pack("!HH", 0x20, 20) + value
    assert stun.parse_binding_response(msg).mapped == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)


@pytest.mark.parametrize("data", [
    b"", b"\x01\x01\x00\x00", RFC5769_IPV4_RESPONSE[:-3],
    b"\x00\x01" + RFC5769_IPV4_RESPONSE[2:],  # a request, not a response
    RFC5769_IPV4_RESPONSE[:2] + b"\x00\x40" + RFC5769_IPV4_RESPONSE[4:],  # length too long
    bytes.fromhex("010100082112a442") + bytes(12) + bytes.fromhex("00200008000f0000"),  # bad family
])
def test_broken_responses_raise_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        stun.parse_binding_response(data)
