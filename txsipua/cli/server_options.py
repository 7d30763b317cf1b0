"""The server-side options of ``txsipua answer``: registrar cap, digest-uri rule, password-guessing limits.

``add_server_options`` adds them to the ``answer`` parser; ``auth_guard`` turns
them into :class:`~txsipua.auth.server.DigestServer` arguments; ``server_log``
is where their warnings go (lockouts, a full registrar): the twisted.logger
global publisher, and stderr with every other txsipua warning, rate-limited
(:class:`StderrWarnings`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twisted.logger import ILogObserver, Logger, LogLevel, globalLogPublisher, textFileLogObserver
from zope.interface import implementer

from txsipua.auth.limiter import FailureLimiter, Lockout

__all__ = ["StderrWarnings", "add_server_options", "auth_guard", "server_log"]


def _number(kind: type, positive: bool) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value != value or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be {'above' if positive else 'at least'} 0: {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--registrar``, ``--max-bindings``, ``--strict-digest-uri`` and the ``--auth-*`` limits."""
    count = _number(int, positive=False)
    seconds = _number(float, positive=True)
    parser.add_argument(
        "--registrar", action="store_true",
        help="accept REGISTER without --realm; without --realm/--users nothing is authenticated: "
             "ANYONE may register ANY address-of-record (use on a trusted network only)")
    parser.add_argument(
        "--max-bindings", type=count, default=10000, metavar="N",
        help="registrar cap: past N bindings a REGISTER adding one gets 503 with Retry-After and a "
             "log line; expired bindings of every AOR are purged first (default 10000; 0: no cap)")
    parser.add_argument(
        "--max-bindings-per-aor", type=_number(int, positive=True), default=20, metavar="N",
        help="registrar cap per address-of-record: a REGISTER that would hold more than N live "
             "bindings for one AOR gets 403 and a log line (default 20); a Contact longer than "
             "2048 bytes gets 400")
    parser.add_argument(
        "--strict-digest-uri", action="store_true",
        help="accept only a digest uri equal to the Request-URI (default: also a SIP URI of the same "
             "host and port with no or the same user part, as SIPp sends; another host gets 400)")
    parser.add_argument(
        "--auth-fail-limit", type=count, default=10, metavar="N",
        help="failed authentications allowed per source address and per user within "
             "--auth-fail-window; past it they get 403 for --auth-lockout seconds and a log line "
             "(default 10; 0: no limit)")
    parser.add_argument(
        "--auth-fail-window", type=seconds, default=60.0, metavar="SECONDS",
        help="window counting failed authentications (default 60)")
    parser.add_argument(
        "--auth-lockout", type=seconds, default=60.0, metavar="SECONDS",
        help="how long a source or user is refused past --auth-fail-limit (default 60)")


WARNINGS_SHOWN_FIRST = 5
"""How many warnings of one kind ``answer`` prints before rate-limiting them."""
WARNINGS_EVERY = 100
"""Past the first ones, ``answer`` prints one warning of a kind in this many (with the count)."""


@implementer(ILogObserver)
class StderrWarnings:
    """A log observer printing txsipua's warnings on stderr, rate-limited per kind.

    ``answer``'s own events (namespace ``txsipua.answer``) at any level, and
    warnings or worse of every other ``txsipua`` logger (a cap reached: the
    server-transaction 503s, the TCP connection caps, a TLS handshake timeout,
    the media-socket cap, a response that could not be sent...).  A kind is
    the logger's namespace and its format: the first
    :data:`WARNINGS_SHOWN_FIRST` of a kind are printed, then one in
    :data:`WARNINGS_EVERY`, with how many there were.  Other loggers (Twisted's
    own) are not printed.  stdout is never written.
    """

    def __init__(self, stream: Any = None) -> None:
        self._write = textFileLogObserver(stream if stream is not None else sys.stderr)
        self.counts: dict[tuple[str, str], int] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        """Print ``event`` when it is one of ours and its kind is not rate-limited now."""
        namespace = str(event.get("log_namespace", ""))
        if namespace != "txsipua.answer":
            level = event.get("log_level")
            if not namespace.startswith("txsipua") or level is None or level < LogLevel.warn:
                return
        key = (namespace, str(event.get("log_format", "")))
        if key not in self.counts and len(self.counts) >= 1000:
            self.counts.clear()  # bounded: many kinds only restart the counting
        n = self.counts[key] = self.counts.get(key, 0) + 1
        if n <= WARNINGS_SHOWN_FIRST:
            self._write(event)
        elif n % WARNINGS_EVERY == 0:
            self._write({**event, "log_format": f"{event.get('log_format', '')} [{n} times so far]"})


def server_log() -> Logger:
    """A twisted.logger Logger for ``answer``'s server warnings, to the global log publisher.

    A :class:`StderrWarnings` observer is added to the global publisher: the
    events of this logger, and txsipua's warnings, reach stderr, rate-limited.
    """
    globalLogPublisher.addObserver(ILogObserver(StderrWarnings()))
    return Logger(namespace="txsipua.answer")


def auth_guard(args: argparse.Namespace, log: Logger) -> dict[str, Any]:
    """The DigestServer keyword arguments for the options: ``strict_digest_uri``, ``limiter``, ``on_lockout``."""
    guard: dict[str, Any] = {"strict_digest_uri": args.strict_digest_uri}
    if args.auth_fail_limit:
        guard["limiter"] = FailureLimiter(args.auth_fail_limit, args.auth_fail_window, args.auth_lockout)

        def on_lockout(lockout: Lockout) -> None:
            log.warn("{kind} {key} locked out for {seconds:.0f}s after {failures} failed "
                     "authentications (answered 403 until then)", kind=lockout.kind, key=lockout.key,
                     seconds=args.auth_lockout,
                     failures=lockout.failures)

        guard["on_lockout"] = on_lockout
    return guard
