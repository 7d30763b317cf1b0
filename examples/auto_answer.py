"""An auto-answerer: answers every call, echoes received DTMF digits to the log.

::

    python examples/auto_answer.py --bind 127.0.0.1:5080
    python examples/auto_answer.py --account bob.toml --register   # reachable as bob's AOR

Each incoming call (:attr:`UserAgent.on_incoming_call`) gets 180 Ringing then
200 OK with an SDP answer; the call's RTP stream reports RFC 4733 digits
through ``MediaStream.on_dtmf``, logged with :mod:`twisted.logger` as
``call <Call-ID>: DTMF <digit>``.  ``--echo`` also sends each digit back to
the caller.  ``--hangup-after`` ends each call with BYE after that many
seconds (otherwise the caller hangs up).  MESSAGE requests are logged and
answered 200.

It prints ``ready HOST:PORT`` once listening and runs until SIGINT/SIGTERM
(or until ``--calls`` calls have ended), then prints ``answered=N``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` needs neither network nor display)."""
    p = argparse.ArgumentParser(description="Answer every call; log (and optionally echo) DTMF digits.")
    p.add_argument("--bind", default="127.0.0.1:0", metavar="HOST[:PORT]", help="local address (default 127.0.0.1:0)")
    p.add_argument("--account", metavar="FILE", help="account file (TOML); needed for --register")
    p.add_argument("--register", action="store_true", help="register the account before answering")
    p.add_argument("--echo", action="store_true", help="send each received digit back to the caller")
    p.add_argument("--hangup-after", type=float, default=0.0, metavar="SECONDS",
                   help="hang up each call after this long (0: wait for the caller's BYE)")
    p.add_argument("--calls", type=int, default=0, metavar="N", help="exit after N calls ended (0: run until signalled)")
    return p.parse_args(argv)


def main(reactor: Any, args: argparse.Namespace) -> Any:
    """Run the answerer; the Deferred fires with the exit status once stopped."""
    from twisted.internet import defer
    from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

    import txsipua
    from txsipua import Call, IncomingCall
    from txsipua.cli.main import describe_error, on_stop_signals, parse_bind

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    log = Logger(namespace="auto_answer")
    account = txsipua.Account.from_toml(args.account) if args.account else None
    ua = txsipua.UserAgent(reactor, txsipua.Configuration(), account,
                           txsipua.UDPTransport(reactor, *parse_bind(args.bind)))
    answered = [0]
    ended = [0]
    finished: defer.Deferred[None] = defer.Deferred()

    def finish() -> None:
        if not finished.called:
            finished.callback(None)

    def on_call(incoming: IncomingCall) -> None:
        log.info("call from {caller}", caller=str(incoming.caller.uri))
        incoming.ring()
        call: Call = incoming.answer()
        answered[0] += 1
        call_id = call.call_id
        if call.media is not None:
            def on_dtmf(digit: str) -> None:
                log.info("call {call_id}: DTMF {digit}", call_id=call_id, digit=digit)
                if args.echo:
                    call.send_dtmf(digit)

            call.media.on_dtmf = on_dtmf
        if args.hangup_after:
            timer = reactor.callLater(args.hangup_after, call.hangup)
            call.ended.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])

        def on_end(reason: Any) -> Any:
            ended[0] += 1
            log.info("call {call_id} ended ({reason})", call_id=call_id, reason=reason)
            if args.calls and ended[0] >= args.calls:
                reactor.callLater(0, finish)
            return reason

        call.ended.addBoth(on_end)

    def on_request(request: Any, respond: Any) -> None:
        if request.method == "MESSAGE":
            log.info("MESSAGE from {sender}: {text}", sender=str(request.from_.uri),
                     text=request.body.decode("utf-8", "replace"))
            respond(200)
        else:
            respond(501)

    ua.on_incoming_call = on_call
    ua.on_request = on_request

    @defer.inlineCallbacks
    def run() -> Any:
        # SIGINT/SIGTERM end the run cleanly at any step (installed before anything is sent):
        # while registering, the REGISTER completes and is undone (Expires: 0); live calls
        # get a BYE from ua.stop()
        yield on_stop_signals(reactor, finish)  # fires once in place
        host, port = yield ua.start()
        reg = None
        if args.register:
            if account is None:
                print("--register needs --account", file=sys.stderr)
                yield ua.stop()
                return 2
            reg = ua.registration()
            try:
                yield reg.start()
            except Exception as e:
                print(describe_error(e), file=sys.stderr)
                yield ua.stop()
                return 1
        print(f"ready {host}:{port}", flush=True)
        yield finished
        if reg is not None:
            yield reg.stop()
            if reg.unregister_error is not None:
                print(describe_error(reg.unregister_error), file=sys.stderr)
        yield ua.stop()
        print(f"answered={answered[0]}", flush=True)
        return 0

    return run()


if __name__ == "__main__":
    import contextlib

    from twisted.internet import task

    arguments = parse_args()
    status: list[int] = []
    with contextlib.suppress(SystemExit):  # react() exits by itself; keep our own status
        task.react(lambda reactor: main(reactor, arguments).addCallback(status.append))
    sys.exit(status[0] if status else 1)
