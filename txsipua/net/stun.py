"""STUN Binding requests and responses (RFC 8489), enough for keep-alives and our public address.

Theory of operation: a STUN Binding request sent from the SIP (or RTP) socket
to a server (a registrar that speaks STUN on its SIP port, RFC 5626 §4.4.2,
or a STUN server) keeps a NAT binding open, proves the flow alive when the
answer comes back, and tells us our address as the server saw it
(XOR-MAPPED-ADDRESS, RFC 8489 §14.2).  This module is the codec only:
:func:`binding_request` builds the 20-byte request (with a FINGERPRINT,
§14.7, so that a server multiplexing STUN with SIP tells them apart), and
:func:`parse_binding_response` reads a success response, checking the magic
cookie, the length, and the FINGERPRINT when present.  MESSAGE-INTEGRITY is
not checked (keep-alives need no credentials; an address learned this way
is only as trustworthy as the path, as with RFC 3581).

:func:`is_stun` tells a STUN message from SIP on a shared socket: the first
two bits of a STUN message are zero (§6), while a SIP message starts with a
letter.

Why not a library: the STUN clients on PyPI (``aiostun``, ``pystun3``...)
own their sockets and run on asyncio or block; ours must ride on the socket
the SIP driver already holds, inside Twisted's reactor, so only a codec is
needed, and a codec of this size is easier to check against the RFC 5769
test vectors (see ``tests/net/test_stun.py``) than a dependency.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib

import attrs

from txsipua.errors import ParseError

MAGIC_COOKIE = 0x2112A442
"""RFC 8489 §5: the fixed value in bytes 4-7 of every message."""

BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

MAPPED_ADDRESS = 0x0001
XOR_MAPPED_ADDRESS = 0x0020
FINGERPRINT = 0x8028
_FINGERPRINT_XOR = 0x5354554E  # "STUN" (§14.7)
_HEADER = struct.Struct("!HHI12s")


@attrs.frozen
class BindingResponse:
    """A STUN Binding success response.

    Attributes:
        transaction_id: the 12-byte transaction id it answers.
        mapped: our ``(host, port)`` as the server saw it, or ``None`` when
            the response carries neither XOR-MAPPED-ADDRESS nor MAPPED-ADDRESS.
    """

    transaction_id: bytes
    mapped: tuple[str, int] | None


def is_stun(data: bytes) -> bool:
    """True when ``data`` looks like a STUN message (first two bits 0, magic cookie, §6)."""
    return len(data) >= 20 and data[0] < 0x40 and data[4:8] == b"\x21\x12\xa4\x42"


def _fingerprint(message: bytes) -> int:
    return (zlib.crc32(message) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF


def binding_request(transaction_id: bytes, *, fingerprint: bool = True) -> bytes:
    """A Binding request (RFC 8489 §6), with a FINGERPRINT attribute unless told not to.

    Args:
        transaction_id: 12 random bytes (§6: cryptographically random).

    Raises:
        ValueError: ``transaction_id`` is not 12 bytes long.
    """
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id is 12 bytes")
    if not fingerprint:
        return _HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, transaction_id)
    head = _HEADER.pack(BINDING_REQUEST, 8, MAGIC_COOKIE, transaction_id)
    return head + struct.pack("!HHI", FINGERPRINT, 4, _fingerprint(head))


def parse_binding_response(data: bytes) -> BindingResponse:
    """Read a Binding success response (RFC 8489 §6.3.3, §14.1, §14.2).

    Raises:
        ParseError: not a STUN message, not a Binding success response, a
            length that does not match, a truncated attribute, or a wrong
            FINGERPRINT.
    """
    if not is_stun(data):
        raise ParseError("not a STUN message")
    kind, length, _cookie, tid = _HEADER.unpack_from(data)
    if kind != BINDING_SUCCESS:
        raise ParseError(f"not a STUN Binding success response (type 0x{kind:04x})")
    if length % 4 or 20 + length != len(data):
        raise ParseError("STUN message length does not match")
    mapped: tuple[str, int] | None = None
    xor_mapped: tuple[str, int] | None = None
    offset = 20
    while offset < len(data):
        if offset + 4 > len(data):
            raise ParseError("truncated STUN attribute header")
        atype, alen = struct.unpack_from("!HH", data, offset)
        value = data[offset + 4:offset + 4 + alen]
        if len(value) != alen:
            raise ParseError("truncated STUN attribute")
        if atype == FINGERPRINT:
            if alen != 4 or struct.unpack("!I", value)[0] != _fingerprint(data[:offset]):
                raise ParseError("wrong STUN FINGERPRINT")
        elif atype == XOR_MAPPED_ADDRESS:
            xor_mapped = _address(value, tid, xor=True)
        elif atype == MAPPED_ADDRESS:
            mapped = _address(value, tid, xor=False)
        offset += 4 + alen + (-alen % 4)
    return BindingResponse(tid, xor_mapped or mapped)


def _address(value: bytes, tid: bytes, *, xor: bool) -> tuple[str, int]:
    """An (XOR-)MAPPED-ADDRESS value (§14.1, §14.2)."""
    if len(value) < 4:
        raise ParseError("truncated STUN address")
    family, port = value[1], struct.unpack_from("!H", value, 2)[0]
    raw = value[4:]
    if (family, len(raw)) not in ((0x01, 4), (0x02, 16)):
        raise ParseError("bad STUN address family or length")
    if xor:
        port ^= MAGIC_COOKIE >> 16
        mask = struct.pack("!I", MAGIC_COOKIE) + tid
        raw = bytes(a ^ b for a, b in zip(raw, mask[:len(raw)], strict=True))
    return (str(ipaddress.ip_address(raw)), port)
