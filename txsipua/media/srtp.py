"""SRTP and SRTCP (RFC 3711) for one stream through libsrtp (``pylibsrtp``, the ``[srtp]`` extra).

A :class:`SrtpTransform` holds two libsrtp sessions made from the keys a
call negotiated (:class:`~txsipua.media.sdes.SrtpParams`): the outbound one
with our key (any SSRC we send), the inbound one with the peer's (any SSRC
it sends).  :meth:`~SrtpTransform.protect` and
:meth:`~SrtpTransform.protect_rtcp` encrypt and authenticate what we send;
:meth:`~SrtpTransform.unprotect` and :meth:`~SrtpTransform.unprotect_rtcp`
check and decrypt what arrives and raise :class:`SrtpError` for a packet
that fails (a wrong key, a replay, tampering): the stream drops it and
counts it.  ``pylibsrtp`` is imported when the first transform is made;
:func:`available` says whether that can work.  Pure: no clock, no randomness.
"""

from __future__ import annotations

import importlib
from typing import Any

from txsipua.errors import SrtpError, SrtpUnavailable
from txsipua.media.sdes import SrtpParams

__all__ = ["SrtpError", "SrtpTransform", "SrtpUnavailable", "available"]

_PROFILES = {"AES_CM_128_HMAC_SHA1_80": "SRTP_PROFILE_AES128_CM_SHA1_80",
             "AES_CM_128_HMAC_SHA1_32": "SRTP_PROFILE_AES128_CM_SHA1_32"}


def _module() -> Any:
    try:
        return importlib.import_module("pylibsrtp")
    except Exception as e:  # ImportError, or OSError when libsrtp cannot be loaded
        raise SrtpUnavailable(f"SRTP needs pylibsrtp: pip install 'txsipua[srtp]' ({e})") from None


def available() -> bool:
    """True when pylibsrtp can be imported."""
    try:
        _module()
    except SrtpUnavailable:
        return False
    return True


class SrtpTransform:
    """Protect what one stream sends and unprotect what it receives (RFC 3711).

    Args:
        params: the negotiated suite, our key and the peer's.

    Raises:
        SrtpUnavailable: pylibsrtp is missing.
        ValueError: a suite libsrtp is not given here, or a key of the wrong length.
    """

    def __init__(self, params: SrtpParams) -> None:
        module = _module()
        if params.suite not in _PROFILES:
            raise ValueError(f"unsupported SRTP suite {params.suite!r}")
        profile = getattr(module.Policy, _PROFILES[params.suite])
        self.suite = params.suite
        self._error = module.Error
        try:
            self._tx = module.Session(module.Policy(key=params.local_key, ssrc_type=module.Policy.SSRC_ANY_OUTBOUND,
                                                    srtp_profile=profile))
            self._rx = module.Session(module.Policy(key=params.remote_key, ssrc_type=module.Policy.SSRC_ANY_INBOUND,
                                                    srtp_profile=profile))
        except module.Error as e:
            raise ValueError(f"cannot make SRTP sessions: {e}") from None

    def protect(self, rtp: bytes) -> bytes:
        """Encrypt and authenticate one RTP packet.

        Raises:
            SrtpError: libsrtp refused it (e.g. not RTP, or over 1500 octets).
        """
        try:
            return bytes(self._tx.protect(rtp))
        except (self._error, ValueError) as e:  # ValueError: over libsrtp's 1500 octets
            raise SrtpError(f"cannot protect an RTP packet: {e}") from None

    def unprotect(self, srtp: bytes) -> bytes:
        """Check and decrypt one SRTP packet.

        Raises:
            SrtpError: authentication failed (a wrong key, tampering), a replay,
                not SRTP, or over 1500 octets (libsrtp's limit).
        """
        try:
            return bytes(self._rx.unprotect(srtp))
        except (self._error, ValueError) as e:  # ValueError: over libsrtp's 1500 octets
            raise SrtpError(f"SRTP packet rejected: {e}") from None

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """Encrypt and authenticate one compound RTCP packet (SRTCP).

        Raises:
            SrtpError: libsrtp refused it.
        """
        try:
            return bytes(self._tx.protect_rtcp(rtcp))
        except (self._error, ValueError) as e:  # ValueError: over libsrtp's 1500 octets
            raise SrtpError(f"cannot protect an RTCP packet: {e}") from None

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """Check and decrypt one SRTCP packet.

        Raises:
            SrtpError: authentication failed, a replay, not SRTCP, or over 1500 octets.
        """
        try:
            return bytes(self._rx.unprotect_rtcp(srtcp))
        except (self._error, ValueError) as e:  # ValueError: over libsrtp's 1500 octets
            raise SrtpError(f"SRTCP packet rejected: {e}") from None
