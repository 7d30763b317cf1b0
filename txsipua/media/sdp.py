"""Session descriptions: RFC 8866 (which obsoletes RFC 4566), as SIP uses them.

Anatomy of the descriptions this module reads and writes (RFC 8866 §5)::

    v=0                                        version, always 0
    o=- 4711 1 IN IP4 192.0.2.10               origin: username sess-id sess-version
    s=-                                        session name
    c=IN IP4 192.0.2.10                        session-level connection address
    t=0 0                                      timing (SIP sessions are unbounded)
    a=...                                      session-level attributes
    m=audio 49170 RTP/AVP 0 8 101              media: media port proto fmt...
    c=IN IP4 192.0.2.11                        media-level connection (overrides)
    a=rtpmap:0 PCMU/8000                       payload type -> encoding/clock rate
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16                            format parameters
    a=ptime:20                                 packet time, milliseconds
    a=sendrecv                                 direction (RFC 3264 §5.1)

:class:`SessionDescription` and :class:`MediaDescription` are immutable values
(``attrs.evolve`` them to change a field).  Lines this module does not model
(``i=``, ``u=``, ``e=``, ``p=``, ``b=``, ``r=``, ``z=``, ``k=``) are kept in
``extra_lines`` and written back in the order the grammar requires.  A
media description's ``direction`` is its effective direction: the media-level
attribute, else the session-level one, else ``sendrecv`` (RFC 3264 §5.1); it is
always written on the media level.

Parsing is tolerant where real user agents are sloppy (LF line ends, blank
lines, blanks after attribute names, ``a=ptime:20.0``, unknown attributes;
a malformed ``a=rtpmap``, ``a=fmtp`` or ``a=ptime`` is kept in ``attributes``
unused, as RFC 8866 §5.13 asks for attributes a receiver does not
understand) and strict where the structure cannot be understood (bad
``v=``, ``o=``, ``m=``, ``c=`` and ``t=`` lines, unknown line types): only
:class:`~txsipua.errors.ParseError` escapes, with status 400.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from txsipua.errors import ParseError

__all__ = [
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
    "MediaDescription",
    "SessionDescription",
]

#: The four direction attributes (RFC 3264 §5.1, RFC 8866 §6.7).
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

#: Static audio payload types (RFC 3551 §6, Table 4): payload type -> "encoding/clock rate".
STATIC_PAYLOAD_TYPES: dict[int, str] = {
    0: "PCMU/8000",
    3: "GSM/8000",
    4: "G723/8000",
    5: "DVI4/8000",
    6: "DVI4/16000",
    7: "LPC/8000",
    8: "PCMA/8000",
    9: "G722/8000",
    10: "L16/44100/2",
    11: "L16/44100",
    12: "QCELP/8000",
    13: "CN/8000",
    14: "MPA/90000",
    15: "G728/8000",
    16: "DVI4/11025",
    17: "DVI4/22050",
    18: "G729/8000",
}

Attribute = tuple[str, "str | None"]
_SESSION_EXTRA_BEFORE_C = "iuep"
_SESSION_EXTRA_AFTER_T = "trzk"


def _copy_dict(value: Any) -> dict[int, str]:
    return {int(k): str(v) for k, v in dict(value).items()}


def _tuple_of_pairs(value: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((str(a), b) for a, b in value)


def _int_tuple(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _media_tuple(value: Iterable[MediaDescription]) -> tuple[MediaDescription, ...]:
    return tuple(value)


def _address_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _check_direction(instance: Any, attribute: Any, value: str) -> None:
    if value not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {value!r}")


def _check_port(instance: Any, attribute: Any, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"port out of range: {value}")


@attrs.frozen
class MediaDescription:
    """One ``m=`` section (RFC 8866 §5.14) with the attributes SIP calls use.

    Attributes:
        media: the media type, e.g. ``"audio"``, ``"video"``, ``"image"``.
        port: transport port (0 means the stream is rejected or disabled,
            RFC 3264 §5.1, §6).
        proto: transport protocol, e.g. ``"RTP/AVP"``.
        formats: the numeric formats (RTP payload types) in order of preference.
        other_formats: non-numeric format tokens (e.g. ``"t38"``, ``"*"``),
            written after ``formats``.
        connection: media-level connection address (``c=`` without
            ``IN IP4``), or None to use the session-level one.
        rtpmap: payload type -> ``"encoding/clock rate[/channels]"``
            (``a=rtpmap``, RFC 8866 §6.6), e.g. ``{0: "PCMU/8000"}``.
        fmtp: payload type -> format parameters (``a=fmtp``, RFC 8866 §6.15),
            e.g. ``{101: "0-16"}``.
        direction: ``"sendrecv"``, ``"sendonly"``, ``"recvonly"`` or
            ``"inactive"``, effective for this stream.
        ptime: packet time in milliseconds (``a=ptime``), or None.
        attributes: other ``a=`` lines in order, as (name, value or None).
        port_count: the ``/<number of ports>`` of the ``m=`` line (1 when absent).
        extra_lines: other lines of the section (``i=``, ``b=``, ``k=``) as
            (type letter, value) pairs.
    """

    media: str = "audio"
    port: int = attrs.field(default=0, validator=_check_port)
    proto: str = "RTP/AVP"
    formats: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    connection: str | None = None
    rtpmap: dict[int, str] = attrs.field(factory=dict, converter=_copy_dict, hash=False)
    fmtp: dict[int, str] = attrs.field(factory=dict, converter=_copy_dict, hash=False)
    direction: str = attrs.field(default="sendrecv", validator=_check_direction)
    ptime: int | None = None
    attributes: tuple[Attribute, ...] = attrs.field(default=(), converter=_tuple_of_pairs)
    other_formats: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    port_count: int = 1
    extra_lines: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_tuple_of_pairs)

    def encoding(self, payload_type: int) -> str | None:
        """The ``"name/rate[/channels]"`` of a payload type.

        Uses ``a=rtpmap`` and falls back on the static table of RFC 3551 §6.

        Args:
            payload_type: an RTP payload type (0-127).

        Returns:
            e.g. ``"PCMU/8000"``, or None when the type is dynamic and unmapped.
        """
        if payload_type in self.rtpmap:
            return self.rtpmap[payload_type]
        return STATIC_PAYLOAD_TYPES.get(payload_type)

    def attribute(self, name: str) -> str | None:
        """The value of the first other attribute called ``name`` (None if absent or a flag)."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def lines(self) -> list[str]:
        """This media description as SDP lines (``m=`` first, then i/c/b/k and
        attributes in RFC 8866 §5 order), without line ends."""
        port = str(self.port) if self.port_count == 1 else f"{self.port}/{self.port_count}"
        fmts = [str(f) for f in self.formats] + list(self.other_formats)
        lines = [" ".join(["m=" + self.media, port, self.proto, *fmts])]
        lines += [f"{k}={v}" for k, v in self.extra_lines if k == "i"]
        if self.connection is not None:
            lines.append(f"c=IN {_address_type(self.connection)} {self.connection}")
        lines += [f"{k}={v}" for k, v in self.extra_lines if k in "bk"]
        seen: set[int] = set()
        for pt in list(self.formats) + sorted(set(self.rtpmap) | set(self.fmtp)):
            if pt in seen:
                continue
            seen.add(pt)
            if pt in self.rtpmap:
                lines.append(f"a=rtpmap:{pt} {self.rtpmap[pt]}")
            if pt in self.fmtp:
                lines.append(f"a=fmtp:{pt} {self.fmtp[pt]}")
        if self.ptime is not None:
            lines.append(f"a=ptime:{self.ptime}")
        lines += _attribute_lines(self.attributes)
        lines.append("a=" + self.direction)
        return lines


