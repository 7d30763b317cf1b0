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


CANCEL_SCRIPT = textwrap.dedent('''
    import asyncio
    from txsipua import aio

    async def main():
        reactor = aio.start_reactor()
        import txsipua
        config = txsipua.Configuration(media=False)
        callee = txsipua.UserAgent(reactor, config, txsipua.Account("bob", "127.0.0.1"),
                                   txsipua.UDPTransport(reactor, "127.0.0.1", 0))
        ends = []

        def ring(incoming):
            ends.append(incoming.call.ended)
            incoming.ring()
            reactor.callLater(1.0, lambda: incoming.answer() if incoming.pending else None)

        callee.on_incoming_call = ring
        host, port = await aio.wait(callee.start())
        caller = txsipua.UserAgent(reactor, config, txsipua.Account("alice", "127.0.0.1"),
                                   txsipua.UDPTransport(reactor, "127.0.0.1", 0))
        await aio.wait(caller.start())
        try:
            await asyncio.wait_for(aio.wait(caller.call(f"sip:bob@{host}:{port}")), 0.5)
        except asyncio.TimeoutError:
            print("timed out", flush=True)
        print("callee:", await asyncio.wait_for(aio.wait(ends[0]), 5), flush=True)
        await asyncio.sleep(1.2)  # past the callee's answer, which finds nothing to answer
        print("caller calls:", len(caller.calls), "callee calls:", len(callee.calls), flush=True)
        await aio.wait(caller.stop())
        await aio.wait(callee.stop())

    asyncio.run(main())
''')


def test_a_timed_out_wait_on_ua_call_cancels_the_call() -> None:
    """``wait_for(aio.wait(ua.call(...)), 0.5)`` timing out while the callee rings: nobody else
    holds that call, so it is cancelled (CANCEL; the callee's call ends "cancelled") and nothing
    is left in ``caller.calls`` when the callee tries to answer at 1 s."""
    proc = subprocess.run([sys.executable, "-c", CANCEL_SCRIPT], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "timed out", "callee: cancelled", "caller calls: 0 callee calls: 0",
    ], proc.stdout + proc.stderr
