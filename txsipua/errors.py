"""One exception hierarchy for txsipua.

Every exception class of the package is defined here (the modules that raise
them re-export their own).  Every error about SIP, media or configuration
derives from :class:`SIPError`; errors that mirror a builtin category also
derive from it (a :class:`ParseError` is a :class:`ValueError`, a
:class:`TransactionTimeout` is a :class:`TimeoutError`) so that callers may
catch either.  Two are plain local errors: :class:`HtdigestFormatError` (a
:class:`ValueError` about a password file) and :class:`UsageError` (a
command-line mistake, exit status 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from txsipua.sip.message import Response


class SIPError(Exception):
    """Root of every txsipua error."""


class ParseError(SIPError, ValueError):
    """Bytes or text that are not valid SIP (RFC 3261 §25).

    Attributes:
        status: the SIP status a UAS answers a request with this defect
            (400 Bad Request by default; 505 for an unsupported SIP version,
            416 for an unsupported URI scheme, 413 for an oversized message).
        detail: a short, human-readable description naming the defect.
    """

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class LocalProtocolError(SIPError):
    """The caller asked txsipua to do something RFC 3261 forbids."""


class RemoteProtocolError(SIPError):
    """The peer broke the protocol.

    Attributes:
        status: the status to answer with, when a response is due (e.g. 400).
    """

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class TransactionTimeout(SIPError, TimeoutError):
    """A client transaction ended without a final response (RFC 3261 §17.1).

    Attributes:
        timer: the RFC 3261 timer that fired: ``"B"`` (INVITE) or ``"F"``
            (non-INVITE).
        method: the method of the request that timed out.
    """

    def __init__(self, timer: str, method: str = "") -> None:
        super().__init__(f"no final response to {method or 'the request'} (timer {timer} fired)")
        self.timer = timer
        self.method = method


class TransportError(SIPError):
    """A message could not be sent (RFC 3261 §18.4): socket error, connection refused."""


class ResolutionError(SIPError):
    """A SIP URI could not be resolved to a destination (RFC 3263)."""


class AuthenticationError(SIPError):
    """Digest authentication failed (RFC 3261 §22).

    Raised when a request is rejected again after it was retried with
    credentials, when no credentials exist for any challenged realm, when only
    unsupported algorithms are offered, or when a challenge is refused by the
    digest-leak guard.

    Attributes:
        status: 401 or 407 (0 when no response is involved).
        realms: the realms challenged.
        algorithms: the algorithms challenged.
        account_realms: the realms the account has credentials for.
        reason: why authentication failed, in words.
        response: the final response, if any.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int = 0,
        realms: tuple[str, ...] = (),
        algorithms: tuple[str, ...] = (),
        account_realms: tuple[str, ...] = (),
        response: Response | None = None,
    ) -> None:
        self.reason = reason
        self.status = status
        self.realms = tuple(realms)
        self.algorithms = tuple(algorithms)
        self.account_realms = tuple(account_realms)
        self.response = response
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [self.reason]
        if self.status:
            parts.insert(0, f"{self.status}")
        if self.realms:
            parts.append("challenged realm(s): " + ", ".join(repr(r) for r in self.realms))
        if self.algorithms:
            parts.append("algorithm(s): " + ", ".join(self.algorithms))
        if self.realms or self.account_realms:
            have = ", ".join(repr(r) for r in self.account_realms) or "none"
            parts.append(f"account has credentials for: {have}")
        hint = self._hint()
        if hint:
            parts.append(hint)
        return "; ".join(parts)

    def _hint(self) -> str:
        missing = [r for r in self.realms if r not in self.account_realms]
        if missing and self.account_realms:
            return (
                f"hint: the server's realm is {missing[0]!r}; your account has credentials for "
                + ", ".join(repr(r) for r in self.account_realms)
            )
        if missing:
            return f"hint: add a [[credentials]] table with realm = {missing[0]!r}"
        if self.realms and self.status:
            return "hint: check the username and password for that realm"
        return ""


class SIPStatusError(SIPError):
    """A request ended with a final non-2xx response.

    Attributes:
        response: the final :class:`~txsipua.sip.message.Response`.
        status: its status code.
        reason: its reason phrase.
    """

    def __init__(self, response: Any, what: str = "request") -> None:
        self.response = response
        self.status: int = response.status
        self.reason: str = response.reason
        super().__init__(f"{what} failed: {self.status} {self.reason}")


class RegistrationFailed(SIPStatusError):
    """A REGISTER ended with a final non-2xx response (RFC 3261 §10.2)."""


class CallFailed(SIPStatusError):
    """An INVITE ended with a final non-2xx response (RFC 3261 §13.2.2.3)."""


