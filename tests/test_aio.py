"""txsipua.aio under asyncio.run, in a subprocess (this test process has its own reactor)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import asyncio
    from txsipua import aio

    async def main():
        reactor = aio.start_reactor()
        import txsipua
        config = txsipua.Configuration(media=False)
        callee = txsipua.UserAgent(reactor, config, txsipua.Account("bob", "127.0.0.1"),
                                   txsipua.UDPTransport(reactor, "127.0.0.1", 0))
        ends = []
        callee.on_incoming_call = lambda incoming: ends.append(incoming.answer().ended)
        host, port = await aio.wait(callee.start())
        caller = txsipua.UserAgent(reactor, config, txsipua.Account("alice", "127.0.0.1"),
                                   txsipua.UDPTransport(reactor, "127.0.0.1", 0))
        await aio.wait(caller.start())
        call = await aio.wait(caller.call(f"sip:bob@{host}:{port}"))
        try:
            await asyncio.wait_for(aio.wait(call.ended), 0.2)
        except asyncio.TimeoutError:
            print("timed out", flush=True)
        print("ended called:", call.ended.called, flush=True)
        print("hangup:", await aio.wait(call.hangup()), flush=True)
        print("callee:", await asyncio.wait_for(aio.wait(ends[0]), 5), flush=True)
        print("ended again:", await aio.wait(call.ended), flush=True)
        await aio.wait(caller.stop())
        await aio.wait(callee.stop())

    asyncio.run(main())
''')


def test_a_timed_out_wait_leaves_the_deferred_alone() -> None:
    """``wait_for(aio.wait(call.ended), 0.2)`` timing out does not cancel ``call.ended``:
    ``hangup()`` still sends the BYE (the callee's call ends with "bye")."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "timed out", "ended called: False", "hangup: hangup", "callee: bye", "ended again: hangup",
    ], proc.stdout + proc.stderr
