"""A headless SIP client: register, call, stay up a moment, hang up, unregister.

Everything comes from an account file (TOML, see README.md)::

    python examples/headless_client.py --account alice.toml sip:bob@example.com --duration 5

Steps, each a Deferred of the user API (re-exported by :mod:`txsipua`):

1. ``UserAgent(reactor, Configuration(), account, UDPTransport(reactor, host, port))``
   and ``ua.start()`` listen on UDP.
2. ``ua.registration(expires).start()`` registers (answering a 401 with the
   account's credentials for that realm) and keeps refreshing by itself.
3. ``ua.place_call(target)`` returns the :class:`~txsipua.ua.call.Call`
   at once; its ``answered`` Deferred fires once answered (407/401
   challenges answered, SDP negotiated, ACK sent).
4. after ``--duration`` seconds ``call.hangup()`` sends BYE.
5. ``registration.stop()`` unregisters (Expires: 0) and ``ua.stop()`` closes.

``--no-register`` skips steps 2 and 5 (for peers that are not registrars).

SIGINT or SIGTERM at any step winds down instead of stopping the reactor
(:func:`txsipua.cli.main.on_stop_signals`): while registering, the REGISTER
completes and is undone; while ringing, ``call.hangup()`` sends CANCEL; once
connected, BYE at once; then the unregistration, as in a normal run.
Exit status: 0 on success (a call hung up early by a signal included), 1 with a
one-line reason otherwise (interrupted before the call was answered included).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` needs neither network nor display)."""
    p = argparse.ArgumentParser(description="Register, call TARGET, hang up after --duration, unregister.")
    p.add_argument("target", help="SIP URI to call, e.g. sip:bob@example.com")
    p.add_argument("--account", required=True, metavar="FILE", help="account file (TOML)")
    p.add_argument("--bind", default="127.0.0.1:0", metavar="HOST[:PORT]", help="local address (default 127.0.0.1:0)")
    p.add_argument("--expires", type=int, default=600, metavar="SECONDS", help="registration expiry to ask for")
    p.add_argument("--duration", type=float, default=3.0, metavar="SECONDS", help="how long the call stays up")
    p.add_argument("--no-register", action="store_true", help="call without registering first")
    return p.parse_args(argv)


def sleep(reactor: Any, seconds: float) -> Any:
    """A Deferred that fires after ``seconds``."""
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


def main(reactor: Any, args: argparse.Namespace) -> Any:
    """Run the client with parsed ``args``; the Deferred fires with the exit status."""
    from twisted.internet import defer

    import txsipua
    from txsipua.cli.main import describe_error, on_stop_signals, parse_bind

    stopping: defer.Deferred[None] = defer.Deferred()  # fires on SIGINT/SIGTERM
    placed: list[Any] = []

    def on_signal() -> None:
        if not stopping.called:
            stopping.callback(None)
        if placed and not placed[0].answered.called:
            placed[0].hangup()  # CANCEL (sent once the callee has answered with a 1xx, §9.1)

    def first(*ds: Any) -> Any:
        """A Deferred that fires when the first of ``ds`` does (errors included)."""
        return defer.DeferredList(list(ds), fireOnOneCallback=True, fireOnOneErrback=True,
                                  consumeErrors=True)

    @defer.inlineCallbacks
    def run() -> Any:
        ua = txsipua.UserAgent(reactor, txsipua.Configuration(), txsipua.Account.from_toml(args.account),
                               txsipua.UDPTransport(reactor, *parse_bind(args.bind)))
        yield on_stop_signals(reactor, on_signal)  # fires once in place; before anything is sent
        host, port = yield ua.start()
        print(f"listening on {host}:{port}", flush=True)
        reg = None
        status = 0
        try:
            if not args.no_register:
                reg = ua.registration(args.expires)
                result = yield reg.start()  # a signal here: it completes, then is undone below
                print(f"registered for {result.expires} s", flush=True)
            if stopping.called:
                print("interrupted", file=sys.stderr, flush=True)
                status = 1
            else:
                call = ua.place_call(args.target)
                placed.append(call)
                try:
                    yield call.answered
                except Exception:
                    if not stopping.called:
                        raise
                    print("call cancelled", file=sys.stderr, flush=True)
                    status = 1
                else:
                    codec = call.media_params.codec.name if call.media_params else "no media"
                    print(f"answered ({codec}); Call-ID {call.call_id}", flush=True)
                    ended_early = []
                    call.ended.addCallback(lambda reason: ended_early.append(reason) or reason)
                    yield first(sleep(reactor, args.duration), call.ended, stopping)
                    if ended_early:
                        print(f"the peer hung up ({ended_early[0]})", flush=True)
                    else:
                        reason = yield call.hangup()
                        print(f"hung up ({reason})", flush=True)
            if reg is not None:
                yield reg.stop()
                if reg.unregister_error is not None:
                    print(describe_error(reg.unregister_error), file=sys.stderr, flush=True)
                    return 1
                print("unregistered", flush=True)
            return status
        except Exception as e:
            print(describe_error(e), file=sys.stderr, flush=True)
            return 1
        finally:
            yield ua.stop()

    return run()


if __name__ == "__main__":
    import contextlib

    from twisted.internet import task

    arguments = parse_args()
    status: list[int] = []
    with contextlib.suppress(SystemExit):  # react() exits by itself; keep our own status
        task.react(lambda reactor: main(reactor, arguments).addCallback(status.append))
    sys.exit(status[0] if status else 1)
