"""What the ``txsipua`` commands share: exit statuses, argument types, the account and
transport options, error descriptions, the message printer, signal handling.

Examples import :func:`parse_bind`, :func:`describe_error` and
:func:`on_stop_signals` (re-exported by :mod:`txsipua.cli.main`).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from txsipua.errors import (
    AuthenticationError,
    SIPError,
    SIPStatusError,
    TransactionTimeout,
    UsageError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def non_negative(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0 or value != value:
            raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


non_negative_float = non_negative(float)
"""argparse type: a number (seconds, a rate), 0 or more."""
non_negative_int = non_negative(int)
"""argparse type: a whole number, 0 or more."""


def parse_bind(text: str | None, default_host: str = "127.0.0.1", option: str = "--bind") -> tuple[str, int]:
    """Parse ``HOST[:PORT]`` (``[v6]:PORT`` for IPv6); port 0 or absent = any free port.

    Args:
        option: the option named in the error (``--hep`` parses the same way).

    Raises:
        UsageError: malformed value.
    """
    if not text:
        return (default_host, 0)
    host, port = text, "0"
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"bad {option} {text!r}")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest.startswith(":"):
            port = rest[1:]
        elif rest:
            raise UsageError(f"bad {option} {text!r}")
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port.isdigit() or int(port) > 65535:
        raise UsageError(f"bad port in {option} {text!r}")
    host = host or default_host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"bad {option} {text!r}: HOST must be an IPv4 or IPv6 address") from None
    return (host, int(port))


def local_host_towards(host: str, port: int) -> str:
    """The local address the kernel would use to reach ``host`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.connect((host, port or 5060))
        return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def describe_error(err: BaseException) -> str:
    """A one-line reason for a failure."""
    if isinstance(err, AuthenticationError):
        return f"authentication failed: {err}"
    if isinstance(err, SIPStatusError):
        return str(err)
    if isinstance(err, TransactionTimeout):
        return f"timeout: {err}"
    if isinstance(err, SIPError):
        return f"{type(err).__name__}: {err}"
    return f"{type(err).__name__}: {err}"


class Printer:
    """Prints SIP messages for ``-v`` (to standard output)."""

    def __init__(self, verbose: bool, out: Any = None) -> None:
        self.verbose = verbose
        self.out = out or sys.stdout

    def trace(self, direction: str, data: bytes, peer: tuple[str, int]) -> None:
        if not self.verbose:
            return
        arrow = ">>> sent to" if direction == "send" else "<<< received from"
        text = data.decode("utf-8", "replace").rstrip("\r\n")
        print(f"{arrow} {peer[0]}:{peer[1]}\n{text}\n", file=self.out, flush=True)


def load_account(path: str) -> Any:
    from txsipua.ua.account import Account, AccountError

    try:
        return Account.from_toml(path)
    except AccountError as e:
        raise UsageError(str(e)) from None


def bind_for(args: argparse.Namespace, account: Any) -> tuple[str, int]:
    if args.bind:
        return parse_bind(args.bind)
    target = account.outbound_proxy or account.registrar_uri
    host = target.host.strip("[]")
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return ("127.0.0.1", 0) if host in ("localhost",) else (local_host_towards("192.0.2.1", 9), 0)
    return (local_host_towards(host, target.port or 5060), 0)


def transport_options(reactor: Any, args: argparse.Namespace, bind: tuple[str, int],
                       server: bool = False) -> dict[str, Any]:
    """UserAgent keywords for ``--transport``, ``--tls-cert``, ``--tls-ca`` and ``--dns``.

    Returns ``{"transport": <transport factory bound to bind>, "resolver": SIPResolver}``.
    """
    from txsipua.ua.transports import transport_for

    cert = ca = None
    if args.transport == "tls":
        from twisted.internet import ssl

        if args.tls_ca:
            try:
                with open(args.tls_ca, "rb") as f:
                    ca = ssl.Certificate.loadPEM(f.read())
            except (OSError, ValueError) as e:
                raise UsageError(f"cannot read --tls-ca {args.tls_ca}: {e}") from None
        if args.tls_cert:
            try:
                with open(args.tls_cert, "rb") as f:
                    cert = ssl.PrivateCertificate.loadPEM(f.read()).options()
            except (OSError, ValueError) as e:
                raise UsageError(f"cannot read --tls-cert {args.tls_cert}: {e}") from None
        elif server:
            raise UsageError("--transport tls needs --tls-cert (PEM certificate and key) to listen")
    transport = transport_for(args.transport, reactor, bind[0], bind[1], cert=cert, ca=ca)
    from twisted.names import client as dns_client

    from txsipua.net.resolve import SIPResolver

    servers = None
    if args.dns:
        servers = [parse_bind(args.dns)]
        servers = [(h, p or 53) for h, p in servers]
    resolver = SIPResolver(LazyResolver(dns_client, servers), transports=(transport.name,))
    return {"transport": transport, "resolver": resolver}


class LazyResolver:
    """Builds the twisted.names resolver on the first lookup (numeric hosts never need one)."""

    def __init__(self, dns_client: Any, servers: list[tuple[str, int]] | None) -> None:
        self._client = dns_client
        self._servers = servers
        self._resolver: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._resolver is None:
            c = self._client
            self._resolver = c.createResolver(servers=self._servers) if self._servers else c.getResolver()
        return getattr(self._resolver, name)


def tune_gc_for_server() -> None:
    """Garbage-collector settings for a long-running server (the ``answer`` command).

    Calls leave transactions alive for up to 64*T1 (32 s); under load that is
    hundreds of thousands of objects, and CPython's default thresholds then
    run full collections often enough to pause the process for tens of
    milliseconds at a time, long enough for the kernel to drop datagrams.
    Freezing what exists at start-up and letting the middle generation grow to
    about a million objects keeps those pauses rare.  The young generation is
    collected every 5,000 net allocations: a small young generation stays in
    the CPU caches, so collecting it often costs less in all than collecting
    ten times as much ten times less often (SIPp-shaped calls at 2,000 calls/s: garbage
    collection 28 -> 16 us per plain call, 50 -> 34 us per digest call,
    longest young collection 30 -> 5 ms).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 200, 100)


def on_stop_signals(reactor: Any, handler: Callable[[], None]) -> defer.Deferred[None]:
    """Call ``handler()`` in the reactor thread on each SIGINT or SIGTERM, instead of stopping.

    Twisted's own handler stops the reactor at once, abandoning whatever is in
    progress (no unregistration, CANCEL or BYE; an ``inlineCallbacks``
    generator then "ignored GeneratorExit").  ``reactor.run()`` installs that
    handler during its start-up, so ours is installed now, again right after
    Twisted's (a "during startup" trigger), and once more when the reactor runs.

    Returns:
        A Deferred that fires once the reactor runs with our handler in place:
        wait for it before sending the first request, so that no signal can
        reach Twisted's handler while something is in progress.  ``handler``
        then winds the work down and fires whatever the program waits for.
        Safe to call before or after ``reactor.run()``; the examples use it too.
    """
    def fire(signum: int, frame: Any) -> None:
        reactor.callFromThread(handler)

    def install() -> None:
        signal.signal(signal.SIGINT, fire)
        signal.signal(signal.SIGTERM, fire)

    ready: defer.Deferred[None] = defer.Deferred()

    def running() -> None:
        install()
        ready.callback(None)

    install()
    if not reactor.running:
        reactor.addSystemEventTrigger("during", "startup", install)
    reactor.callWhenRunning(running)
    return ready




class QuietStdout:
    """Standard output that goes quiet when its reader goes away (``txsipua demo -v | head -3``).

    A write or flush hitting a closed pipe (:class:`BrokenPipeError`) points
    file descriptor 1 at ``/dev/null`` and drops the rest of the output, so
    the command finishes without a traceback.

    Args:
        stream: the real standard output.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        """Write ``text`` (dropped once the pipe is broken)."""
        if not self.broken:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._broke()
        return len(text)

    def flush(self) -> None:
        """Flush the real stream (nothing once the pipe is broken)."""
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._broke()

    def _broke(self) -> None:
        self.broken = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stream.fileno())  # the interpreter's final flush then succeeds
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)

    def isatty(self) -> bool:
        """Whether the real stream is a terminal."""
        return bool(self.stream.isatty())

    def fileno(self) -> int:
        """The real stream's file descriptor."""
        return int(self.stream.fileno())
