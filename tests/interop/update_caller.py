"""A txsipua caller for interop tests: call TARGET, send an UPDATE putting it on hold, hang up.

Run as ``python update_caller.py ACCOUNT.toml TARGET``.  Prints one line per request sent,
``SENT <method> <host>:<port> <Route value>``, then ``UPDATE <status> <direction>``; exits 0
when the call was answered, the UPDATE got a 2xx and the BYE went, 1 otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import defer, task

from txsipua.sip.message import parse_message
from txsipua.ua.account import Account
from txsipua.ua.config import Configuration
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent


def trace(direction: str, data: bytes, peer: Any) -> None:
    if direction != "send":
        return
    message = parse_message(data)
    if message.is_request:
        route = message.headers.get("Route") or "-"
        print(f"SENT {message.method} {peer[0]}:{peer[1]} {route}", flush=True)  # type: ignore[union-attr]


async def main(reactor: Any, account_path: str, target: str) -> int:
    alice = UserAgent(reactor, Configuration(), Account.from_toml(account_path),
                      UDPTransport(reactor, "127.0.0.1", 0), trace=trace)
    await alice.start()
    try:
        call = await alice.call(target)
        response = await call.update("sendonly")
        direction = call.media_params.direction if call.media_params is not None else "-"
        print(f"UPDATE {response.status} {direction}", flush=True)
        await call.hangup()
        return 0 if 200 <= response.status < 300 else 1
    finally:
        await alice.stop()


if __name__ == "__main__":
    def run(reactor: Any) -> defer.Deferred[None]:
        d = defer.ensureDeferred(main(reactor, sys.argv[1], sys.argv[2]))
        return d.addCallback(lambda code: sys.exit(code) if code else None)

    task.react(run)
