"""The SDP offer/answer model (RFC 3264) for one audio stream.

Theory of operation:

- The offerer lists the codecs it can receive, in order of preference, each
  with the payload type it expects to receive (:func:`make_offer`).
- The answerer keeps one ``m=`` line per offered line, in the same order
  (RFC 3264 §6): the first offered RTP/AVP audio stream with a codec in common
  is accepted, every other line is rejected with port 0.  The accepted line
  lists the common codecs with the *offer's* payload type numbers (§6.1), in
  the offer's order of preference (or ours, with ``prefer="local"``), plus
  telephone-event (RFC 4733) when both sides have it, at the clock rate of
  each common codec (an offer lists one telephone-event per clock rate of its
  codecs: ``/8000`` for G.711 and G.722, ``/48000`` for Opus).  No common codec at all
  raises :class:`NoCommonCodec`, which a UAS answers with 488 (§6).
- Directions are mirrored (§6.1): sendonly is answered recvonly, recvonly
  sendonly, inactive inactive; an answer that puts the offerer on hold is
  sendonly (or inactive).
- Either side then calls :func:`negotiate` with its own and the peer's
  description.  The rule is symmetric: we send with the first codec of the
  peer's description that is also in ours (§6.1 for the answerer, §7 for the
  offerer), using the peer's payload type number.
- Hold and resume are re-offers with a new ``sess-version`` (§8, §8.4):
  :func:`hold_offer`, :func:`resume_offer`.
- RTP/RTCP multiplexing (RFC 5761 §5.1.1): an offer made with
  ``rtcp_mux=True`` carries ``a=rtcp-mux``; the answer repeats it when both
  sides want it, and :attr:`MediaParams.rtcp_mux` says whether RTCP shares
  the RTP port.  Without it RTCP goes to the peer's ``a=rtcp`` port (RFC 3605)
  or RTP port + 1.
- SRTP with SDES keys (RFC 4568): an offer made with ``crypto`` lines is
  ``RTP/SAVP``; an answerer given ``srtp_key`` accepts an ``RTP/SAVP`` line
  whose ``a=crypto`` has a suite of :data:`~txsipua.media.sdes.SUITES`,
  answering that tag and suite with its own key; ``srtp_required`` refuses
  plain ``RTP/AVP`` (488).  :attr:`MediaParams.srtp` holds the negotiated
  suite and keys.
"""

from __future__ import annotations

import attrs

from txsipua.errors import NoCommonCodec, OfferAnswerError, ParseError
from txsipua.media.sdes import SUITES, CryptoAttribute, SrtpParams
from txsipua.media.sdp import DIRECTIONS, MediaDescription, SessionDescription

__all__ = [
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "TELEPHONE_EVENT",
    "TELEPHONE_EVENT_PTS",
    "CODEC_FMTP",
    "telephone_event",
    "reject_offer",
    "Codec",
    "MediaParams",
    "NoCommonCodec",
    "OfferAnswerError",
    "hold_offer",
    "make_answer",
    "make_offer",
    "negotiate",
    "resume_offer",
]

#: The events we offer and accept for telephone-event: DTMF 0-9 * # A-D and flash (RFC 4733 §7).
DTMF_EVENTS = "0-16"


@attrs.frozen
class Codec:
    """An RTP audio codec as SDP names it.

    Attributes:
        name: encoding name, e.g. ``"PCMU"`` (compared case-insensitively).
        payload_type: RTP payload type number (0-127).
        clock_rate: RTP clock rate in Hz.
        channels: the ``a=rtpmap`` channel count (``opus/48000/2``, RFC 7587 §7);
            1 is not written.
    """

    name: str
    payload_type: int
    clock_rate: int = 8000
    channels: int = 1

    @property
    def rtpmap(self) -> str:
        """The ``a=rtpmap`` value, e.g. ``"PCMU/8000"``, ``"opus/48000/2"``."""
        if self.channels != 1:
            return f"{self.name}/{self.clock_rate}/{self.channels}"
        return f"{self.name}/{self.clock_rate}"

    def same_codec(self, other: Codec) -> bool:
        """True when both name the same encoding and clock rate (payload types may differ)."""
        return self.name.lower() == other.name.lower() and self.clock_rate == other.clock_rate


