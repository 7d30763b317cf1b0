"""SDES keys for SRTP in SDP: the ``a=crypto`` attribute (RFC 4568) and what a call negotiated.

Anatomy of the attribute (RFC 4568 §9.1; one key, no lifetime or MKI is
what we write; a lifetime and an MKI are accepted when reading)::

    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4
             | |                              |                                        |    |
           tag suite                        base64(master key 16 + salt 14 octets)  life  MKI

The offerer lists one attribute per suite it accepts; the answerer picks
one, answers with the same tag and suite and its own key (RFC 4568 §7.1).
Each side sends with its own key and decrypts with the peer's.  Pure: keys
come from the caller (``secrets.token_bytes(30)`` in the ua layer).
"""

from __future__ import annotations

import base64
import binascii
import re

import attrs

from txsipua.errors import ParseError

__all__ = ["KEY_LENGTH", "SUITES", "CryptoAttribute", "SrtpParams"]

#: Suites we offer and accept, in order of preference (RFC 4568 §6.2).
SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
#: Master key (16) plus master salt (14) octets for the AES_CM_128 suites.
KEY_LENGTH = 30

# crypto-attribute = tag 1*WSP crypto-suite 1*WSP key-params *(1*WSP session-param)   (RFC 4568 §9.1)
# key-param = "inline:" key-salt ["|" lifetime] ["|" mki-value ":" mki-length]
_CRYPTO = re.compile(r"^(\d{1,9})\s+([A-Za-z0-9_]+)\s+inline:([A-Za-z0-9+/=]+)(\|[^\s|]+)?(\|\d+:\d+)?(\s.*)?$")


@attrs.frozen
class CryptoAttribute:
    """One ``a=crypto`` line (RFC 4568 §9.1).

    Attributes:
        tag: the decimal tag that pairs an answer with its offer line.
        suite: the crypto suite, e.g. ``"AES_CM_128_HMAC_SHA1_80"``.
        key: the master key and salt (30 octets for the AES_CM_128 suites).
    """

    tag: int
    suite: str
    key: bytes = attrs.field(repr=False)

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """Parse the attribute's value (after ``a=crypto:``).

        Raises:
            ParseError: (status 488) not the RFC 4568 grammar, a key that is
                not base64, or the wrong key length for a suite we know.
        """
        match = _CRYPTO.match(value.strip())
        if match is None:
            raise ParseError(f"bad a=crypto attribute {value!r}", status=488)
        tag, suite, key_text = int(match.group(1)), match.group(2), match.group(3)
        try:
            key = base64.b64decode(key_text + "=" * (-len(key_text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ParseError(f"a=crypto key is not base64: {value!r}", status=488) from None
        if suite in SUITES and len(key) != KEY_LENGTH:
            raise ParseError(f"a=crypto {suite} key must be {KEY_LENGTH} octets, not {len(key)}", status=488)
        return cls(tag, suite, key)

    def to_value(self) -> str:
        """The attribute value, e.g. ``"1 AES_CM_128_HMAC_SHA1_80 inline:..."``."""
        return f"{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode('ascii')}"


@attrs.frozen
class SrtpParams:
    """The SRTP a call negotiated (RFC 4568 §6.1).

    Attributes:
        suite: the crypto suite both sides use.
        local_key: our master key and salt: we protect what we send with it.
        remote_key: the peer's: we unprotect what we receive with it.
    """

    suite: str
    local_key: bytes = attrs.field(repr=False)
    remote_key: bytes = attrs.field(repr=False)