def _attribute_lines(attributes: tuple[Attribute, ...]) -> list[str]:
    return [f"a={k}" if v is None else f"a={k}:{v}" for k, v in attributes]


@attrs.frozen
class SessionDescription:
    """A whole session description (RFC 8866 §5).

    Attributes:
        username: origin username (``o=`` field 1; ``"-"`` when none).
        session_id: origin sess-id (RFC 8866 §5.2), a number.
        session_version: origin sess-version; incremented on every change
            (RFC 3264 §8).
        address: origin unicast address.
        session_name: ``s=`` (``"-"`` when none).
        connection: session-level connection address (``c=`` without
            ``IN IP4``), or None.
        media: the ``m=`` sections in order.
        attributes: session-level ``a=`` lines as (name, value or None).
        timing: the first ``t=`` line as (start, stop); ``(0, 0)`` for SIP.
        extra_lines: other session-level lines as (type letter, value).
        version: ``v=``, always 0.
    """

    username: str = "-"
    session_id: int = 0
    session_version: int = 0
    address: str = "0.0.0.0"
    session_name: str = "-"
    connection: str | None = None
    media: tuple[MediaDescription, ...] = attrs.field(default=(), converter=_media_tuple)
    attributes: tuple[Attribute, ...] = attrs.field(default=(), converter=_tuple_of_pairs)
    timing: tuple[int, int] = (0, 0)
    extra_lines: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_tuple_of_pairs)
    version: int = 0

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse a session description.

        Args:
            data: the SDP body, bytes (UTF-8, undecodable bytes kept) or text;
                lines end with CRLF or LF.

        Returns:
            The parsed description.

        Raises:
            ParseError: (status 400) the text is not a session description
                this module can understand; the detail names the defect.
        """
        try:
            return _parse(data)
        except ParseError:
            raise
        except (ValueError, IndexError, TypeError) as exc:  # defensive: nothing else escapes
            raise ParseError(f"invalid SDP: {exc}") from exc

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends, in the order RFC 8866 §5 requires."""
        return self.to_text().encode("utf-8", "surrogateescape")

    def to_text(self) -> str:
        """Serialise as text with CRLF line ends."""
        lines = [
            f"v={self.version}",
            f"o={self.username} {self.session_id} {self.session_version} "
            f"IN {_address_type(self.address)} {self.address}",
            f"s={self.session_name}",
        ]
        for letter in _SESSION_EXTRA_BEFORE_C:
            lines += [f"{k}={v}" for k, v in self.extra_lines if k == letter]
        if self.connection is not None:
            lines.append(f"c=IN {_address_type(self.connection)} {self.connection}")
        lines += [f"b={v}" for k, v in self.extra_lines if k == "b"]
        lines.append(f"t={self.timing[0]} {self.timing[1]}")
        for letter in _SESSION_EXTRA_AFTER_T:
            lines += [f"{k}={v}" for k, v in self.extra_lines if k == letter]
        lines += _attribute_lines(self.attributes)
        for m in self.media:
            lines += m.lines()
        return "\r\n".join(lines) + "\r\n"

    def __str__(self) -> str:
        return self.to_text()

    @property
    def direction(self) -> str | None:
        """The session-level direction attribute, or None when absent."""
        for key, value in self.attributes:
            if key in DIRECTIONS and value is None:
                return key
        return None

    def media_connection(self, index: int) -> str | None:
        """The connection address in effect for ``media[index]`` (media level, else session)."""
        m = self.media[index]
        return m.connection if m.connection is not None else self.connection