PCMU = Codec("PCMU", 0, 8000)
PCMA = Codec("PCMA", 8, 8000)
G722 = Codec("G722", 9, 8000)  # RTP clock 8000 Hz, sampled at 16000 Hz (RFC 3551 §4.5.2)
OPUS = Codec("opus", 111, 48000, 2)  # RFC 7587 §7
TELEPHONE_EVENT = Codec("telephone-event", 101, 8000)
#: Our payload type for telephone-event at each clock rate (RFC 4733 §7.1.1: the codec's rate).
TELEPHONE_EVENT_PTS: dict[int, int] = {8000: 101, 16000: 102, 48000: 103}


#: The ``a=fmtp`` we write for a codec, by lower-case name (RFC 7587 §6.1 for Opus).
CODEC_FMTP: dict[str, str] = {"opus": "minptime=10;useinbandfec=1"}


def telephone_event(clock_rate: int) -> Codec:
    """Our telephone-event codec at ``clock_rate`` Hz (payload type from :data:`TELEPHONE_EVENT_PTS`)."""
    pt = TELEPHONE_EVENT_PTS.get(clock_rate, 104)
    return Codec("telephone-event", pt, clock_rate)


@attrs.frozen
class MediaParams:
    """What to do with the negotiated audio stream.

    Attributes:
        remote_address: where to send RTP (IP address text).
        remote_port: the peer's RTP port.
        codec: the codec to send with, carrying the *peer's* payload type.
        telephone_event_pt: the peer's payload type for telephone-event
            (RFC 4733), or None when it has none in common with us.
        direction: our direction: ``"sendrecv"``, ``"sendonly"`` (we send
            only), ``"recvonly"`` or ``"inactive"``.
        ptime: packet time the peer asked for, in milliseconds (20 by default).
        media_index: index of the negotiated ``m=`` line.
        local_telephone_event_pt: *our* payload type for telephone-event, the
            one the peer sends events with (RFC 3264 §5.1), or None.
        rtcp_mux: RTCP shares the RTP port (RFC 5761), both sides said so.
        rtcp_port: the peer's RTCP port when not multiplexed (``a=rtcp``,
            RFC 3605, else the RTP port + 1).
        srtp: the negotiated SRTP suite and keys (RFC 4568), or None for plain RTP.
    """

    remote_address: str
    remote_port: int
    codec: Codec
    telephone_event_pt: int | None
    direction: str
    ptime: int = 20
    media_index: int = 0
    local_telephone_event_pt: int | None = None
    rtcp_mux: bool = False
    rtcp_port: int | None = None
    srtp: SrtpParams | None = None

    @property
    def sending(self) -> bool:
        """True when we may send media (RFC 3264 §5.1)."""
        return self.direction in ("sendrecv", "sendonly")

    @property
    def receiving(self) -> bool:
        """True when we expect to receive media."""
        return self.direction in ("sendrecv", "recvonly")


def _codecs_of(m: MediaDescription) -> list[Codec]:
    """The formats of a media line as codecs, in order, skipping unknown dynamic ones."""
    out = []
    for pt in m.formats:
        encoding = m.encoding(pt)
        if encoding is None:
            continue
        parts = encoding.split("/")
        try:
            rate = int(parts[1])
            channels = int(parts[2]) if len(parts) > 2 else 1
        except (IndexError, ValueError):
            continue
        out.append(Codec(parts[0], pt, rate, channels))
    return out


def _audio_media(codecs: tuple[Codec, ...] | list[Codec], port: int, direction: str, ptime: int | None,
                 fmtp: dict[int, str], *, rtcp_mux: bool = False,
                 crypto: tuple[CryptoAttribute, ...] = ()) -> MediaDescription:
    attributes: list[tuple[str, str | None]] = [("crypto", c.to_value()) for c in crypto]
    if rtcp_mux:
        attributes.append(("rtcp-mux", None))
    return MediaDescription(
        media="audio",
        port=port,
        proto="RTP/SAVP" if crypto else "RTP/AVP",
        formats=tuple(c.payload_type for c in codecs),
        rtpmap={c.payload_type: c.rtpmap for c in codecs},
        fmtp=fmtp,
        direction=direction,
        ptime=ptime,
        attributes=tuple(attributes),
    )


