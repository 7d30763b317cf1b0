"""A call placed from an asyncio program: ``asyncio.run`` drives Twisted's asyncio reactor.

::

    python examples/asyncio_call.py                       # callee and caller in this process
    python examples/asyncio_call.py --target sip:bob@127.0.0.1:5080 --account alice.toml

Without ``--target`` the program starts its own callee on 127.0.0.1 (a second
:class:`txsipua.UserAgent` that lets the call ring for a moment, with
``asyncio.sleep``, before it answers), then calls it, stays up
``--duration`` seconds, hangs up and prints the Call-ID and how the call
ended.  Everything is awaited from coroutines: :func:`txsipua.aio.wait`
turns the user API's Deferreds into awaitables (``Deferred.asFuture``) and
:func:`txsipua.aio.deferred` turns a coroutine into a Deferred
(``Deferred.fromFuture``) where Twisted code expects one.  Exit status 0 when
the call was answered and hung up.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` needs no network and installs no reactor)."""
    p = argparse.ArgumentParser(description="Place a call from asyncio.run (Twisted's asyncio reactor).")
    p.add_argument("--target", help="SIP URI to call (default: a callee started in this process)")
    p.add_argument("--account", metavar="FILE", help="account file (TOML) for the caller")
    p.add_argument("--bind", default="127.0.0.1", metavar="HOST", help="local address (default 127.0.0.1)")
    p.add_argument("--duration", type=float, default=0.3, metavar="SECONDS", help="how long the call stays up")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    """Run the call; returns the exit status."""
    from txsipua import aio

    reactor = aio.start_reactor()  # before anything imports twisted.internet.reactor
    import txsipua

    config = txsipua.Configuration(media=False)
    callee = None
    target = args.target
    if target is None:
        callee = txsipua.UserAgent(reactor, config, txsipua.Account("bob", args.bind),
                                   txsipua.UDPTransport(reactor, args.bind, 0))

        async def ring_then_answer(incoming: Any) -> None:
            await asyncio.sleep(0.1)  # plain asyncio code deciding about a Twisted-side call
            incoming.answer()

        def on_incoming(incoming: Any) -> None:
            aio.deferred(ring_then_answer(incoming))

        callee.on_incoming_call = on_incoming
        host, port = await aio.wait(callee.start())
        target = f"sip:bob@{host}:{port}"
    account = txsipua.Account.from_toml(args.account) if args.account else txsipua.Account("alice", args.bind)
    caller = txsipua.UserAgent(reactor, config, account, txsipua.UDPTransport(reactor, args.bind, 0))
    await aio.wait(caller.start())
    status = 1
    try:
        call = await aio.wait(caller.call(target))
        print(f"answered; Call-ID {call.call_id}", flush=True)
        await asyncio.sleep(args.duration)
        reason = await aio.wait(call.hangup())
        print(f"call ended: {reason}", flush=True)
        status = 0
    except txsipua.SIPError as e:
        print(f"call failed: {e}", file=sys.stderr, flush=True)
    finally:
        await aio.wait(caller.stop())
        if callee is not None:
            await aio.wait(callee.stop())
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
