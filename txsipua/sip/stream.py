"""Framing SIP messages on a byte stream: TCP, TLS (RFC 3261 §18.3, RFC 5626 §3.5.1).

Theory of operation: a stream carries messages back to back; each ends after the empty
line that closes its header section plus ``Content-Length`` bytes of body, so on a stream
Content-Length is mandatory.  :class:`StreamFramer` is sans-IO: the connection hands it
whatever bytes arrived (:meth:`StreamFramer.feed`) and gets back the messages that are now
complete; partial data waits in its buffer.

Between messages a peer may send bare line ends: RFC 5626 §3.5.1 keepalives.  The side
that opened the connection (the client) sends a double-CRLF "ping"; the side that accepted
it (the server) answers each with a single CRLF "pong".  The framer skips them and counts
them according to its side (``outbound``): on an accepted connection every two line ends
between messages are a ping, counted in :attr:`StreamFramer.pongs_due` (the pongs to write,
:meth:`StreamFramer.take_pongs` gives the bytes), even when a ping arrives in pieces; on a
connection this side opened every line end between messages is a pong, counted in
:attr:`StreamFramer.pongs_received` so the keepalive can see its ping was answered.

Defects come in two kinds:

* framing defects (no Content-Length, an unreadable or ambiguous one, a header section or
  message larger than ``max_size``) leave no way to find the next message: ``feed`` raises
  :class:`~txsipua.errors.ParseError` (413 for size, 400 otherwise), the framer becomes
  :attr:`~StreamFramer.broken` and the caller closes the connection (RFC 3261 §18.3);
* a well-framed message that does not parse (bad CSeq, missing Call-ID...) is skipped;
  its bytes and error wait in :meth:`StreamFramer.take_rejected` so the caller can log it
  or answer 400, and the stream goes on.
"""

from __future__ import annotations

import attrs

from txsipua.errors import ParseError
from txsipua.sip.message import MAX_MESSAGE_SIZE, Request, Response, parse_message

_CL_NAMES = (b"content-length", b"l")


def _content_length(head: bytes) -> int | None:
    """The Content-Length of a raw header section, or ``None`` when it has none.

    Args:
        head: the header section bytes, start line included, without the empty line.

    Raises:
        ParseError: a value that is not a run of digits, or several differing values.
    """
    found: bytes | None = None
    lines = head.split(b"\n")
    for i, raw in enumerate(lines):
        if i == 0 or raw[:1] in (b" ", b"\t"):
            continue
        name, sep, value = raw.partition(b":")
        if not sep or name.rstrip(b" \t").lower() not in _CL_NAMES:
            continue
        # a folded value continues on the following lines (RFC 3261 §7.3.1)
        j = i + 1
        while j < len(lines) and lines[j][:1] in (b" ", b"\t"):
            value += b" " + lines[j]
            j += 1
        value = value.strip(b" \t\r\n")
        if not value.isdigit() or len(value.lstrip(b"0")) > 10:
            raise ParseError(f"bad Content-Length {value[:20]!r} on a stream")
        if found is not None and int(found) != int(value):
            raise ParseError("several differing Content-Length header fields on a stream")
        found = value
    return None if found is None else int(found)


