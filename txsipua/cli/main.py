"""The ``txsipua`` command: demo, register, call, answer (options, message, subscribe: :mod:`txsipua.cli.requests`).

Exit status: 0 on success; 1 when the SIP work failed (the reason is printed
on one line to standard error); 2 for usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer, task

from txsipua.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
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
from txsipua.cli.trace import add_trace_options, session_trace
from txsipua.errors import (
    SIPError,
    UsageError,
)
from txsipua.sip.message import parse_message

__all__ = ["build_parser", "describe_error", "main", "on_stop_signals", "parse_bind"]


# ---------------------------------------------------------------- register
@defer.inlineCallbacks
def cmd_register(reactor: Any, args: argparse.Namespace) -> Any:
    from txsipua.cli.service import register_service

    svc = register_service(reactor, args)  # the same service `twist txsipua register` runs
    account = svc.ua.account
    done: defer.Deferred[None] = defer.Deferred()

    def stop() -> None:
        if not done.called:
            done.callback(None)

    # a signal while registering: the REGISTER completes (at most Timer F, 32 s), then the
    # binding it made is removed again (Expires: 0) before we exit
    yield on_stop_signals(reactor, stop)
    try:
        _, result = yield svc.start()
    except Exception as e:
        print(describe_error(e), file=sys.stderr)
        yield svc.ua.stop()
        return EXIT_FAILED
    print(f"registered {account.aor} at {account.registrar_uri}: {result.response.status} {result.response.reason}")
    for b in result.bindings:
        mark = "  (ours)" if b.ours else ""
        print(f"  binding <{b.contact}> expires in {b.expires} s{mark}")
    print(f"granted expiry for our contact: {result.expires} s")
    interrupted = done.called
    if not args.keep and not interrupted:
        svc.abandon_registration()
        yield svc.stop()
        return EXIT_OK

    def refreshed_failed(err: Exception) -> None:
        print(f"refresh failed: {describe_error(err)}", file=sys.stderr)

    svc.registration.on_refresh_failed = refreshed_failed
    if interrupted:
        print("interrupted while registering: unregistering", file=sys.stderr, flush=True)
    else:
        print("staying registered; SIGINT or SIGTERM to unregister", flush=True)
    yield done
    yield svc.stop()
    if svc.unregister_error is not None:
        print(describe_error(svc.unregister_error), file=sys.stderr)
        return EXIT_FAILED
    print("unregistered")
    return EXIT_FAILED if interrupted else EXIT_OK


# -------------------------------------------------------------------- call
def _check_call_options(args: argparse.Namespace) -> None:
    """Check ``call``'s per-call options before the INVITE is sent.

    ``--dtmf`` must be DTMF digits, ``--play`` a readable PCM WAV file,
    ``--record`` a file that can be created and ``--transfer-to`` a SIP URI:
    found wrong once the call is up, they would end it at once.

    Raises:
        UsageError: the first option that is wrong, named (exit status 2).
    """
    from txsipua.errors import ParseError, WavError
    from txsipua.media.dtmf import digit_to_event
    from txsipua.media.wav import read_wav
    from txsipua.sip.uri import SipURI

    for digit in args.dtmf or "":
        try:
            digit_to_event(digit)
        except ValueError as e:
            raise UsageError(f"--dtmf: {e} (digits are 0-9 * # A-D, ! a flash)") from None
    if args.play:
        try:
            read_wav(args.play, rate=None)
        except WavError as e:
            raise UsageError(f"--play: {e}") from None
        except OSError as e:
            raise UsageError(f"--play: cannot read {args.play}: {e.strerror or e}") from None
    if args.record:
        path = os.path.abspath(args.record)
        folder = os.path.dirname(path)
        if os.path.isdir(path):
            raise UsageError(f"--record: {args.record} is a directory")
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK) or (
                os.path.exists(path) and not os.access(path, os.W_OK)):
            raise UsageError(f"--record: cannot create {args.record}")
    if args.transfer_to:
        try:
            SipURI.parse(args.transfer_to)
        except ParseError as e:
            raise UsageError(f"--transfer-to: {args.transfer_to!r} is not a SIP URI: {e.detail}") from None


@defer.inlineCallbacks
def cmd_call(reactor: Any, args: argparse.Namespace) -> Any:
    from txsipua.ua.useragent import UserAgent

    account = load_account(args.account)
    _check_call_options(args)  # before anything is sent: a bad one is a usage error (exit 2)
    tracer = session_trace(reactor, args)
    from txsipua.ua.config import Configuration

    try:
        config = Configuration(session_expires=args.session_expires) if args.session_expires else None
    except ValueError as e:
        raise UsageError(f"--session-expires: {e}") from None
    ua = UserAgent(reactor, config, account, trace=tracer,
                   **transport_options(reactor, args, bind_for(args, account)))
    tracer.attach(ua)
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
    tracer.watch_call(call)
    recording: list[bool] = []

    def record() -> None:
        # from the moment the call has media: early media (a 183's ringback or
        # announcement) is recorded too, not only what follows the answer
        if args.record and not recording and call.media is not None:
            recording.append(True)
            call.media.record_to(args.record)  # opt-in; streamed to the file, completed when the call ends

    def progress(r: Any) -> None:
        print(f"progress: {r.status} {r.reason}", flush=True)
        record()

    call.on_progress = progress
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
    try:
        status = yield _while_connected(reactor, args, ua, call, interrupted, record)
    except Exception as e:
        # an error once the call is up (a --play file gone since the check, a
        # --record file that cannot be created...): hang up (BYE) before exiting
        print(describe_error(e), file=sys.stderr)
        yield ua.stop()
        return EXIT_FAILED
    return status


@defer.inlineCallbacks
def _while_connected(reactor: Any, args: argparse.Namespace, ua: Any, call: Any,
                     interrupted: list[bool], record: Any) -> Any:
    """The answered call of ``cmd_call``: play, DTMF, transfer or stay up; stop the UA; the exit status."""
    record()
    if args.play and call.media is not None:
        call.media.play(args.play)
    if args.dtmf and call.media is not None:
        call.send_dtmf(args.dtmf)
    if args.transfer_to:
        from txsipua.cli.requests import transfer_call

        status = yield transfer_call(reactor, call, args.transfer_to, args.after)
        yield ua.stop()
        return status
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
    if reason in ("hangup", "media-timeout"):  # we ended it: --duration ran out, SIGINT/SIGTERM, no RTP
        print(f"hung up ({reason})")
    else:
        print(f"call ended by the peer ({reason})")
    yield ua.stop()
    if call.bye_error is not None:
        print(f"the BYE was not confirmed: {describe_error(call.bye_error)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


# ------------------------------------------------------------------ answer
@defer.inlineCallbacks
def cmd_answer(reactor: Any, args: argparse.Namespace) -> Any:
    from txsipua.cli.service import answer_service

    svc = answer_service(reactor, args)  # the same service `twist txsipua answer` runs
    tune_gc_for_server()

    def stop() -> None:
        svc.finish()

    # installed before anything is sent: a signal while registering lets the REGISTER
    # complete, then unregisters (below) instead of leaving the binding behind
    yield on_stop_signals(reactor, stop)
    try:
        (host, port), _ = yield svc.start()
    except Exception as e:
        print(describe_error(e), file=sys.stderr)
        yield svc.ua.stop()
        return EXIT_FAILED
    from txsipua.core.useragent import format_host

    print(f"ready {format_host(host)}:{port}", flush=True)  # [::1]:PORT for IPv6
    yield svc.finished
    open_calls = len(svc.ua.calls)
    yield svc.stop()
    if svc.unregister_error is not None:
        print(describe_error(svc.unregister_error), file=sys.stderr)
    print(f"answered={svc.answered} open_calls={open_calls}", flush=True)
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
    tracer = session_trace(reactor, args)
    ua = UserAgent(reactor, config, account, **transport_options(reactor, args, bind),
                   trace=tracer if tracer.wanted else None)
    tracer.attach(ua)
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
    capture = None
    if args.pcap or args.hep or args.log_format == "json":
        capture = session_trace(reactor, argparse.Namespace(**{**vars(args), "verbose": 0}))
    return run_demo(reactor, verbose=args.verbose, hold=args.hold, host=host, port=port, capture=capture)


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
        sp.add_argument("-v", "--verbose", action="count", default=0,
                        help="print the ladder of SIP messages sent and received; -vv: every message in full")
        add_trace_options(sp)

    d = sub.add_parser("demo", help="run a challenged call end to end on 127.0.0.1 (no outside server)",
                       description="Starts a registrar/proxy (401 for REGISTER, 407 for INVITE) and a callee "
                                   "(401 in another realm) in this process on 127.0.0.1, registers, calls, "
                                   "answers every challenge, hangs up, and prints the call ladder. Exit 0 only "
                                   "if the whole flow was right.")
    d.add_argument("--bind", metavar="HOST[:PORT]", help="address for the three parties (default 127.0.0.1); "
                   "PORT, if given, is the registrar/proxy's")
    d.add_argument("-v", "--verbose", action="store_true", help="also print every SIP message in full")
    d.add_argument("--hold", type=non_negative_float, default=1.0, metavar="SECONDS", help="how long the call stays up (default 1)")
    add_trace_options(d)
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
    c.add_argument("--session-expires", type=non_negative_int, default=0, metavar="SECONDS",
                   help="ask for a session timer of this interval (RFC 4028, at least 90; 0: none)")
    c.add_argument("--transfer-to", metavar="URI", help="once answered, transfer the peer to URI (REFER, RFC 3515); "
                   "exit 0 when the transfer succeeded (--duration is then not used)")
    c.add_argument("--after", type=non_negative_float, default=0.0, metavar="SECONDS",
                   help="with --transfer-to: wait this long after the answer (default 0)")
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
    a.add_argument("--users", metavar="FILE", help="htdigest file: user:realm:HA1 (MD5), user:realm:HA1:ALGORITHM; "
                   "a fifth field lists the AOR users that auth user may register: user:realm:HA1::alice,bob")
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
    a.add_argument("--bot", metavar="MODULE:FUNCTION", help="a scripted bot: FUNCTION(call) runs for each "
                   "answered call once confirmed (may return a Deferred or a coroutine)")
    a.add_argument("--ring", type=non_negative_float, default=0.0, metavar="SECONDS",
                   help="send 180 Ringing (reliable when the caller supports 100rel) and answer after this long")
    a.add_argument("--transfer-to", metavar="URI", help="transfer each answered caller to URI (REFER, RFC 3515) "
                   "once the call is up, printing the transfer's progress")
    a.add_argument("--after", type=non_negative_float, default=0.0, metavar="SECONDS",
                   help="with --transfer-to: wait this long after the ACK (default 0)")
    a.add_argument("--max-calls", type=non_negative_int, default=10_000, metavar="N",
                   help="calls held at once; past it a new INVITE gets 503 with Retry-After (default 10000)")
    a.add_argument("--max-call-duration", type=non_negative_float, default=4 * 3600.0, metavar="SECONDS",
                   help="send BYE when a call has lasted this long, e.g. one never hung up "
                        "(default 14400: 4 hours; 0: no limit)")
    a.add_argument("--socket-buffer", type=non_negative_int, default=4096, metavar="KIB",
                   help="UDP socket buffers in KiB (default 4096; 0 keeps the OS default)")
    common(a)
    a.set_defaults(func=cmd_answer)

    from txsipua.cli.auth_check import add_auth_check_parser

    add_auth_check_parser(sub, common)
    from txsipua.cli.requests import add_request_commands

    add_request_commands(sub, common)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``txsipua`` console script."""
    from txsipua.cli.common import QuietStdout

    sys.stdout = QuietStdout(sys.stdout)  # `txsipua demo -v | head -3`: no BrokenPipeError traceback
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
    if getattr(args, "log_format", "text") == "json":  # every stderr line a JSON object
        import time

        from txsipua.cli.trace import JSONLines

        sys.stderr = JSONLines(sys.stderr, time.time)

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
    sys.stderr.flush()
    sys.exit(code[0])


def _summary(data: bytes) -> str:
    try:
        m = parse_message(data)
    except SIPError:
        return data[:40].decode("latin-1")
    return repr(m)


if __name__ == "__main__":
    main()