class CallNotAnswered(CallFailed):
    """Nobody answered within the no-answer timeout: we cancelled the call (RFC 3261 §9.1, Timer C).

    Attributes:
        timeout: the timeout, seconds.
        response: a 408 Request Timeout standing for the answer that never came.
    """

    def __init__(self, response: Any, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(response, "call")
        self.args = (f"call not answered within {timeout:g} s (no_answer_timeout): cancelled",)


class ReinviteFailed(SIPStatusError):
    """A re-INVITE (hold, resume, codec change) ended with a final non-2xx response (RFC 3261 §14.1).

    The session is as it was before the re-INVITE (RFC 3264 §8).  A 491
    (glare) is reported only once the retries after the §14.1 back-off are
    spent.
    """


class TransferFailed(SIPStatusError):
    """A transfer we asked for failed (RFC 3515): the REFER got a final non-2xx, or the
    final NOTIFY's message/sipfrag reported a non-2xx status (``response`` is then the
    :class:`~txsipua.sip.sipfrag.StatusFragment`).  ``status`` 0 means no final status
    came (the subscription ended or expired first); the message then says so
    (``transfer failed: no final status: <reason>``) instead of printing a 0."""

    def __init__(self, response: Any, what: str = "request") -> None:
        super().__init__(response, what)
        if self.status == 0:
            self.args = (f"{what} failed: no final status: {self.reason}",)


class SubscriptionFailed(SIPStatusError):
    """A SUBSCRIBE ended with a final non-2xx response (RFC 6665 §4.1.2.1)."""


# txsipua.auth.client
class DigestAuthenticationError(AuthenticationError):
    """An :class:`AuthenticationError` from :meth:`txsipua.auth.client.AuthAttempt.respond_to`.

    Attributes:
        kind: what went wrong, for programs: ``"rejected"`` (the credentials
            were refused), ``"no-credentials"``, ``"unsupported"`` (only
            unsupported algorithms or qop), ``"guard"`` (the digest-leak guard
            refused the hop), ``"stale-loop"``, ``"rounds"`` (too many rounds),
            ``"no-challenge"`` (no usable Digest challenge) or ``"method"``
            (a CANCEL or ACK is never retried).
        hint: the likely fix, in words (also at the end of the message).
    """

    def __init__(self, reason: str, *, kind: str, hint: str | None = None, **kwargs: Any) -> None:
        self.kind = kind
        self._fixed_hint = hint
        super().__init__(reason, **kwargs)
        self.hint = self._hint()

    def _hint(self) -> str:
        if self._fixed_hint is not None:
            return self._fixed_hint
        return super()._hint()


# txsipua.auth.credentials and txsipua.ua.account
class CredentialsConfigError(SIPError, ValueError):
    """A credential or a ``[[credentials]]`` table is invalid (names the table and the defect)."""


class AccountError(CredentialsConfigError):
    """An account file or value is invalid (names the key and the problem)."""


# txsipua.ua.cred
class HtdigestFormatError(SIPError, ValueError):
    """A line of an htdigest file is malformed (the message names file and line)."""


# txsipua.media.offer_answer
class OfferAnswerError(SIPError):
    """An offer or answer cannot be used (RFC 3264).

    Attributes:
        status: the SIP status a UAS answers the offering request with
            (488 Not Acceptable Here).
        detail: what is wrong, in words.
    """

    def __init__(self, detail: str, status: int = 488) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class NoCommonCodec(OfferAnswerError):
    """No offered audio stream has a codec we support (RFC 3264 §6): answer 488."""


class MediaNegotiationFailed(SIPError):
    """The peer's SDP in an answered call cannot be used: the call was hung up (RFC 3261 §13.2.2.4, §13.3.1.4).

    For a call with media (``Configuration(media=True)``): the 2xx's answer
    to our offer, the 2xx's offer to our offerless INVITE (our ACK then
    rejects every stream, RFC 3264 §6), or the ACK's answer to the offer in
    our 2xx is garbage or has nothing usable.  The 2xx was ACKed and a BYE
    sent at once; the call's ``ended`` fires with ``"media"``.

    Attributes:
        detail: what is wrong with the SDP, in words.
        message: the 2xx (caller) or the ACK (callee) that carried it.
    """

    def __init__(self, detail: str, message: Any = None) -> None:
        super().__init__(f"media negotiation failed: {detail}")
        self.detail = detail
        self.message = message


# txsipua.media.wav
class WavError(SIPError, ValueError):
    """A file that is not a WAV file this module can read, or a bad argument."""


# txsipua.net.media_limits
class MediaUnavailable(LocalProtocolError):
    """No media stream can be opened now: the stream cap is reached or no socket is left.

    An incoming call is then declined with :attr:`status` and :attr:`headers`.

    Attributes:
        status: 503 (Service Unavailable, RFC 3261 §21.5.4).
        headers: ``(("Retry-After", seconds),)`` for the response (§20.33).
        retry_after: the seconds suggested in Retry-After.
    """

    status = 503

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers: tuple[tuple[str, str], ...] = (("Retry-After", str(retry_after)),)


# txsipua.media.audio
class AudioError(SIPError, ValueError):
    """Audio that cannot be handled: a bad rate or frame, or resampling without ``soxr``."""


# txsipua.media.codecs
class CodecUnavailable(SIPError, RuntimeError):
    """The library a codec needs is not installed; the message names the extra to install."""


# txsipua.media.srtp
class SrtpError(SIPError, ValueError):
    """A packet failed SRTP/SRTCP authentication or decryption (RFC 3711 §3.3), or could not be protected."""


class SrtpUnavailable(SIPError, RuntimeError):
    """pylibsrtp is not installed: ``pip install 'txsipua[srtp]'`` (and Debian's libsrtp2-1 if its wheel needs it)."""


# txsipua.cli
class UsageError(Exception):
    """A command-line value is wrong (exit status 2)."""
