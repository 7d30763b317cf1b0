"""A headless SIP client: register, call, stay up a moment, hang up, unregister.

Everything comes from an account file (TOML, see README.md)::

    python examples/headless_client.py --account alice.toml sip:bob@example.com --duration 5

Steps, each a Deferred of the user API (re-exported by :mod:`txsipua`):

1. ``UserAgent(reactor, Configuration(), account, UDPTransport(reactor, host, port))``
   and ``ua.start()`` listen on UDP.
2. ``ua.registration(expires).start()`` registers (answering a 401 with the
   account's credentials for that realm) and keeps refreshing by itself.
3. ``ua.call(target)`` fires with the answered :class:`~txsipua.ua.call.Call`
   (407/401 challenges answered, SDP negotiated, ACK sent).
4. after ``--duration`` seconds ``call.hangup()`` sends BYE.
5. ``registration.stop()`` unregisters (Expires: 0) and ``ua.stop()`` closes.

``--no-register`` skips steps 2 and 5 (for peers that are not registrars).
Exit status: 0 on success, 1 with a one-line reason otherwise.
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
    from txsipua.cli.main import describe_error, parse_bind

    @defer.inlineCallbacks
    def run() -> Any:
        ua = txsipua.UserAgent(reactor, txsipua.Configuration(), txsipua.Account.from_toml(args.account),
                               txsipua.UDPTransport(reactor, *parse_bind(args.bind)))
        host, port = yield ua.start()
        print(f"listening on {host}:{port}", flush=True)
        reg = None
        try:
            if not args.no_register:
                reg = ua.registration(args.expires)
                result = yield reg.start()
                print(f"registered for {result.expires} s", flush=True)
            call = yield ua.call(args.target)
            codec = call.media_params.codec.name if call.media_params else "no media"
            print(f"answered ({codec}); Call-ID {call.call_id}", flush=True)
            ended_early = []
            call.ended.addCallback(lambda reason: ended_early.append(reason) or reason)
            yield defer.DeferredList([sleep(reactor, args.duration), call.ended],
                                     fireOnOneCallback=True, consumeErrors=True)
            if ended_early:
                print(f"the peer hung up ({ended_early[0]})", flush=True)
            else:
                reason = yield call.hangup()
                print(f"hung up ({reason})", flush=True)
            if reg is not None:
                yield reg.stop()
                print("unregistered", flush=True)
            return 0
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