@attrs.define(slots=True)
class StreamFramer:
    """Cuts a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3) and counts keepalives.

    Args:
        max_size: the largest message accepted, header section and body, in bytes;
            it cannot usefully exceed :data:`~txsipua.sip.message.MAX_MESSAGE_SIZE`,
            which :func:`~txsipua.sip.message.parse_message` enforces.
        outbound: True on a connection this side opened (it sends pings and receives
            pongs, the RFC 5626 client); False on an accepted one (it receives pings and
            owes pongs, the server).

    Attributes:
        pongs_due: double-CRLF pings received and not yet answered; each is answered with
            one CRLF (RFC 5626 §3.5.1).  :meth:`take_pongs` resets it.  Always 0 when
            ``outbound``.
        pings_received: double-CRLF pings received since creation (not ``outbound``).
        pongs_received: CRLF pongs received since creation (``outbound`` only).
        broken: True after a framing defect; every later :meth:`feed` raises.
    """

    max_size: int = MAX_MESSAGE_SIZE
    outbound: bool = False
    pongs_due: int = attrs.field(default=0, init=False)
    pings_received: int = attrs.field(default=0, init=False)
    pongs_received: int = attrs.field(default=0, init=False)
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _scan: int = attrs.field(default=0, init=False)  # where to resume looking for the empty line
    _expect: int = attrs.field(default=0, init=False)  # size of the framed message, once known
    _line_ends: int = attrs.field(default=0, init=False)  # LFs in the current keepalive run
    _error: ParseError | None = attrs.field(default=None, init=False)
    _rejected: list[tuple[bytes, ParseError]] = attrs.field(factory=list, init=False)

    @property
    def broken(self) -> bool:
        """True once a framing defect made the stream unreadable (close the connection)."""
        return self._error is not None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet framed into a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Request | Response]:
        """Add bytes from the stream; return the messages they complete, in order.

        Args:
            data: the bytes just received (any size, from one byte to many messages).

        Returns:
            The complete, parsed messages (possibly none).  Well-framed messages that
            fail to parse are left out and kept for :meth:`take_rejected`.

        Raises:
            ParseError: a framing defect (RFC 3261 §18.3): status 413 when the header
                section or message exceeds ``max_size``, 400 for a missing, malformed or
                ambiguous Content-Length.  The framer is then :attr:`broken` and the
                connection should be closed; messages completed earlier in the same
                ``data`` are dropped with it.
        """
        out: list[Request | Response] = []
        for frame in self.feed_frames(data):
            try:
                out.append(parse_message(frame, stream=True))
            except ParseError as e:
                self._rejected.append((frame, e))
        return out

    def feed_frames(self, data: bytes) -> list[bytes]:
        """Like :meth:`feed` but return each complete message as raw bytes, unparsed.

        For callers that hand the bytes on, e.g. to
        ``TransactionLayer.receive(data, source, now, reliable=True)``.

        Raises:
            ParseError: a framing defect, as for :meth:`feed`.
        """
        if self._error is not None:
            raise ParseError(f"stream already broken: {self._error.detail}", self._error.status)
        buf = self._buffer
        buf += data
        frames: list[bytes] = []
        try:
            while buf:
                if buf[0] in (13, 10):  # CR, LF: keepalive between messages
                    self._skip_keepalive()
                    continue
                self._end_keepalive_run()
                frame = self._next_frame()
                if frame is None:
                    break
                frames.append(frame)
        except ParseError as e:
            self._error = e
            buf.clear()
            raise
        return frames

    def take_pongs(self) -> bytes:
        """The bytes to write back for the pings received so far (one CRLF each); resets.

        RFC 5626 §3.5.1: a server answers each double-CRLF ping with a single CRLF.
        """
        n, self.pongs_due = self.pongs_due, 0
        return b"\r\n" * n

    def take_rejected(self) -> list[tuple[bytes, ParseError]]:
        """The well-framed messages that failed to parse since the last call; resets.

        Returns:
            ``[(message bytes, error)]`` in arrival order; ``error.status`` is the status
            to answer a request with.
        """
        out, self._rejected = self._rejected, []
        return out

    # ---------------------------------------------------------------- internals

    def _skip_keepalive(self) -> None:
        buf = self._buffer
        i = 0
        n = len(buf)
        while i < n and buf[i] in (13, 10):
            if buf[i] == 10:
                if self.outbound:
                    self.pongs_received += 1
                else:
                    self._line_ends += 1
                    if self._line_ends == 2:
                        self.pings_received += 1
                        self.pongs_due += 1
                        self._line_ends = 0
            i += 1
        del buf[:i]

    def _end_keepalive_run(self) -> None:
        # a lone CRLF before a start line is just ignored (RFC 3261 §7.5)
        self._line_ends = 0

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        if self._expect:
            if len(buf) < self._expect:
                return None
            return self._cut(self._expect)
        # the empty line: CRLF CRLF, or LF LF for peers that end lines with bare LF
        start = max(self._scan - 3, 0)
        end = buf.find(b"\r\n\r\n", start)
        sep = 4
        lf = buf.find(b"\n\n", start, len(buf) if end < 0 else end)
        if lf >= 0:
            end, sep = lf, 2
        if end < 0:
            if len(buf) > self.max_size:
                raise ParseError(
                    f"header section longer than {self.max_size} bytes on a stream", status=413
                )
            self._scan = len(buf)
            return None
        head = bytes(buf[:end])
        length = _content_length(head)
        if length is None:
            raise ParseError("missing Content-Length on a stream transport")
        total = end + sep + length
        if total > self.max_size:
            raise ParseError(
                f"message of {total} bytes exceeds {self.max_size} on a stream", status=413
            )
        if len(buf) < total:
            self._expect = total  # the header section is complete; wait for the body
            return None
        return self._cut(total)

    def _cut(self, total: int) -> bytes:
        buf = self._buffer
        frame = bytes(buf[:total])
        del buf[:total]
        self._scan = 0
        self._expect = 0
        return frame


__all__ = ["StreamFramer"]
