"""What the ``txsipua`` commands show and record of their SIP traffic.

One :class:`SessionTrace` per command, fed by the transports' trace callback
(``trace(direction, data, peer)``):

- ``-v``: the readable ladder the demo prints (one line per message: who to
  whom, the request line or status, the challenges and credentials it carries,
  never a digest response); ``-vv``: every message in full (the older ``-v``).
- ``--pcap FILE``: every message as an IP/UDP or IP/TCP packet of a pcap file
  (:mod:`txsipua.trace.pcap`); ``--pcap-rtp`` adds the RTP of the calls.
- ``--hep HOST:PORT``: every message as a HEP v3 datagram to a Homer
  collector (:mod:`txsipua.trace.hep`), ``--hep-id`` naming the capture agent.
- ``--log-format json``: one JSON object per line on stderr for every
  twisted.logger event, and one event per SIP message with its method,
  status, Call-ID and transaction key (top Via branch and CSeq method).  No
  event carries a message's text, and digest parameters (``response``,
  ``nonce``, ``cnonce``...) that reach a log line any other way are redacted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import ILogObserver, Logger, formatEvent, globalLogPublisher
from zope.interface import implementer

from txsipua.auth.challenge import parse_authorization, parse_challenges
from txsipua.errors import SIPError, UsageError
from txsipua.sip.message import Request, Response, parse_message
from txsipua.trace.hep import encode as hep_encode
from txsipua.trace.pcap import PcapWriter

__all__ = ["JSONLines", "JSONLogObserver", "SessionTrace", "add_trace_options", "auth_notes", "redact", "session_trace"]

TraceCallback = Callable[[str, bytes, tuple[str, int]], None]


def add_trace_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--pcap``, ``--pcap-rtp``, ``--hep``, ``--hep-id`` and ``--log-format`` to a command."""
    parser.add_argument("--pcap", metavar="FILE", help="write the SIP traffic to FILE as pcap "
                        "(IP/UDP or IP/TCP framing; Wireshark, sngrep and tshark read it)")
    parser.add_argument("--pcap-rtp", action="store_true", help="with --pcap: the calls' RTP too")
    parser.add_argument("--hep", metavar="HOST:PORT", help="send every SIP message as HEP v3 to a "
                        "Homer collector (UDP)")
    parser.add_argument("--hep-id", type=int, default=2001, metavar="N", help="HEP capture agent id (default 2001)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="json: one JSON object a line on stderr for each log event and SIP message "
                             "(method, status, Call-ID, transaction key; never passwords or digest responses)")