# --- parsing -----------------------------------------------------------------

_ALLOWED_SESSION = set("vosiuepcbtrzkam")
_ALLOWED_MEDIA = set("icbka")


def _parse_connection(value: str) -> str:
    # connection-field = "c=" nettype SP addrtype SP connection-address
    parts = value.split()
    if len(parts) != 3:
        raise ParseError(f"bad c= line: {value!r}")
    nettype, addrtype, address = parts
    if nettype != "IN" or addrtype not in ("IP4", "IP6"):
        raise ParseError(f"unsupported network or address type in c= line: {value!r}")
    return address


def _parse_int(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ParseError(f"bad {what}: {text!r}")
    return int(text)


def _parse_ptime(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not 0.5 <= value < 100000:
        return None
    return max(1, round(value))


def _parse_media_line(value: str) -> dict[str, Any]:
    # media-field = "m=" media SP port ["/" integer] SP proto 1*(SP fmt)
    parts = value.split()
    if len(parts) < 3:
        raise ParseError(f"bad m= line: {value!r}")
    media, port_text, proto, *fmts = parts
    port_count = 1
    if "/" in port_text:
        port_text, count_text = port_text.split("/", 1)
        port_count = _parse_int(count_text, "port count in m= line")
    port = _parse_int(port_text, "port in m= line")
    if port > 65535:
        raise ParseError(f"port out of range in m= line: {value!r}")
    formats: list[int] = []
    others: list[str] = []
    for fmt in fmts:
        if fmt.isdigit() and fmt.isascii() and int(fmt) <= 127:
            formats.append(int(fmt))
        else:
            others.append(fmt)
    return {
        "media": media,
        "port": port,
        "port_count": port_count,
        "proto": proto,
        "formats": formats,
        "other_formats": others,
        "connection": None,
        "rtpmap": {},
        "fmtp": {},
        "direction": None,
        "ptime": None,
        "attributes": [],
        "extra_lines": [],
    }


def _split_attribute(value: str) -> tuple[str, str | None]:
    # attribute = (attribute-name ":" attribute-value) / attribute-name
    name, sep, rest = value.partition(":")
    name = name.strip()  # trailing blanks after flags ("a=sendrecv ") are common
    if not name or " " in name:
        raise ParseError(f"bad a= line: {value!r}")
    return name, (rest if sep else None)


def _media_attribute(section: dict[str, Any], name: str, value: str | None) -> None:
    """File a media-level attribute; a malformed rtpmap, fmtp or ptime is kept as-is, unused."""
    if name in DIRECTIONS and value is None:
        section["direction"] = name
        return
    if name in ("rtpmap", "fmtp") and value is not None:
        pt_text, _, rest = value.strip().partition(" ")
        rest = rest.strip()
        if (pt_text.isdigit() and pt_text.isascii() and int(pt_text) <= 127
                and (name == "fmtp" or "/" in rest)):
            section[name][int(pt_text)] = rest
            return
    elif name == "ptime" and value is not None:
        ptime = _parse_ptime(value.strip())
        if ptime is not None:
            section["ptime"] = ptime
            return
    section["attributes"].append((name, value))


def _parse(data: bytes | str) -> SessionDescription:
    if isinstance(data, bytes | bytearray | memoryview):
        text = bytes(data).decode("utf-8", "surrogateescape")
    elif isinstance(data, str):
        text = data
    else:
        raise ParseError(f"SDP must be bytes or str, not {type(data).__name__}")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise ParseError("empty session description")
    if lines[0] != "v=0":
        raise ParseError(f"session description must start with v=0, not {lines[0][:40]!r}")

    session: dict[str, Any] = {"attributes": [], "extra_lines": []}
    sections: list[dict[str, Any]] = []
    session_direction: str | None = None
    seen_origin = False
    seen_timing = False
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise ParseError(f"bad SDP line: {line[:60]!r}")
        kind, value = line[0], line[2:]
        if sections:
            section = sections[-1]
            if kind == "m":
                sections.append(_parse_media_line(value))
            elif kind not in _ALLOWED_MEDIA:
                raise ParseError(f"{kind}= line not allowed in a media description")
            elif kind == "c":
                section["connection"] = _parse_connection(value)
            elif kind == "a":
                name, attr_value = _split_attribute(value)
                _media_attribute(section, name, attr_value)
            else:
                section["extra_lines"].append((kind, value))
            continue
        if kind not in _ALLOWED_SESSION:
            raise ParseError(f"unknown SDP line type {kind}=")
        if kind == "v":
            raise ParseError("repeated v= line")
        if kind == "o":
            if seen_origin:
                raise ParseError("repeated o= line")
            seen_origin = True
            parts = value.split()
            if len(parts) != 6:
                raise ParseError(f"bad o= line: {value!r}")
            username, sess_id, sess_version, nettype, addrtype, address = parts
            if nettype != "IN" or addrtype not in ("IP4", "IP6"):
                raise ParseError(f"unsupported network or address type in o= line: {value!r}")
            session["username"] = username
            session["session_id"] = _parse_int(sess_id, "sess-id in o= line")
            session["session_version"] = _parse_int(sess_version, "sess-version in o= line")
            session["address"] = address
        elif kind == "s":
            session["session_name"] = value
        elif kind == "c":
            session["connection"] = _parse_connection(value)
        elif kind == "t" and not seen_timing:
            seen_timing = True
            parts = value.split()
            if len(parts) != 2:
                raise ParseError(f"bad t= line: {value!r}")
            session["timing"] = (_parse_int(parts[0], "start time"), _parse_int(parts[1], "stop time"))
        elif kind == "a":
            name, attr_value = _split_attribute(value)
            if name in DIRECTIONS and attr_value is None:
                session_direction = name
            session["attributes"].append((name, attr_value))
        elif kind == "m":
            sections.append(_parse_media_line(value))
        else:
            session["extra_lines"].append((kind, value))
    if not seen_origin:
        raise ParseError("session description has no o= line")

    # kept in the order they are written back (the grammar's, RFC 8866 §5), so
    # that parsing what to_bytes() wrote gives an equal value
    session_rank = _SESSION_EXTRA_BEFORE_C + "b" + _SESSION_EXTRA_AFTER_T
    session["extra_lines"].sort(key=lambda line: session_rank.find(line[0]))
    media = []
    for section in sections:
        if section["direction"] is None:
            section["direction"] = session_direction or "sendrecv"
        section["extra_lines"].sort(key=lambda line: "ibk".find(line[0]))
        media.append(MediaDescription(**section))
    return SessionDescription(media=media, **session)
