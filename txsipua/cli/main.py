"""The ``txsipua`` command: demo, register, call, answer.

Exit status: 0 on success; 1 when the SIP work failed (the reason is printed
on one line to standard error); 2 for usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer, task

from txsipua.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Printer,
    bind_for,
    describe_error,
    load_account,
    non_negative_float,
    non_negative_int,
    on_stop_signals,
    parse_bind,
    transport_options,
    tune_gc_for_server,
)
from txsipua.errors import (
    SIPError,
    UsageError,
)
from txsipua.sip.message import parse_message

__all__ = ["build_parser", "describe_error", "main", "on_stop_signals", "parse_bind"]


# ---------------------------------------------------------------- register
@defer.inlineCallbacks
def cmd_register(reactor: Any, args: argparse.Namespace) -> Any:
    from txsipua.ua.config import Configuration
    from txsipua.ua.useragent import UserAgent

    account = load_account(args.account)
    printer = Printer(args.verbose)
    ua = UserAgent(reactor, Configuration(media=False), account, trace=printer.trace,
                   **transport_options(reactor, args, bind_for(args, account)))
    done: defer.Deferred[None] = defer.Deferred()

    def stop() -> None:
        if not done.called:
            done.callback(None)

    # a signal while registering: the REGISTER completes (at most Timer F, 32 s), then the
    # binding it made is removed again (Expires: 0) before we exit
    yield on_stop_signals(reactor, stop)
    yield ua.start()
    reg = ua.registration(args.expires)
    try:
        result = yield reg.start()
    except Exception as e:
        print(describe_error(e), file=sys.stderr)
        yield ua.stop()
        return EXIT_FAILED
    print(f"registered {account.aor} at {account.registrar_uri}: {result.response.status} {result.response.reason}")
    for b in result.bindings:
        mark = "  (ours)" if b.ours else ""
        print(f"  binding <{b.contact}> expires in {b.expires} s{mark}")
    print(f"granted expiry for our contact: {result.expires} s")
    interrupted = done.called
    if not args.keep and not interrupted:
        reg.abandon()
        yield ua.stop()
        return EXIT_OK

    def refreshed_failed(err: Exception) -> None:
        print(f"refresh failed: {describe_error(err)}", file=sys.stderr)

    reg.on_refresh_failed = refreshed_failed
    if interrupted:
        print("interrupted while registering: unregistering", file=sys.stderr, flush=True)
    else:
        print("staying registered; SIGINT or SIGTERM to unregister", flush=True)
    yield done
    try:
        yield reg.stop()
        print("unregistered")
    except Exception as e:
        print(describe_error(e), file=sys.stderr)
        yield ua.stop()
        return EXIT_FAILED
    yield ua.stop()
    return EXIT_FAILED if interrupted else EXIT_OK


# -------------------------------------------------------------------- call
@defer.inlineCallbacks
def cmd_call(reactor: Any, args: argparse.Namespace) -> Any:
    from txsipua.ua.useragent import UserAgent

    account = load_account(args.account)
    printer = Printer(args.verbose)
    ua = UserAgent(reactor, None, account, trace=printer.trace,
                   **transport_options(reactor, args, bind_for(args, account)))
    interrupted: list[bool] = []
    placed: list[Any] = []

    def on_signal() -> None:
        from txsipua.core.useragent import SessionState

        if not placed:  # before the INVITE: nothing to undo
            interrupted.append(True)
            return
        call = placed[0]
        if call.session is not None and call.session.state is SessionState.CALLING and not interrupted:
            # RFC 3261 §9.1: no CANCEL before the first provisional response
            print("no response from the callee yet: the CANCEL is sent once it answers "
                  "(or the INVITE times out after 32 s)", file=sys.stderr, flush=True)
        interrupted.append(True)
        call.hangup()

    yield on_stop_signals(reactor, on_signal)
    yield ua.start()
    if interrupted:
        yield ua.stop()
        return EXIT_FAILED
    try:
        call = ua.place_call(args.target)
    except SIPError as e:
        print(describe_error(e), file=sys.stderr)
        yield ua.stop()
        return EXIT_FAILED
    placed.append(call)
    call.on_progress = lambda r: print(f"progress: {r.status} {r.reason}", flush=True)
    try:
        yield call.answered
    except Exception as e:
        if interrupted:
            print("call cancelled", file=sys.stderr)
        else:
            print(describe_error(e), file=sys.stderr)
        yield ua.stop()
        return EXIT_FAILED
    print(f"answered; Call-ID {call.call_id}", flush=True)
    if args.record and call.media is not None:
        call.media.record_to(args.record)  # opt-in; streamed to the file, completed when the call ends
    if args.play and call.media is not None:
        call.media.play(args.play)
    if args.dtmf and call.media is not None:
        call.send_dtmf(args.dtmf)
    ended: list[str] = []

    def note_end(reason: Any) -> Any:
        ended.append(reason)
        return reason  # later callbacks (hangup's relay) still need the reason

    call.ended.addCallback(note_end)
    if not interrupted:
        waiter: defer.Deferred[Any] = defer.Deferred()

        def wake(result: Any = None) -> Any:
            if not waiter.called:
                waiter.callback(result)
            return result

        timer = reactor.callLater(args.duration, wake)
        call.ended.addCallback(wake)
        yield waiter
        if timer.active():
            timer.cancel()
    if ended:
        reason = ended[0]
    else:
        reason = yield call.hangup()
    if reason == "hangup":  # we ended it: --duration ran out, or SIGINT/SIGTERM
        print(f"hung up ({reason})")
    else:
        print(f"call ended by the peer ({reason})")
    yield ua.stop()
    if call.bye_error is not None:
        print(f"the BYE was not confirmed: {describe_error(call.bye_error)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


# ------------------------------------------------------------------ answer
def _warn_missing_ha1(store: Any, realm: str, algorithms: tuple[str, ...], path: str) -> None:
    """Warn on stderr when no user of ``realm`` has an HA1 for a challenged algorithm.

    Such a challenge can never be answered right (every user would get 403
    after the failure limit); an algorithm name the server refuses is left to
    the DigestServer's own error.
    """
    from txsipua.auth.digest import base_algorithm, canonical_algorithm

    have = store.algorithms(realm)
    missing = []
    for name in algorithms:
        canonical = canonical_algorithm(name)
        if canonical is not None and base_algorithm(canonical) not in have and name not in missing:
            missing.append(name)
    if missing:
        print(f"warning: no user of realm {realm!r} in {path} has an HA1 for {', '.join(missing)} "
              f"(it has {', '.join(sorted(have)) or 'none'}): those challenges cannot be answered",
              file=sys.stderr, flush=True)


@defer.inlineCallbacks
def cmd_answer(reactor: Any, args: argparse.Namespace) -> Any:
    from txsipua.auth.server import DigestServer
    from txsipua.cli.server_options import auth_guard, server_log
    from txsipua.ua.config import Configuration
    from txsipua.ua.useragent import UserAgent

    bind = parse_bind(args.bind)
    log = server_log()
    authenticator = portal = register_authenticator = None
    account = load_account(args.account) if args.account else None
    if args.realm or args.users:
        if not (args.realm and args.users):
            raise UsageError("--realm and --users go together")
        from txsipua.ua.cred import HtdigestFileStore, make_portal

        try:
            store = HtdigestFileStore(args.users)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read --users {args.users}: {e}") from None
        secret = args.secret.encode() if args.secret else None
        import secrets as _secrets

        secret_bytes = secret or _secrets.token_bytes(32)
        algorithms = tuple(args.algorithm or ["MD5"])
        _warn_missing_ha1(store, args.realm, algorithms, args.users)
        guard = auth_guard(args, log)
        try:
            # each instance numbers its nonces apart from others sharing --secret
            authenticator = DigestServer(args.realm, secret_bytes, algorithms=algorithms, proxy_role=args.proxy_role,
                                         instance=_secrets.randbits(32), **guard)
            if args.proxy_role:
                # the registrar side still answers REGISTER with 401 (RFC 3261 §22.3)
                register_authenticator = DigestServer(args.realm, secret_bytes, algorithms=algorithms,
                                                      instance=_secrets.randbits(32), **guard)
        except ValueError as e:
            raise UsageError(str(e)) from None
        portal = make_portal(store)
    printer = Printer(args.verbose)
    config = Configuration(media=not args.no_media,
                           socket_buffer=args.socket_buffer * 1024 if args.socket_buffer else None,
                           max_calls=args.max_calls, max_call_duration=args.max_call_duration or None)
    ua = UserAgent(reactor, config, account, authenticator=authenticator, portal=portal,
                   register_authenticator=register_authenticator,
                   **transport_options(reactor, args, bind, server=True),
                   trace=printer.trace if args.verbose else None)
    ua.log = log  # refused calls are logged on stderr with the server's other warnings
    tune_gc_for_server()
    registrar = None
    if authenticator is not None or args.registrar:
        from txsipua.ua.registrar import Registrar

        owners: dict[str, str] = {}
        for item in args.owner or []:
            auth_user, sep, aor_user = item.partition("=")
            if not sep or not auth_user or not aor_user:
                raise UsageError(f"--owner takes AUTHUSER=AORUSER, not {item!r}")
            owners[auth_user] = aor_user
        registrar = Registrar(ua, owners=owners, max_bindings=args.max_bindings or None, log=log,
                              max_bindings_per_aor=args.max_bindings_per_aor)
        ua.on_request = registrar.handle
    answered = [0]
    finished: defer.Deferred[None] = defer.Deferred()
    ending = []

    def finish(result: Any = None) -> Any:
        if not finished.called:
            finished.callback(None)
        return result

    def on_call(incoming: Any) -> None:
        call = incoming.answer()
        if call.ended.called:  # declined after all (no media socket left: 503, or 500)
            return
        answered[0] += 1
        if args.duration:
            t = reactor.callLater(args.duration, call.hangup)
            call.ended.addBoth(lambda r: (t.active() and t.cancel(), r)[1])
        if args.count and answered[0] >= args.count:
            call.ended.addBoth(finish)

    ua.on_incoming_call = on_call

    def stop() -> None:
        ending.append(True)
        finish()

    # installed before anything is sent: a signal while registering lets the REGISTER
    # complete, then unregisters (below) instead of leaving the binding behind
    yield on_stop_signals(reactor, stop)
    host, port = yield ua.start()
    reg = None
    if account is not None and args.register:
        reg = ua.registration(args.expires)
        try:
            yield reg.start()
        except Exception as e:
            print(describe_error(e), file=sys.stderr)
            yield ua.stop()
            return EXIT_FAILED
    from txsipua.core.useragent import format_host

    print(f"ready {format_host(host)}:{port}", flush=True)  # [::1]:PORT for IPv6
    yield finished
    open_calls = len(ua.calls)
    if reg is not None:
        try:
            yield reg.stop()
        except Exception as e:
            print(describe_error(e), file=sys.stderr)
    yield ua.stop()
    print(f"answered={answered[0]} open_calls={open_calls}", flush=True)
    return EXIT_OK


# -------------------------------------------------------------- bench-call
@defer.inlineCallbacks
def cmd_bench_call(reactor: Any, args: argparse.Namespace) -> Any:
    """Place ``--calls`` calls at ``--rate`` calls/s; each is hung up once answered (after ``--hold``)."""
    from txsipua.sip.uri import SipURI
    from txsipua.ua.account import Account
    from txsipua.ua.config import Configuration
    from txsipua.ua.useragent import UserAgent

    if args.rate <= 0 or args.calls <= 0:
        raise UsageError("--rate and --calls must be positive")
    target = SipURI.parse(args.target)
    account = load_account(args.account) if args.account else Account(user="bench", domain=target.host)
    bind = parse_bind(args.bind) if args.bind else ("127.0.0.1", 0)
    config = Configuration(media=False,
                           socket_buffer=args.socket_buffer * 1024 if args.socket_buffer else None)
    ua = UserAgent(reactor, config, account, **transport_options(reactor, args, bind))
    tune_gc_for_server()
    yield ua.start()
    ok = failed = 0
    reasons: dict[str, int] = {}
    done: defer.Deferred[None] = defer.Deferred()
    placed = [0]
    finished = [0]

    def one_ended(_: Any) -> None:
        finished[0] += 1
        if finished[0] >= args.calls and not done.called:
            done.callback(None)

    def answered(call: Any) -> Any:
        nonlocal ok
        ok += 1
        if args.hold > 0:
            return _later(reactor, args.hold).addCallback(lambda _: call.hangup())
        return call.hangup()

    def call_failed(f: Any) -> None:
        nonlocal failed
        failed += 1
        key = describe_error(f.value)[:60]
        reasons[key] = reasons.get(key, 0) + 1

    def place() -> None:
        if placed[0] >= args.calls:
            return
        placed[0] += 1
        try:
            call = ua.place_call(target)
        except SIPError as e:
            call_failed(_FailureLike(e))
            one_ended(None)
            return
        call.answered.addCallbacks(answered, call_failed)
        call.answered.addBoth(one_ended)

    interval = 1.0 / args.rate
    start = reactor.seconds()

    def tick() -> None:
        # catch up on the schedule: calls due by now are placed now (no drift)
        due = min(args.calls, int((reactor.seconds() - start) / interval) + 1)
        while placed[0] < due:
            place()
        if placed[0] < args.calls:
            reactor.callLater(max(0.0, start + placed[0] * interval - reactor.seconds()), tick)

    tick()
    def stop() -> None:
        if not done.called:
            done.callback(None)

    deadline = reactor.callLater(args.calls / args.rate + args.recv_timeout / 1000.0 + 40, stop)
    on_stop_signals(reactor, stop)
    yield done
    if deadline.active():
        deadline.cancel()
    yield ua.stop()
    retrans = ua.core.layer.stats.get("retransmissions", 0)
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {n} x {reason}")
    print(f"calls={placed[0]} ok={ok} failed={failed} retransmissions={retrans}", flush=True)
    return EXIT_OK if failed == 0 and ok == args.calls else EXIT_FAILED


class _FailureLike:
    def __init__(self, value: BaseException) -> None:
        self.value = value


def _later(reactor: Any, seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


# -------------------------------------------------------------------- demo
def cmd_demo(reactor: Any, args: argparse.Namespace) -> Any:
    from txsipua.cli.demo import run_demo

    host, port = parse_bind(args.bind)
    return run_demo(reactor, verbose=args.verbose, hold=args.hold, host=host, port=port)


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``txsipua`` command."""
    from txsipua.cli.server_options import add_server_options

    p = argparse.ArgumentParser(
        prog="txsipua",
        description="A Twisted SIP user agent: register, call, answer; digest authentication done right.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--bind", metavar="HOST[:PORT]", help="local address (port 0 or absent: any free port)")
        sp.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp",
                        help="SIP transport (default udp)")
        sp.add_argument("--tls-cert", metavar="PEM", help="our certificate and key (TLS; needed to listen)")
        sp.add_argument("--tls-ca", metavar="PEM", help="trust this CA certificate for TLS peers "
                        "(default: the system's trust roots)")
        sp.add_argument("--dns", metavar="HOST[:PORT]", help="DNS server for host names (RFC 3263 SRV/A "
                        "lookups; default: the system's resolv.conf)")
        sp.add_argument("-v", "--verbose", action="store_true", help="print every SIP message sent and received")

    d = sub.add_parser("demo", help="run a challenged call end to end on 127.0.0.1 (no outside server)",
                       description="Starts a registrar/proxy (401 for REGISTER, 407 for INVITE) and a callee "
                                   "(401 in another realm) in this process on 127.0.0.1, registers, calls, "
                                   "answers every challenge, hangs up, and prints the call ladder. Exit 0 only "
                                   "if the whole flow was right.")
    d.add_argument("--bind", metavar="HOST[:PORT]", help="address for the three parties (default 127.0.0.1); "
                   "PORT, if given, is the registrar/proxy's")
    d.add_argument("-v", "--verbose", action="store_true", help="also print every SIP message in full")
    d.add_argument("--hold", type=non_negative_float, default=1.0, metavar="SECONDS", help="how long the call stays up (default 1)")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("register", help="register an account and print the bindings",
                       description="REGISTER once and print the bindings the registrar returned; with --keep, "
                                   "stay registered (refreshing) until SIGINT/SIGTERM, then unregister. "
                                   "SIGINT/SIGTERM while the REGISTER is in progress: once it completes "
                                   "the binding is removed again (Expires: 0) and the exit status is 1.")
    r.add_argument("--account", required=True, metavar="FILE", help="account file (TOML)")
    r.add_argument("--expires", type=non_negative_int, default=3600, metavar="SECONDS", help="expiry to ask for (default 3600)")
    r.add_argument("--keep", action="store_true", help="stay registered until SIGINT/SIGTERM, then unregister")
    common(r)
    r.set_defaults(func=cmd_register)

    c = sub.add_parser("call", help="call a SIP URI, stay up, hang up",
                       description="Call TARGET; once answered stay up --duration seconds, then hang up. "
                                   "SIGINT/SIGTERM: CANCEL while ringing, BYE once connected.")
    c.add_argument("target", metavar="TARGET", help="SIP URI (sip:bob@example.com) or a user of the account's domain")
    c.add_argument("--account", required=True, metavar="FILE", help="account file (TOML)")
    c.add_argument("--duration", type=non_negative_float, default=5.0, metavar="SECONDS", help="seconds to stay up once answered (default 5)")
    c.add_argument("--play", metavar="WAV", help="play this WAV file once answered")
    c.add_argument("--record", metavar="WAV", help="record what the peer sends to this WAV file")
    c.add_argument("--dtmf", metavar="DIGITS", help="send these DTMF digits (RFC 4733) once answered")
    common(c)
    c.set_defaults(func=cmd_call)

    b = sub.add_parser("bench-call", help="place calls at a steady rate (a load generator / call bot)",
                       description="Place --calls calls to TARGET at --rate calls/s; each answered call is hung "
                                   "up after --hold seconds. Last line: calls=N ok=N failed=N retransmissions=N. "
                                   "Exit 0 only if every call was answered.")
    b.add_argument("target", metavar="TARGET", help="SIP URI to call")
    b.add_argument("--rate", type=non_negative_float, default=10.0, help="calls per second (default 10)")
    b.add_argument("--calls", type=non_negative_int, default=100, help="how many calls (default 100)")
    b.add_argument("--hold", type=non_negative_float, default=0.0, metavar="SECONDS", help="stay up this long once answered")
    b.add_argument("--account", metavar="FILE", help="account file (default: an identity without credentials)")
    b.add_argument("--recv-timeout", type=non_negative_int, default=10000, metavar="MS", help="give up waiting this long after the last call")
    b.add_argument("--socket-buffer", type=non_negative_int, default=4096, metavar="KIB", help="UDP socket buffers in KiB")
    common(b)
    b.set_defaults(func=cmd_bench_call)

    a = sub.add_parser("answer", help="answer incoming calls (optionally challenging them)",
                       description="An answering UAS: challenges every INVITE (401, or 407 with --proxy-role) "
                                   "when --realm/--users are given and answers the authenticated ones with 200 "
                                   "and SDP; also a registrar for REGISTER. Prints 'ready HOST:PORT' when "
                                   "listening and 'answered=N open_calls=N' when stopped.")
    a.add_argument("--realm", help="digest realm to challenge in")
    a.add_argument("--users", metavar="FILE", help="htdigest file: user:realm:HA1 (MD5), user:realm:HA1:ALGORITHM")
    a.add_argument("--algorithm", action="append", metavar="NAME", help="challenge algorithm (repeatable; default MD5)")
    a.add_argument("--proxy-role", action="store_true", help="challenge with 407 Proxy-Authenticate")
    a.add_argument("--secret", help="nonce secret shared by several instances (default: random)")
    a.add_argument("--account", metavar="FILE", help="account to register with (see --register)")
    a.add_argument("--register", action="store_true", help="register the account before answering")
    a.add_argument("--expires", type=non_negative_int, default=3600, metavar="SECONDS")
    add_server_options(a)
    a.add_argument("--owner", action="append", metavar="AUTHUSER=AORUSER",
                   help="let an auth username register that AOR user (repeatable); by default an "
                        "authenticated user may register only the AOR of its own name (RFC 3261 §10.3)")
    a.add_argument("--count", type=non_negative_int, default=0, help="exit after this many calls ended (0: run until signalled)")
    a.add_argument("--duration", type=non_negative_float, default=0.0, metavar="SECONDS", help="hang up answered calls after this long (0: wait for BYE)")
    a.add_argument("--no-media", action="store_true", help="answer without RTP (SDP answer with no stream)")
    a.add_argument("--max-calls", type=non_negative_int, default=10_000, metavar="N",
                   help="calls held at once; past it a new INVITE gets 503 with Retry-After (default 10000)")
    a.add_argument("--max-call-duration", type=non_negative_float, default=4 * 3600.0, metavar="SECONDS",
                   help="send BYE when a call has lasted this long, e.g. one never hung up "
                        "(default 14400: 4 hours; 0: no limit)")
    a.add_argument("--socket-buffer", type=non_negative_int, default=4096, metavar="KIB",
                   help="UDP socket buffers in KiB (default 4096; 0 keeps the OS default)")
    common(a)
    a.set_defaults(func=cmd_answer)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``txsipua`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(EXIT_USAGE)

    def run(reactor: Any) -> defer.Deferred[Any]:
        try:
            d = defer.maybeDeferred(args.func, reactor, args)
        except UsageError as e:
            return defer.fail(e)
        return d

    code = [EXIT_FAILED]

    def runner(reactor: Any) -> defer.Deferred[Any]:
        d = run(reactor)

        def ok(result: Any) -> None:
            code[0] = result if isinstance(result, int) else EXIT_OK

        def bad(f: Any) -> None:
            if f.check(UsageError):
                print(f"txsipua: {f.value}", file=sys.stderr)
                code[0] = EXIT_USAGE
            else:
                print(describe_error(f.value), file=sys.stderr)
                code[0] = EXIT_FAILED

        return d.addCallbacks(ok, bad)

    with contextlib.suppress(SystemExit):
        task.react(runner)
    sys.exit(code[0])


def _summary(data: bytes) -> str:
    try:
        m = parse_message(data)
    except SIPError:
        return data[:40].decode("latin-1")
    return repr(m)


if __name__ == "__main__":
    main()