# --------------------------------------------------------------- redaction
_DIGEST_SECRET = re.compile(r'\b(response|cnonce|nonce|password|ha1|opaque)\s*=\s*("[^"]*"|[^\s,;]+)',
                            re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the values of digest ``response``, ``nonce``, ``cnonce``, ``opaque``,
    ``password`` and ``ha1`` parameters replaced by ``<redacted>``."""
    return _DIGEST_SECRET.sub(lambda m: f"{m.group(1)}=<redacted>", text)


_SAFE_KEYS = ("direction", "method", "status", "reason", "call_id", "transaction", "peer", "local",
              "transport", "cseq")


@implementer(ILogObserver)
class JSONLogObserver:
    """Writes each twisted.logger event as one JSON object a line (``--log-format json``).

    Written: ``time`` (seconds since the epoch), ``level``, ``namespace``,
    ``text`` (the formatted event, redacted by :func:`redact`) and, for the
    SIP message events of :class:`SessionTrace`, the keys ``direction``,
    ``method``, ``status``, ``reason``, ``call_id``, ``transaction``, ``cseq``,
    ``peer``, ``local`` and ``transport``.  Other event keys are never written
    (they may hold objects whose text carries credentials).
    """

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr

    def __call__(self, event: dict[str, Any]) -> None:
        """Write ``event``."""
        level = event.get("log_level")
        record: dict[str, Any] = {
            "time": event.get("log_time"),
            "level": getattr(level, "name", None),
            "namespace": event.get("log_namespace"),
            "text": redact(formatEvent(event)),
        }
        for key in _SAFE_KEYS:
            value = event.get(key)
            if value is not None:
                record[key] = redact(value) if isinstance(value, str) else value
        if "log_failure" in event:
            record["failure"] = redact(str(event["log_failure"].getErrorMessage()))
        self.stream.write(json.dumps(record, default=str) + "\n")
        self.stream.flush()


class JSONLines:
    """A text stream (stand-in for ``sys.stderr``) that writes every line as one JSON object.

    With ``--log-format json`` the command's plain-text lines on stderr
    ("authentication failed: ...", usage errors) become
    ``{"time", "level": "error", "namespace": "txsipua.cli", "text"}`` objects
    (``text`` redacted by :func:`redact`); lines already JSON objects (those
    of :class:`JSONLogObserver`) pass through unchanged.  A partial line is
    held until its newline, or written by :meth:`flush`.

    Args:
        stream: the real stream written to.
        clock: seconds since the epoch (``time.time``).
    """

    def __init__(self, stream: Any, clock: Callable[[], float]) -> None:
        self.stream = stream
        self.clock = clock
        self._partial = ""

    def write(self, text: str) -> int:
        """Write ``text``; complete lines are written at once."""
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        """Write a held partial line, then flush the real stream."""
        if self._partial:
            line, self._partial = self._partial, ""
            self._line(line)
        self.stream.flush()

    def _line(self, line: str) -> None:
        if line.startswith("{"):
            try:
                if isinstance(json.loads(line), dict):
                    self.stream.write(line + "\n")
                    return
            except ValueError:
                pass
        if not line.strip():
            return
        record = {"time": self.clock(), "level": "error", "namespace": "txsipua.cli", "text": redact(line)}
        self.stream.write(json.dumps(record) + "\n")

    def isatty(self) -> bool:
        """Never a terminal (JSON is for machines)."""
        return False

    def fileno(self) -> int:
        """The real stream's file descriptor."""
        return int(self.stream.fileno())


# ------------------------------------------------------------------ ladder
def auth_notes(msg: Request | Response) -> list[str]:
    """One line for each challenge or credential ``msg`` carries: realm, user, algorithm, qop.

    Never the digest response, nonce or password.
    """
    notes = []
    for name in ("Authorization", "Proxy-Authorization"):
        for value in msg.headers.get_all(name):
            try:
                a = parse_authorization(value)
                notes.append(f"{name}: realm={a.realm} user={a.username} {a.algorithm or 'MD5'}")
            except SIPError:
                notes.append(f"{name}: (unparsable)")
    for name in ("WWW-Authenticate", "Proxy-Authenticate"):
        for value in msg.headers.get_all(name):
            try:
                for ch in parse_challenges(value, name):
                    qop = f" qop={','.join(ch.qop)}" if getattr(ch, "qop", None) else ""
                    notes.append(f"{name}: realm={ch.realm} {ch.algorithm or 'MD5'}{qop}")
            except SIPError:
                notes.append(f"{name}: (unparsable)")
    return notes


def _host(address: tuple[str, int]) -> str:
    host = address[0]
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def _summary(msg: Request | Response) -> str:
    if isinstance(msg, Request):
        return f"{msg.method} {msg.uri_text}"
    return f"{msg.status} {msg.reason} ({msg.cseq.method})"


# ------------------------------------------------------------- the session
class SessionTrace:
    """The ladder, raw printing, pcap, HEP and JSON events of one command.

    Args:
        reactor: provides ``IReactorUDP`` (HEP) and ``IReactorTime``.
        verbose: 0 quiet, 1 ladder, 2 or more every message in full.
        pcap: path of the pcap file, or None.
        pcap_rtp: also write RTP (see :meth:`rtp`).
        hep: ``(host, port)`` of a HEP collector, or None.
        hep_id: capture agent id.
        json_log: send an event per message to twisted.logger and print
            every event as JSON on stderr.
        out: where the ladder and messages are printed (stdout).
        to_log: the host owns the log (``twist``): the ladder and messages
            go to twisted.logger as info events (namespace ``txsipua.trace``)
            instead of ``out``, and ``json_log`` adds no JSON observer of its
            own (the host's ``--log-format json`` writes the events).

    Raises:
        UsageError: the pcap file cannot be created.
    """

    log = Logger(namespace="txsipua.trace")

    def __init__(self, reactor: Any, *, verbose: int = 0, pcap: str | None = None, pcap_rtp: bool = False,
                 hep: tuple[str, int] | None = None, hep_id: int = 2001, json_log: bool = False,
                 out: Any = None, to_log: bool = False) -> None:
        self.reactor = reactor
        self.to_log = to_log
        self.verbose = verbose
        self.out = out or sys.stdout
        self.local: tuple[str, int] = ("127.0.0.1", 0)
        self.transport = "udp"
        self.pcap_rtp = pcap_rtp
        self._pcap_file: Any = None
        self.pcap: PcapWriter | None = None
        if pcap:
            try:
                self._pcap_file = open(pcap, "wb")  # noqa: SIM115 - closed by close()
            except OSError as e:
                raise UsageError(f"cannot write --pcap {pcap}: {e}") from None
            self.pcap = PcapWriter(self._pcap_file)
        self.hep = hep
        self.hep_id = hep_id
        self._hep_port: Any = None
        self.json_log = json_log
        self._ua: Any = None
        self._observer: JSONLogObserver | None = None
        if json_log and not to_log:
            self._observer = JSONLogObserver()
            globalLogPublisher.addObserver(ILogObserver(self._observer))

    @classmethod
    def from_args(cls, reactor: Any, args: argparse.Namespace) -> SessionTrace:
        """Build from the options of :func:`add_trace_options` and ``-v``.

        Raises:
            UsageError: a bad ``--hep`` address, ``--pcap-rtp`` without
                ``--pcap`` or an unwritable ``--pcap`` file.
        """
        hep = None
        if getattr(args, "hep", None):
            from txsipua.cli.common import parse_bind

            hep = parse_bind(args.hep, option="--hep")
            if not hep[1]:
                raise UsageError(f"--hep {args.hep}: a port is needed")
        if getattr(args, "pcap_rtp", False) and not getattr(args, "pcap", None):
            raise UsageError("--pcap-rtp needs --pcap FILE")
        return cls(reactor, verbose=int(getattr(args, "verbose", 0) or 0), pcap=getattr(args, "pcap", None),
                   pcap_rtp=bool(getattr(args, "pcap_rtp", False)), hep=hep,
                   hep_id=getattr(args, "hep_id", 2001),
                   json_log=getattr(args, "log_format", "text") == "json",
                   to_log=bool(getattr(args, "to_log", False)))

    @property
    def wanted(self) -> bool:
        """Whether anything is done with the messages (else pass ``trace=None``)."""
        return bool(self.verbose or self.pcap or self.hep or self.json_log)

    def bound(self, local: tuple[str, int], transport: str = "udp") -> None:
        """Our address and SIP transport, known once the user agent listens."""
        self.local = (local[0], local[1])
        self.transport = transport.lower()

    def __call__(self, direction: str, data: bytes, peer: tuple[str, int]) -> None:
        """The trace callback: ``direction`` is ``"send"`` or ``"recv"``."""
        now = self.reactor.seconds()
        if self._ua is not None:
            self.bound(self._ua.local_address, self._ua.transport.name)
        src, dst = (self.local, peer) if direction == "send" else (peer, self.local)
        src, dst = (src[0], int(src[1])), (dst[0], int(dst[1]))
        msg: Request | Response | None
        try:
            msg = parse_message(data)
        except SIPError:
            msg = None
        if self.verbose == 1 and msg is not None:
            arrow = "->" if direction == "send" else "<-"
            lines = [f"{_host(self.local):>21} {arrow} {_host(peer):<21}  {_summary(msg)}"]
            lines += [f"{'':47}{note}" for note in auth_notes(msg)]
            self._show("\n".join(lines))
        elif self.verbose >= 2:
            arrow = ">>> sent to" if direction == "send" else "<<< received from"
            text = data.decode("utf-8", "replace").rstrip("\r\n")
            self._show(f"{arrow} {peer[0]}:{peer[1]}\n{text}\n")
        if self.pcap is not None:
            try:
                if self.transport == "udp":
                    self.pcap.udp(now, src, dst, data)
                else:
                    self.pcap.tcp(now, src, dst, data)
            except ValueError as e:
                self.log.warn("not written to the pcap file: {error}", error=str(e))
        call_id = None
        if msg is not None:
            try:
                call_id = msg.call_id
            except SIPError:
                call_id = None
        if self.hep is not None:
            self._send_hep(now, src, dst, data, call_id)
        if self.json_log and msg is not None:
            self._log_message(direction, msg, peer)

    def _show(self, text: str) -> None:
        if self.to_log:
            self.log.info("{ladder}", ladder=redact(text))
        else:
            print(text, file=self.out, flush=True)

    def sent(self, src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        """A SIP message one of several parties in this process sent (the demo): pcap, HEP and JSON only."""
        self.bound(src, self.transport)
        verbose, self.verbose = self.verbose, 0
        try:
            self("send", data, dst)
        finally:
            self.verbose = verbose

    def rtp(self, direction: str, data: bytes, local: tuple[str, int], peer: tuple[str, int]) -> None:
        """An RTP/RTCP datagram of a call (``--pcap-rtp``)."""
        if self.pcap is None or not self.pcap_rtp:
            return
        src, dst = (local, peer) if direction == "send" else (peer, local)
        try:
            self.pcap.udp(self.reactor.seconds(), src, dst, data)
        except ValueError as e:
            self.log.warn("not written to the pcap file: {error}", error=str(e))

    def _send_hep(self, now: float, src: tuple[str, int], dst: tuple[str, int], data: bytes,
                  call_id: str | None) -> None:
        assert self.hep is not None
        if self._hep_port is None:
            family_host = "::" if ":" in self.hep[0] else "127.0.0.1" if self.hep[0].startswith("127.") else "0.0.0.0"
            self._hep_port = self.reactor.listenUDP(0, DatagramProtocol(), interface=family_host)
        try:
            packet = hep_encode(now, src, dst, data, transport=self.transport, agent_id=self.hep_id,
                                correlation_id=call_id)
            self._hep_port.write(packet, self.hep)
        except (ValueError, OSError) as e:
            self.log.warn("HEP packet not sent: {error}", error=str(e))

    def _log_message(self, direction: str, msg: Request | Response, peer: tuple[str, int]) -> None:
        try:
            cseq = msg.cseq
            branch = msg.top_via.branch
            call_id = msg.call_id
        except SIPError:
            return
        fields: dict[str, Any] = {
            "direction": direction, "call_id": call_id, "cseq": cseq.seq,
            "transaction": f"{branch}/{cseq.method}", "peer": _host(peer), "local": _host(self.local),
            "transport": self.transport,
        }
        if isinstance(msg, Request):
            fields["method"] = msg.method
            self.log.info("{direction} {method} {call_id}", **fields)
        else:
            fields.update(method=cseq.method, status=msg.status, reason=msg.reason)
            self.log.info("{direction} {status} {reason} ({method}) {call_id}", **fields)

    def close(self) -> None:
        """Close the pcap file and the HEP socket; stop printing JSON."""
        if self._pcap_file is not None:
            self._pcap_file.close()
            self._pcap_file = None
            self.pcap = None
        if self._hep_port is not None:
            self._hep_port.stopListening()
            self._hep_port = None
        if self._observer is not None:
            globalLogPublisher.removeObserver(ILogObserver(self._observer))
            self._observer = None

    # ------------------------------------------------------------ wiring
    def attach(self, ua: Any) -> None:
        """Take our address and transport from ``ua`` (a UserAgent) when messages flow."""
        self._ua = ua

    def watch_call(self, call: Any) -> None:
        """With ``--pcap-rtp``: write ``call``'s RTP once it has a media stream (now or when answered)."""
        if self.pcap is None or not self.pcap_rtp:
            return

        def hook(result: Any = None) -> Any:
            media = getattr(call, "media", None)
            if media is not None:
                media.trace = self.rtp
            return result

        hook()
        answered = getattr(call, "answered", None)
        if answered is not None and not answered.called:
            answered.addCallback(hook)


def session_trace(reactor: Any, args: argparse.Namespace) -> SessionTrace:
    """The :class:`SessionTrace` of a command's options, closed when the reactor shuts down.

    Raises:
        UsageError: a bad ``--hep`` address or an unwritable ``--pcap`` file.
    """
    tracer = SessionTrace.from_args(reactor, args)
    reactor.addSystemEventTrigger("before", "shutdown", tracer.close)
    return tracer
