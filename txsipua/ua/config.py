"""The settings of a :class:`~txsipua.ua.useragent.UserAgent`, as one frozen value.

Everything that tunes a user agent but is not one of its collaborators (the
reactor, the account, the transport, an authenticator) lives here, so that a
user agent is built as::

    config = Configuration(timers=Timers(t1=0.2), user_agent="bot/1.0", media=False)
    ua = UserAgent(reactor, config, account, UDPTransport(reactor, "192.0.2.10", 5060))

and a variant is ``attrs.evolve(config, socket_buffer=4 << 20)``.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from typing import Any

import attrs

from txsipua.core.context import MAX_CALLS
from txsipua.core.transaction import Timers
from txsipua.media import codecs as _coders
from txsipua.media.offer_answer import G722, OPUS, PCMA, PCMU, Codec

KNOWN_CODECS: tuple[Codec, ...] = (PCMU, PCMA, G722, OPUS)
"""The codecs the RTP stream can send and receive: G.711 (RFC 3551 §4.5.14) always, G.722
(``txsipua[g722]``) and Opus (``txsipua[opus]``, RFC 7587) when their library is installed."""


def _positive_or_none(instance: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{attribute.name} must be a positive number of bytes or None, not {value!r}")


def _to_codecs(value: Iterable[Codec | str] | Codec | str) -> tuple[Codec | Any, ...]:
    """Codec names (``"PCMU"``, case-insensitive) become the known :class:`Codec` values."""
    items = (value,) if isinstance(value, (str, Codec)) else tuple(value)
    out: list[Codec | Any] = []
    for item in items:
        if isinstance(item, str):
            found = [c for c in KNOWN_CODECS if c.name.lower() == item.strip().lower()]
            out.append(found[0] if found else item)
        else:
            out.append(item)
    return tuple(out)


def _codecs(instance: object, attribute: attrs.Attribute[tuple[Codec, ...]], value: tuple[Codec, ...]) -> None:
    if not value:
        raise ValueError("codecs must name at least one codec")
    names = ", ".join(c.name for c in KNOWN_CODECS)
    for codec in value:
        if not isinstance(codec, Codec) or not any(codec.same_codec(k) and codec.payload_type == k.payload_type
                                                    for k in KNOWN_CODECS):
            raise ValueError(f"codecs: {codec!r} is not a known codec (known: {names})")
        coder = _coders.lookup(codec.name, codec.clock_rate)
        if coder is None or not coder.available():
            extra = coder.extra if coder is not None else "?"
            raise ValueError(f"codecs: {codec.name} needs its library: pip install 'txsipua[{extra}]'")
    if len(set(value)) != len(value):
        raise ValueError("codecs must not name a codec twice")


def _timers(instance: object, attribute: attrs.Attribute[Timers], value: Timers) -> None:
    if not isinstance(value, Timers):
        raise ValueError(f"timers must be a Timers value, not {value!r}")


def _bool(instance: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be True or False, not {value!r}")


def _header_text(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"{attribute.name} must be text without CR, LF or control characters, not {value!r}")


def _ip_or_none(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is None or value == "":
        return
    try:
        ipaddress.ip_address(value)
    except (ValueError, TypeError):
        raise ValueError(f"{attribute.name} must be an IP address (or None), not {value!r}") from None


def _port_range(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    ok = (len(value) == 2 and all(isinstance(p, int) and not isinstance(p, bool) for p in value)
          and 1 <= value[0] <= value[1] <= 65535)
    if not ok:
        raise ValueError(f"{attribute.name} must be (first, last) ports with 1 <= first <= last <= 65535, not {value!r}")


def _urn_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.lower().startswith("urn:") or any(c in value for c in '<>" \r\n'):
        raise ValueError(f"{attribute.name} must be a URN such as urn:uuid:..., not {value!r}")


def _seconds(minimum: float, *, strict: bool = False) -> Any:
    def check(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (value > minimum if strict else value >= minimum))
        if not ok:
            bound = f"more than {minimum}" if strict else f"at least {minimum}"
            raise ValueError(f"{attribute.name} must be a finite number of seconds {bound}, not {value!r}")

    return check


def _seconds_or_none(instance: object, attribute: Any, value: Any) -> None:
    if value is not None:
        _seconds(0.0, strict=True)(instance, attribute, value)


def _rtcp_interval(instance: object, attribute: Any, value: Any) -> None:
    if value is not None:
        _seconds(5.0)(instance, attribute, value)


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
        rtp_host: the IP address RTP binds to and SDP advertises; ``None`` (or ``""``) uses
            the SIP transport's bind host (``127.0.0.1`` when that is a
            wildcard such as ``0.0.0.0``).
        codecs: the audio codecs offered and accepted, in order of preference
            (RFC 3264 §5.1): a tuple of :class:`~txsipua.media.offer_answer.Codec`
            from :data:`KNOWN_CODECS` (names such as ``"PCMA"``, ``"G722"``,
            ``"opus"`` are converted).  G.711 is the default; G.722 and Opus
            need their optional library.
        dtmf: offer and accept telephone-event (RFC 4733).
        socket_buffer: kernel receive/send buffer size of the UDP SIP socket,
            bytes (``SO_RCVBUF``/``SO_SNDBUF``), for servers under load;
            ``None`` keeps the OS default.
        grace: how long :meth:`UserAgent.stop` waits for live calls' BYE or
            CANCEL to be confirmed before closing anyway, seconds.
        registration_retry: the base of the back-off of a
            :class:`~txsipua.ua.registration.Registration` whose refresh
            failed, seconds (at least 1; doubled with each consecutive
            failure, see :meth:`~txsipua.ua.registration.Registration.retry_delay`).
        max_calls: calls (either side, from INVITE to their end) held at
            once; a new incoming INVITE past it is answered 503 with
            Retry-After (RFC 3261 §21.5.4), counted in the core's
            ``stats["calls_refused"]`` and logged.  Default 10,000.
        max_call_duration: seconds a confirmed call may last; then the user
            agent sends BYE and the call ends with reason ``"max-duration"``.
            ``None`` (the default): calls last until either side hangs up.
        no_answer_timeout: seconds a call we place may ring unanswered (from
            the INVITE, provisional responses do not extend it); then it is
            cancelled and fails with :class:`~txsipua.errors.CallNotAnswered`
            (the user agent's Timer C, RFC 3261 §16.6 item 11: at least
            3 minutes for proxies; 180 by default).  ``None``: rings until
            the callee or the network ends it.
        glare_retries: how many times a re-INVITE answered 491 (both sides
            re-INVITEd at once) is sent again after the random back-off of
            RFC 3261 §14.1 before it fails (2 by default).
        use_100rel: send 180/183 reliably (RFC 3262, PRACK) to callers that
            support 100rel (default True); to callers that require it always.
        session_expires: the session interval (RFC 4028) our INVITEs ask for
            and we offer as callee, seconds (at least 90), or ``None`` (the
            default: none asked; a peer's Session-Expires is still honoured).
            The refresher refreshes at half the interval; without a refresh
            the call ends with BYE (reason ``"session-expired"``).
        min_se: the smallest session interval we accept, seconds (at least
            90, the default); smaller requests get 422 with Min-SE.
        rtcp_interval: mean seconds between the RTCP reports of a call's
            stream (RFC 3550 §6.2; at least 5), ``None`` for no RTCP.
        rtcp_mux: offer and accept RTP/RTCP multiplexing (``a=rtcp-mux``, RFC 5761).
        media_timeout: seconds without RTP or RTCP from the peer (packets
            failing SRTP do not count) after which a call whose media is
            sendrecv is hung up with BYE (``call.ended`` fires
            ``"media-timeout"``); ``None``: never.  Default 60.
        public_host: the IP address Via and Contact name instead of the
            bind address (a static NAT); ``None``: the bind address, or for
            a wildcard bind the address of the interface routing to the
            next hop (:mod:`txsipua.ua.nat`).
        rtp_public_host: the IP address SDP advertises for RTP (a static
            NAT); ``None``: ``rtp_host``, else the SIP address advertised.
        rtp_ports: ``(first, last)``, the inclusive range RTP sockets bind
            in (even ports tried first); ``None``: any free port.
        symmetric_rtp: send RTP to where the peer's media comes from once
            it arrives (RFC 4961; the SDP address is the start), for peers
            behind a NAT.
        nat_contact: learn our public address from ``received``/``rport``
            of a REGISTER response and re-register once with a Contact
            naming it (RFC 3581); UDP only.
        keepalive_interval: seconds between keep-alives on the flow to the
            registrar while registered (RFC 5626 §4.4: a double CRLF on
            TCP/TLS answered by a CRLF, a CRLF pair or a STUN binding request
            on UDP); ``None`` (the default): none, unless ``outbound`` is on
            (then the registrar's Flow-Timer, else 25 s on UDP, 100 s on
            TCP/TLS).
        keepalive_timeout: seconds a keep-alive waits for its pong (TCP,
            TLS, UDP with STUN) before the flow is declared dead and the
            registration re-established (RFC 5626 §4.4.1: 10 s).
        keepalive_stun: on UDP, send STUN binding requests (RFC 8489)
            instead of CRLF pairs, and treat an unanswered one as a dead flow.
        outbound: SIP Outbound (RFC 5626): REGISTER with ``+sip.instance``
            and ``reg-id`` and ``Supported: outbound, path``; keep-alives on.
        instance_id: the ``+sip.instance`` URN (``urn:uuid:...``); ``None``:
            one made from the injected ids when the user agent starts.
        reg_id: the ``reg-id`` of the user agent's registrations.
        registration_retry_some_flows: the back-off base while another flow
            of the same instance is registered, seconds (RFC 5626 §4.5: 90).
        registration_max_retry: the cap of the registration back-off, seconds
            (RFC 5626 §4.5: 1800).
        idle_silence: while a call's media may be sent (sendrecv or
            sendonly, not held) and nothing plays or is sent, send a
            silence frame every ptime, so the peer keeps getting frames and
            its RTP timeout and NAT bindings stay alive (a listening bot, a
            muted microphone).  Default True; False sends nothing when idle.

    Raises:
        ValueError: naming the field: ``timers`` not a ``Timers``;
            ``user_agent`` with CR, LF or control characters; ``rtp_host``
            not an IP address; ``codecs`` empty, repeated, not in
            :data:`KNOWN_CODECS` or its library missing; ``media``/``dtmf`` not bool;
            ``socket_buffer`` not positive; ``grace`` negative;
            ``registration_retry`` under 1 s; ``max_calls`` negative;
            ``max_call_duration`` or ``no_answer_timeout`` not positive;
            ``glare_retries`` negative; ``use_100rel`` not bool;
            ``session_expires`` or ``min_se`` under 90 s, or
            ``session_expires`` under ``min_se``; ``public_host`` or
            ``rtp_public_host`` not an IP address; ``rtp_ports`` not an
            ordered pair within 1-65535; ``keepalive_interval`` under 1 s;
            ``reg_id`` under 1; ``instance_id`` not a ``urn:``.
    """

    timers: Timers = attrs.field(factory=Timers, validator=_timers)
    user_agent: str = attrs.field(default="txsipua/0.1", validator=_header_text)
    media: bool = attrs.field(default=True, validator=_bool)
    rtp_host: str | None = attrs.field(default=None, validator=_ip_or_none)
    codecs: tuple[Codec, ...] = attrs.field(default=(PCMU, PCMA), converter=_to_codecs, validator=_codecs)
    dtmf: bool = attrs.field(default=True, validator=_bool)
    socket_buffer: int | None = attrs.field(default=None, validator=_positive_or_none)
    grace: float = attrs.field(default=8.0, validator=_seconds(0.0))
    registration_retry: float = attrs.field(default=30.0, validator=_seconds(1.0))
    max_calls: int = attrs.field(default=MAX_CALLS, validator=attrs.validators.ge(0))
    max_call_duration: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))
    sips_contact: bool = attrs.field(default=True, validator=_bool)
    """Over TLS, our Contact is ``sips:user@host:port`` (True, the default) or
    ``sip:user@host:port;transport=tls`` (False: reachable over TLS for
    requests that are not SIPS); a request whose Request-URI or first Route is
    ``sips:`` always gets a ``sips:`` Contact (RFC 3261 §8.1.1.8, RFC 5630 §4.1)."""
    no_answer_timeout: float | None = attrs.field(default=180.0, validator=_seconds_or_none)
    glare_retries: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    use_100rel: bool = attrs.field(default=True, validator=_bool)
    session_expires: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        [attrs.validators.instance_of(int), attrs.validators.ge(90)]))
    min_se: int = attrs.field(default=90, validator=[attrs.validators.instance_of(int), attrs.validators.ge(90)])
    rtcp_interval: float | None = attrs.field(default=5.0, validator=_rtcp_interval)
    rtcp_mux: bool = attrs.field(default=True, validator=_bool)
    media_timeout: float | None = attrs.field(default=60.0, validator=_seconds_or_none)
    public_host: str | None = attrs.field(default=None, validator=_ip_or_none)
    rtp_public_host: str | None = attrs.field(default=None, validator=_ip_or_none)
    rtp_ports: tuple[int, int] | None = attrs.field(default=None, converter=attrs.converters.optional(tuple),
                                                    validator=_port_range)
    symmetric_rtp: bool = attrs.field(default=False, validator=_bool)
    nat_contact: bool = attrs.field(default=True, validator=_bool)
    keepalive_interval: float | None = attrs.field(default=None, validator=attrs.validators.optional(_seconds(1.0)))
    keepalive_timeout: float = attrs.field(default=10.0, validator=_seconds(0.0, strict=True))
    keepalive_stun: bool = attrs.field(default=False, validator=_bool)
    outbound: bool = attrs.field(default=False, validator=_bool)
    instance_id: str | None = attrs.field(default=None, validator=_urn_or_none)
    reg_id: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    registration_retry_some_flows: float = attrs.field(default=90.0, validator=_seconds(1.0))
    registration_max_retry: float = attrs.field(default=1800.0, validator=_seconds(1.0))
    idle_silence: bool = attrs.field(default=True, validator=_bool)

    @session_expires.validator
    def _check_session_expires(self, attribute: object, value: int | None) -> None:
        if value is not None and value < self.min_se:
            raise ValueError(f"session_expires ({value} s) must be at least min_se ({self.min_se} s)")

    def media_host(self, bind_host: str) -> str:
        """The RTP host for a user agent whose SIP transport binds ``bind_host``.

        Returns:
            :attr:`rtp_host` when set; else ``bind_host``, or ``127.0.0.1``
            when ``bind_host`` is a wildcard (``""``, ``0.0.0.0``, ``::``),
            which SDP cannot advertise (RFC 4566 §5.7).
        """
        if self.rtp_host:
            return self.rtp_host
        return bind_host if bind_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