def _has(m: MediaDescription, name: str) -> bool:
    return any(key == name for key, _ in m.attributes)


def _cryptos(m: MediaDescription) -> list[CryptoAttribute]:
    """The usable ``a=crypto`` lines of a media line, in order (bad ones skipped)."""
    out = []
    for key, value in m.attributes:
        if key == "crypto" and value:
            try:
                attribute = CryptoAttribute.parse(value)
            except ParseError:
                continue
            if attribute.suite in SUITES:
                out.append(attribute)
    return out


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")


def make_offer(
    address: str,
    rtp_port: int,
    *,
    codecs: tuple[Codec, ...] = (PCMU, PCMA),
    dtmf: bool = True,
    session_id: int,
    session_version: int = 1,
    direction: str = "sendrecv",
    username: str = "-",
    ptime: int | None = 20,
    session_name: str = "-",
    rtcp_mux: bool = False,
    crypto: tuple[CryptoAttribute, ...] = (),
) -> SessionDescription:
    """Build an offer for one audio stream (RFC 3264 §5).

    Args:
        address: our RTP address (IPv4 or IPv6 text), used for ``o=`` and ``c=``.
        rtp_port: our RTP port (1-65535).
        codecs: the codecs we receive, in order of preference.
        dtmf: add telephone-event (RFC 4733), one per clock rate of ``codecs``
            (:data:`TELEPHONE_EVENT` for 8000 Hz).
        session_id: the ``o=`` sess-id; comes from the caller's id generator.
        session_version: the ``o=`` sess-version.
        direction: our direction attribute.
        username: the ``o=`` username.
        ptime: packet time to ask for, milliseconds (None: no ``a=ptime``).
        session_name: the ``s=`` line.
        rtcp_mux: offer RTP/RTCP multiplexing (``a=rtcp-mux``, RFC 5761).
        crypto: SDES keys to offer (RFC 4568); when any, the line is ``RTP/SAVP``.

    Returns:
        The offer.

    Raises:
        ValueError: no codec, a bad port or direction, or a payload type used twice.
    """
    _check_direction(direction)
    if not codecs:
        raise ValueError("an offer needs at least one codec")
    if not 0 < rtp_port <= 65535:
        raise ValueError(f"bad RTP port {rtp_port}")
    all_codecs = list(codecs)
    fmtp: dict[int, str] = {}
    for codec in codecs:
        if codec.name.lower() in CODEC_FMTP:
            fmtp[codec.payload_type] = CODEC_FMTP[codec.name.lower()]
    if dtmf:
        for rate in dict.fromkeys(c.clock_rate for c in codecs):
            event = telephone_event(rate)
            all_codecs.append(event)
            fmtp[event.payload_type] = DTMF_EVENTS
    pts = [c.payload_type for c in all_codecs]
    if len(set(pts)) != len(pts):
        raise ValueError(f"payload type used twice in {pts}")
    media = _audio_media(all_codecs, rtp_port, direction, ptime, fmtp, rtcp_mux=rtcp_mux, crypto=crypto)
    return SessionDescription(
        username=username,
        session_id=session_id,
        session_version=session_version,
        address=address,
        session_name=session_name,
        connection=address,
        media=(media,),
    )


_ANSWER_DIRECTION = {
    # (offered, hold) -> answered; RFC 3264 §6.1
    ("sendrecv", False): "sendrecv",
    ("sendrecv", True): "sendonly",
    ("sendonly", False): "recvonly",
    ("sendonly", True): "inactive",
    ("recvonly", False): "sendonly",
    ("recvonly", True): "sendonly",
    ("inactive", False): "inactive",
    ("inactive", True): "inactive",
}


