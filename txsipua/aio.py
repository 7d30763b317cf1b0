"""txsipua from asyncio: Twisted's asyncio reactor on the running loop, Deferreds as awaitables.

The whole user API (:class:`~txsipua.ua.useragent.UserAgent`, calls,
registrations) runs on Twisted's reactor; :mod:`twisted.internet.asyncioreactor`
makes that reactor a guest of an asyncio event loop, so one program can
``await`` txsipua and any asyncio library side by side::

    import asyncio
    import txsipua
    from txsipua import aio

    async def main() -> None:
        reactor = aio.start_reactor()          # first thing: before anything imports the reactor
        ua = txsipua.UserAgent(reactor, txsipua.Configuration(), txsipua.Account("alice", "example.com"),
                               txsipua.UDPTransport(reactor, "127.0.0.1", 0))
        await aio.wait(ua.start())
        call = await aio.wait(ua.call("sip:bob@127.0.0.1:5080"))
        await asyncio.sleep(1)
        await aio.wait(call.hangup())
        await aio.wait(ua.stop())

    asyncio.run(main())

- :func:`start_reactor` installs the asyncio reactor on the *running* loop
  and starts it without blocking (``asyncio.run`` keeps driving the loop;
  never call ``reactor.run()`` then).  It must run before anything imports
  ``twisted.internet.reactor`` (the default reactor would be installed).
- :func:`wait` turns a Deferred into an awaitable of the running loop
  (``Deferred.asFuture`` on a Deferred that the given one feeds: cancelling
  the await never cancels the given Deferred, except ``ua.call()``'s, whose
  cancellation hangs the call up); :func:`deferred` turns a coroutine or future into
  a Deferred (``Deferred.fromFuture``) for the places that take one, such as
  a bot of :class:`~txsipua.cli.service.UserAgentService` or a callback chain.

Nothing here stops the loop: when the coroutine given to ``asyncio.run``
returns, the loop is closed; stop the user agents (``ua.stop()``) before that
so calls are hung up and registrations removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["deferred", "start_reactor", "wait"]

T = TypeVar("T")


def start_reactor(loop: asyncio.AbstractEventLoop | None = None) -> Any:
    """Install Twisted's asyncio reactor on ``loop`` (default: the running loop) and start it.

    Returns:
        The reactor (provides ``IReactorTime``, ``IReactorUDP``, ``IReactorTCP``...).
        Called again on the same loop, the reactor already installed.

    Raises:
        RuntimeError: no running loop and none given, or another reactor is
            already installed (something imported ``twisted.internet.reactor`` first).
    """
    import sys

    loop = loop or asyncio.get_running_loop()
    existing = sys.modules.get("twisted.internet.reactor")
    if existing is not None:
        if getattr(existing, "_asyncioEventloop", None) is loop:
            return existing
        raise RuntimeError(f"a reactor is already installed ({type(existing).__name__}): call "
                           "start_reactor() before anything imports twisted.internet.reactor")
    from twisted.internet import asyncioreactor

    install: Any = asyncioreactor.install  # untyped in Twisted
    install(loop)
    from twisted.internet import reactor

    # what reactor.run() does before it blocks in the loop: fire the "startup" triggers, and
    # mark the reactor running (callWhenRunning callbacks run now)
    reactor.startRunning(installSignalHandlers=False)
    return reactor


async def wait(d: Deferred[T]) -> T:
    """Await a Deferred from asyncio code, leaving ``d`` itself alone.

    The await is on a separate Deferred that ``d`` feeds (through
    ``asFuture`` on the running loop), so cancelling the await (the timeout
    of ``asyncio.wait_for``, a cancelled task) cancels only that separate
    Deferred: ``d`` keeps waiting and can still be awaited again or fire its
    other callbacks (``call.ended`` stays live, ``call.hangup()`` still sends
    its BYE).  ``d``'s result passes on unchanged to its later callbacks,
    except a failure that this await raised, which counts as handled.

    One exception: the Deferred of ``ua.call()`` (nobody else holds that
    call) is cancelled with the await, which hangs the call up.

    Raises:
        whatever the Deferred fails with (the Failure's exception).
    """
    def cancelled(_: Deferred[T]) -> None:
        # ua.call()'s Deferred is the awaiting code's alone: giving up the await gives up the call
        from txsipua.ua.call import is_call_attempt

        if is_call_attempt(d) and not d.called:
            d.cancel()

    relay: Deferred[T] = Deferred(canceller=cancelled)

    def feed(result: Any) -> Any:
        if relay.called:  # the await was cancelled: nobody took the result
            return result
        if isinstance(result, Failure):
            relay.errback(result)
            return None
        relay.callback(result)
        return result

    d.addBoth(feed)
    return await relay.asFuture(asyncio.get_running_loop())


def deferred(awaitable: Awaitable[T]) -> Deferred[T]:
    """A Deferred for an asyncio coroutine or future (``Deferred.fromFuture``), scheduled on the running loop."""
    return Deferred.fromFuture(asyncio.ensure_future(awaitable))
