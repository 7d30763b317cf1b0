"""The settings of a :class:`~txsipua.ua.useragent.UserAgent`, as one frozen value.

Everything that tunes a user agent but is not one of its collaborators (the
reactor, the account, the transport, an authenticator) lives here, so that a
user agent is built as::

    config = Configuration(timers=Timers(t1=0.2), user_agent="bot/1.0", media=False)
    ua = UserAgent(reactor, config, account, UDPTransport(reactor, "192.0.2.10", 5060))

and a variant is ``attrs.evolve(config, socket_buffer=4 << 20)``.
"""

from __future__ import annotations

import attrs

from txsipua.core.context import MAX_CALLS
from txsipua.core.transaction import Timers
from txsipua.media.offer_answer import PCMA, PCMU, Codec


def _positive_or_none(instance: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be a positive number of bytes or None, not {value!r}")


def _codecs(instance: object, attribute: attrs.Attribute[tuple[Codec, ...]], value: tuple[Codec, ...]) -> None:
    if not value:
        raise ValueError("codecs must name at least one codec")


@attrs.frozen
class Configuration:
    """How a user agent behaves: timers, identification, media and socket settings.

    Attributes:
        timers: the RFC 3261 §17.1.1.1 base timers (T1, T2, T4 and Timer D),
            a :class:`~txsipua.core.transaction.Timers`.
        user_agent: the User-Agent (requests) and Server (responses) header
            value (RFC 3261 §20.41, §20.35).
        media: create an RTP stream and SDP (RFC 3264) for every call; when
            False calls carry no body.
        rtp_host: the address RTP binds to and SDP advertises; ``None`` uses
            the SIP transport's bind host (``127.0.0.1`` when that is a
            wildcard such as ``0.0.0.0``).
        codecs: the audio codecs offered and accepted, in order of preference
            (RFC 3264 §5.1).
        dtmf: offer and accept telephone-event (RFC 4733).
        socket_buffer: kernel receive/send buffer size of the UDP SIP socket,
            bytes (``SO_RCVBUF``/``SO_SNDBUF``), for servers under load;
            ``None`` keeps the OS default.
        grace: how long :meth:`UserAgent.stop` waits for live calls' BYE or
            CANCEL to be confirmed before closing anyway, seconds.
        registration_retry: how long a :class:`~txsipua.ua.registration.Registration`
            whose refresh failed waits before trying again, seconds.
        max_calls: calls (either side, from INVITE to their end) held at
            once; a new incoming INVITE past it is answered 503 with
            Retry-After (RFC 3261 §21.5.4), counted in the core's
            ``stats["calls_refused"]`` and logged.  Default 10,000.
        max_call_duration: seconds a confirmed call may last; then the user
            agent sends BYE and the call ends with reason ``"max-duration"``.
            ``None`` (the default): calls last until either side hangs up.

    Raises:
        ValueError: ``socket_buffer`` not positive, ``grace`` or
            ``registration_retry`` negative, ``max_calls`` negative,
            ``max_call_duration`` not positive, or no codec.
    """

    timers: Timers = attrs.field(factory=Timers)
    user_agent: str = "txsipua/0.1"
    media: bool = True
    rtp_host: str | None = None
    codecs: tuple[Codec, ...] = attrs.field(default=(PCMU, PCMA), converter=tuple, validator=_codecs)
    dtmf: bool = True
    socket_buffer: int | None = attrs.field(default=None, validator=_positive_or_none)
    grace: float = attrs.field(default=8.0, validator=attrs.validators.ge(0))
    registration_retry: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    max_calls: int = attrs.field(default=MAX_CALLS, validator=attrs.validators.ge(0))
    max_call_duration: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))

    def media_host(self, bind_host: str) -> str:
        """The RTP host for a user agent whose SIP transport binds ``bind_host``.

        Returns:
            :attr:`rtp_host` when set; else ``bind_host``, or ``127.0.0.1``
            when ``bind_host`` is a wildcard (``""``, ``0.0.0.0``, ``::``),
            which SDP cannot advertise (RFC 4566 §5.7).
        """
        if self.rtp_host is not None:
            return self.rtp_host
        return bind_host if bind_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