def _offered_direction(offer: SessionDescription, index: int) -> str:
    """The offered direction, treating RFC 2543 hold (``c=0.0.0.0``) as sendonly (RFC 3264 §8.4)."""
    m = offer.media[index]
    direction = m.direction
    if offer.media_connection(index) == "0.0.0.0":
        direction = {"sendrecv": "sendonly", "recvonly": "inactive"}.get(direction, direction)
    return direction


def _rejected(m: MediaDescription) -> MediaDescription:
    """An answer line rejecting an offered stream: port 0, same media, proto and formats (§6)."""
    return MediaDescription(
        media=m.media,
        port=0,
        proto=m.proto,
        formats=m.formats,
        other_formats=m.other_formats,
        direction=m.direction,
    )


def make_answer(
    offer: SessionDescription,
    address: str,
    rtp_port: int,
    *,
    codecs: tuple[Codec, ...] = (PCMU, PCMA),
    dtmf: bool = True,
    session_id: int,
    session_version: int = 1,
    hold: bool = False,
    username: str = "-",
    prefer: str = "offer",
    ptime: int | None = 20,
    session_name: str = "-",
    rtcp_mux: bool = False,
    srtp_key: bytes | None = None,
    srtp_required: bool = False,
) -> SessionDescription:
    """Answer an offer (RFC 3264 §6).

    The first offered ``audio`` stream over ``RTP/AVP`` with a non-zero port,
    a connection address and a codec in common is accepted; every other
    ``m=`` line is rejected with port 0 (§6).  The accepted line uses the
    offer's payload type numbers (§6.1), including the offer's number for
    telephone-event.

    Args:
        offer: the peer's offer.
        address: our RTP address.
        rtp_port: our RTP port (1-65535).
        codecs: the codecs we support, in our order of preference.
        dtmf: accept telephone-event when offered.
        session_id: our ``o=`` sess-id (from the caller's id generator).
        session_version: our ``o=`` sess-version.
        hold: answer so that the peer is on hold (sendonly or inactive).
        username: the ``o=`` username.
        prefer: ``"offer"`` lists common codecs in the offer's order,
            ``"local"`` in the order of ``codecs``.
        ptime: packet time to ask for, milliseconds (None: none).
        session_name: the ``s=`` line.
        rtcp_mux: accept RTP/RTCP multiplexing when offered (RFC 5761 §5.1.1).
        srtp_key: our SDES master key and salt; with it an ``RTP/SAVP`` line
            with a suite we know is accepted (RFC 4568 §7.1.2).
        srtp_required: refuse plain ``RTP/AVP`` lines.

    Returns:
        The answer, with exactly as many ``m=`` lines as the offer.

    Raises:
        NoCommonCodec: (status 488) no offered stream can be accepted.
        ValueError: a bad argument.
    """
    if prefer not in ("offer", "local"):
        raise ValueError(f"prefer must be 'offer' or 'local', not {prefer!r}")
    if not 0 < rtp_port <= 65535:
        raise ValueError(f"bad RTP port {rtp_port}")
    answered: list[MediaDescription] = []
    accepted = False
    reasons: list[str] = []
    protos = ("RTP/SAVP",) if srtp_required else ("RTP/AVP", "RTP/SAVP") if srtp_key else ("RTP/AVP",)
    for index, m in enumerate(offer.media):
        if accepted or m.media != "audio" or m.proto not in protos or m.port == 0:
            if not accepted:
                reasons.append(f"m={m.media} {m.port} {m.proto} is not an active {' or '.join(protos)} audio stream")
            answered.append(_rejected(m))
            continue
        crypto: tuple[CryptoAttribute, ...] = ()
        if m.proto == "RTP/SAVP":
            offered_keys = _cryptos(m)
            if not offered_keys or srtp_key is None:
                reasons.append(f"m=audio line {index} offers no a=crypto suite we know ({', '.join(SUITES)})")
                answered.append(_rejected(m))
                continue
            crypto = (CryptoAttribute(offered_keys[0].tag, offered_keys[0].suite, srtp_key),)
        if offer.media_connection(index) is None:
            reasons.append(f"m={m.media} line {index} has no connection address")
            answered.append(_rejected(m))
            continue
        offered = _codecs_of(m)
        common: list[Codec] = []
        if prefer == "offer":
            common = [o for o in offered if o.name.lower() != "telephone-event"
                      and any(o.same_codec(c) for c in codecs)]
        else:
            for ours in codecs:
                match = next((o for o in offered if o.same_codec(ours)), None)
                if match is not None:
                    common.append(match)
        if not common:
            names = ", ".join(m.encoding(pt) or str(pt) for pt in m.formats) or "none"
            reasons.append(f"no codec in common (offered: {names})")
            answered.append(_rejected(m))
            continue
        fmtp: dict[int, str] = {}
        if dtmf:
            rates = {c.clock_rate for c in common}
            for event in [o for o in offered if o.name.lower() == "telephone-event" and o.clock_rate in rates]:
                common.append(event)
                fmtp[event.payload_type] = m.fmtp.get(event.payload_type, DTMF_EVENTS)
        for c in common:
            if c.payload_type in m.fmtp and c.payload_type not in fmtp:
                fmtp[c.payload_type] = m.fmtp[c.payload_type]
        direction = _ANSWER_DIRECTION[(_offered_direction(offer, index), hold)]
        answered.append(_audio_media(common, rtp_port, direction, ptime, fmtp,
                                     rtcp_mux=rtcp_mux and _has(m, "rtcp-mux"), crypto=crypto))
        accepted = True
    if not accepted:
        raise NoCommonCodec("cannot accept the offer: " + ("; ".join(reasons) or "no media"))
    return SessionDescription(
        username=username,
        session_id=session_id,
        session_version=session_version,
        address=address,
        session_name=session_name,
        connection=address,
        media=tuple(answered),
    )


