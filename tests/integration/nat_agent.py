"""A user agent for the NAT tests (tests/integration/test_nat.py), run inside a network namespace.

``register``: bind, register ``--user`` at ``--registrar`` and stay registered,
answering every call, until ``--lifetime`` runs out or SIGTERM; one JSON
object per line on stdout for every registration state change
(``{"event": "state", "state": ..., "t": ..., "contact": ...}``) and every
call (``{"event": "incoming", ...}``).  ``t`` is ``time.time()``, comparable
between processes of one machine.

``call``: call ``--target`` once and print ``{"event": "answered"}`` (then
hang up) or ``{"event": "failed", "error": ...}``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

from twisted.internet import defer, task

from txsipua.core.transaction import Timers
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.transports import TCPTransport, UDPTransport
from txsipua.ua.useragent import UserAgent


def emit(**fields: Any) -> None:
    print(json.dumps({"t": time.time(), **fields}), flush=True)


def build(reactor: Any, args: argparse.Namespace) -> UserAgent:
    transport = (TCPTransport if args.transport == "tcp" else UDPTransport)(reactor, args.bind, args.port)
    config = Configuration(
        media=False,
        timers=Timers(t1=args.t1, t2=max(4 * args.t1, 0.5), t4=1.0, d=1.0),
        keepalive_interval=args.keepalive,
        keepalive_stun=args.stun,
        keepalive_timeout=args.keepalive_timeout,
        registration_retry=args.retry,
    )
    params = ";transport=tcp" if args.transport == "tcp" else ""
    account = Account(user=args.user, domain=args.domain, registrar=f"sip:{args.registrar}{params}")
    return UserAgent(reactor, config, account, transport)


async def register(reactor: Any, args: argparse.Namespace) -> None:
    ua = build(reactor, args)
    await ua.start()
    reg = ua.registration(args.expires)

    def changed(change: Any) -> None:
        emit(event="state", state=change.state.value, previous=change.previous.value, input=change.input.value,
             error=str(change.error) if change.error else None, contact=str(ua.core.contact_uri()),
             next_attempt=change.next_attempt, now=reactor.seconds())

    reg.on_state_change = changed

    def incoming(call: Any) -> None:
        emit(event="incoming", source=str(call.request.headers.get("From")))
        call.answer()

    ua.on_incoming_call = incoming
    done: defer.Deferred[None] = defer.Deferred()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: reactor.callFromThread(lambda: done.called or done.callback(None)))
    reactor.callLater(args.lifetime, lambda: done.called or done.callback(None))
    try:
        await reg.start()
    except Exception as e:  # noqa: BLE001 - reported; the registration retries on its own
        emit(event="first-failure", error=str(e))
    await done
    reg.abandon()
    await ua.stop(grace=0.5)


async def call(reactor: Any, args: argparse.Namespace) -> None:
    ua = build(reactor, args)
    await ua.start()
    try:
        answered = await ua.call(args.target)
    except Exception as e:  # noqa: BLE001 - the outcome is the test's to judge
        emit(event="failed", error=f"{type(e).__name__}: {e}")
    else:
        emit(event="answered")
        await answered.hangup()
    await ua.stop(grace=1.0)


def main(reactor: Any) -> defer.Deferred[None]:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["register", "call"])
    p.add_argument("--user", default="caller")
    p.add_argument("--domain", default="example.com")
    p.add_argument("--registrar", default="127.0.0.1:5060")
    p.add_argument("--target", default="")
    p.add_argument("--transport", default="udp", choices=["udp", "tcp"])
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--expires", type=int, default=3600)
    p.add_argument("--keepalive", type=float, default=None)
    p.add_argument("--keepalive-timeout", type=float, default=10.0)
    p.add_argument("--stun", action="store_true")
    p.add_argument("--retry", type=float, default=30.0)
    p.add_argument("--t1", type=float, default=0.5)
    p.add_argument("--lifetime", type=float, default=60.0)
    args = p.parse_args()
    run = register if args.role == "register" else call
    return defer.ensureDeferred(run(reactor, args))


if __name__ == "__main__":
    task.react(main)
    sys.exit(0)