def reject_offer(offer: SessionDescription, address: str, *, session_id: int, session_version: int = 1,
                 username: str = "-", session_name: str = "-") -> SessionDescription:
    """An answer refusing every stream of ``offer`` (RFC 3264 §6): each ``m=`` line with port 0.

    The valid answer to an offer that has nothing we can use, where an
    answer must be sent anyway (the ACK of a 2xx that offered, RFC 3261
    §13.2.2.4).

    Args:
        offer: the peer's offer.
        address: our address for the ``o=`` and ``c=`` lines.
        session_id: our ``o=`` sess-id.
        session_version: our ``o=`` sess-version.
        username: the ``o=`` username.
        session_name: the ``s=`` line.

    Returns:
        The answer, with exactly as many ``m=`` lines as the offer, all rejected.
    """
    return SessionDescription(
        username=username,
        session_id=session_id,
        session_version=session_version,
        address=address,
        session_name=session_name,
        connection=address,
        media=tuple(_rejected(m) for m in offer.media),
    )


def _our_direction(local: str, remote: str, remote_held: bool) -> str:
    send = local in ("sendrecv", "sendonly") and remote in ("sendrecv", "recvonly") and not remote_held
    recv = local in ("sendrecv", "recvonly") and remote in ("sendrecv", "sendonly")
    if send and recv:
        return "sendrecv"
    if send:
        return "sendonly"
    if recv:
        return "recvonly"
    return "inactive"


def negotiate(local: SessionDescription, remote: SessionDescription) -> MediaParams:
    """Settle what to send and where, from our description and the peer's.

    Works for both roles: ``local`` is our offer and ``remote`` the answer, or
    ``local`` our answer and ``remote`` the offer.  We send with the first
    codec in ``remote`` that is also in ``local`` (RFC 3264 §6.1, §7), with the
    peer's payload type.

    Args:
        local: our session description.
        remote: the peer's session description.

    Returns:
        The parameters of the first audio stream active on both sides.

    Raises:
        NoCommonCodec: (status 488) no audio stream is active on both sides
            with a codec in common.
    """
    reasons = []
    for index, (ours, theirs) in enumerate(zip(local.media, remote.media, strict=False)):
        if ours.media != "audio" or theirs.media != "audio":
            continue
        if ours.port == 0 or theirs.port == 0:
            reasons.append(f"audio stream {index} is rejected")
            continue
        address = remote.media_connection(index)
        if address is None:
            reasons.append(f"audio stream {index} has no connection address")
            continue
        our_codecs = _codecs_of(ours)
        their_codecs = _codecs_of(theirs)
        codec = next(
            (t for t in their_codecs if t.name.lower() != "telephone-event"
             and any(t.same_codec(o) for o in our_codecs)),
            None,
        )
        if codec is None:
            reasons.append(f"audio stream {index} has no codec in common")
            continue
        event_pt = local_event_pt = None
        event_codec = Codec("telephone-event", 0, codec.clock_rate)  # at the audio's clock rate (RFC 4733 §2.1)
        ours_event = next((o for o in our_codecs if o.same_codec(event_codec)), None)
        theirs_event = next((t for t in their_codecs if t.same_codec(event_codec)), None)
        if ours_event is not None and theirs_event is not None:
            event_pt = theirs_event.payload_type
            local_event_pt = ours_event.payload_type
        held = address in ("0.0.0.0", "::")
        direction = _our_direction(ours.direction, theirs.direction, held)
        srtp = None
        if ours.proto == "RTP/SAVP" or theirs.proto == "RTP/SAVP":
            srtp = _srtp_of(ours, theirs)
            if srtp is None:
                reasons.append(f"audio stream {index} has no SRTP key both sides share")
                continue
        return MediaParams(
            remote_address=address,
            remote_port=theirs.port,
            codec=codec,
            telephone_event_pt=event_pt,
            direction=direction,
            ptime=theirs.ptime or 20,
            media_index=index,
            local_telephone_event_pt=local_event_pt,
            rtcp_mux=_has(ours, "rtcp-mux") and _has(theirs, "rtcp-mux"),
            rtcp_port=_rtcp_port(theirs),
            srtp=srtp,
        )
    raise NoCommonCodec("no usable audio stream: " + ("; ".join(reasons) or "no audio in both"))


def _srtp_of(ours: MediaDescription, theirs: MediaDescription) -> SrtpParams | None:
    """The keys of the first crypto tag both lines have with one suite (RFC 4568 §6.1), or None."""
    if ours.proto != theirs.proto:
        return None
    mine = {c.tag: c for c in _cryptos(ours)}
    for c in _cryptos(theirs):
        own = mine.get(c.tag)
        if own is not None and own.suite == c.suite:
            return SrtpParams(c.suite, own.key, c.key)
    return None


def _rtcp_port(m: MediaDescription) -> int | None:
    """The port of ``a=rtcp:PORT [...]`` (RFC 3605), or None."""
    value = m.attribute("rtcp")
    if not value:
        return None
    head = value.split()[0]
    return int(head) if head.isdigit() and 0 < int(head) < 65536 else None


def _reoffer(previous: SessionDescription, directions: dict[str, str]) -> SessionDescription:
    media = tuple(
        attrs.evolve(m, direction=directions.get(m.direction, m.direction)) if m.port else m
        for m in previous.media
    )
    return attrs.evolve(previous, media=media, session_version=previous.session_version + 1)


def hold_offer(previous: SessionDescription) -> SessionDescription:
    """A re-offer putting the peer on hold (RFC 3264 §8.4).

    Args:
        previous: our last session description in this session (offer or answer).

    Returns:
        The same description with every active stream ``sendonly`` (``inactive``
        if it was ``recvonly`` or ``inactive``) and ``sess-version`` + 1.
    """
    return _reoffer(previous, {"sendrecv": "sendonly", "recvonly": "inactive"})


def resume_offer(previous: SessionDescription) -> SessionDescription:
    """A re-offer taking the peer off hold (RFC 3264 §8.4).

    Args:
        previous: our last session description in this session.

    Returns:
        The same description with every active stream ``sendrecv`` and
        ``sess-version`` + 1.
    """
    return _reoffer(previous, dict.fromkeys(DIRECTIONS, "sendrecv"))
