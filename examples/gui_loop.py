"""Embedding txsipua in a GUI event loop: Tk through ``twisted.internet.tksupport``, or asyncio.

Tk (needs a display)::

    python examples/gui_loop.py --account alice.toml --target sip:bob@example.com

opens a small window (target field, Call and Hang up buttons, a status line).
``tksupport.install(root)`` lets the Twisted reactor drive Tk's event loop, so
button callbacks call the user API directly (``ua.place_call()``,
``call.hangup()``) and Deferred callbacks update the widgets: nothing blocks,
no threads.  Closing the window hangs up, stops the UA and the reactor.

asyncio (no display; for Qt-with-asyncio bridges, aiohttp apps, etc.)::

    python examples/gui_loop.py --asyncio --account alice.toml --target sip:bob@example.com

installs ``twisted.internet.asyncioreactor`` on an asyncio event loop *before*
anything imports the reactor, then drives the same user API from an
``async def`` coroutine, awaiting Deferreds with ``Deferred.asFuture(loop)``.

SIGINT or SIGTERM end either variant cleanly
(:func:`txsipua.cli.main.on_stop_signals`): CANCEL while ringing, BYE once
connected, then the UA stops.

Importing this module opens no window and installs no reactor: tkinter and the
reactor are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` needs neither network nor display)."""
    p = argparse.ArgumentParser(description="A one-window softphone (Tk), or the same flow on an asyncio loop.")
    p.add_argument("--account", required=True, metavar="FILE", help="account file (TOML)")
    p.add_argument("--target", default="", help="SIP URI to call (prefilled in the window; required with --asyncio)")
    p.add_argument("--bind", default="127.0.0.1:0", metavar="HOST[:PORT]", help="local address")
    p.add_argument("--asyncio", action="store_true", help="run on an asyncio event loop instead of Tk")
    p.add_argument("--duration", type=float, default=2.0, metavar="SECONDS",
                   help="with --asyncio: how long the call stays up")
    return p.parse_args(argv)


class Softphone:
    """The glue between widgets (or any front end) and the user API; no GUI code inside.

    Args:
        ua: a started :class:`~txsipua.ua.useragent.UserAgent`.
        show: called with each status line for the user.
    """

    def __init__(self, ua: Any, show: Any) -> None:
        self.ua = ua
        self.show = show
        self.call: Any = None
        self.connected = False  # the current call was answered

    def dial(self, target: str) -> None:
        """Start a call; status updates arrive through ``show``."""
        if self.call is not None:
            self.show("already in a call")
            return
        try:
            call = self.ua.place_call(target)
        except Exception as e:
            self.show(f"cannot call: {e}")
            return
        self.call = call
        self.connected = False
        self.show(f"calling {target}...")
        call.on_progress = lambda r: self.show(f"{r.status} {r.reason}")

        def answered(_: Any) -> None:
            self.connected = True
            self.show("connected")

        call.answered.addCallbacks(answered, lambda f: self.show(f"failed: {f.value}"))
        call.answered.addErrback(lambda f: None)

        def ended(reason: Any) -> Any:
            self.call = None
            self.connected = False
            self.show(f"call ended ({reason})")
            return reason

        call.ended.addBoth(ended)

    def hang_up(self) -> Any:
        """CANCEL or BYE as fits; returns the hangup Deferred (or None when idle)."""
        if self.call is None:
            return None
        return self.call.hangup()


def run_tk(args: argparse.Namespace) -> int:
    """The Tk front end; returns the exit status when the window closes."""
    import tkinter as tk

    from twisted.internet import reactor, tksupport

    import txsipua
    from txsipua.cli.main import on_stop_signals, parse_bind

    root = tk.Tk()
    root.title("txsipua")
    status = tk.StringVar(value="starting...")
    target = tk.StringVar(value=args.target)
    tk.Entry(root, textvariable=target, width=40).pack(padx=8, pady=4)
    ua = txsipua.UserAgent(reactor, txsipua.Configuration(), txsipua.Account.from_toml(args.account),
                           txsipua.UDPTransport(reactor, *parse_bind(args.bind)))
    phone = Softphone(ua, status.set)
    buttons = tk.Frame(root)
    tk.Button(buttons, text="Call", command=lambda: phone.dial(target.get())).pack(side=tk.LEFT)
    tk.Button(buttons, text="Hang up", command=phone.hang_up).pack(side=tk.LEFT)
    buttons.pack()
    tk.Label(root, textvariable=status).pack(padx=8, pady=4)

    def close() -> None:
        d = ua.stop()  # hangs up live calls first
        d.addBoth(lambda _: reactor.stop())

    root.protocol("WM_DELETE_WINDOW", close)
    on_stop_signals(reactor, close)  # SIGINT/SIGTERM: as closing the window (CANCEL or BYE first)
    tksupport.install(root)
    ua.start().addCallbacks(lambda addr: status.set(f"ready on {addr[0]}:{addr[1]}"),
                            lambda f: status.set(f"cannot listen: {f.value}"))
    reactor.run()
    tksupport.uninstall()
    return 0


def run_asyncio(args: argparse.Namespace) -> int:
    """The asyncio variant: the same flow from a coroutine; returns the exit status."""
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)  # before anything imports twisted.internet.reactor
    from twisted.internet import reactor

    import txsipua
    from txsipua.cli.main import describe_error, on_stop_signals, parse_bind

    async def flow() -> int:
        ua = txsipua.UserAgent(reactor, txsipua.Configuration(), txsipua.Account.from_toml(args.account),
                               txsipua.UDPTransport(reactor, *parse_bind(args.bind)))
        phone = Softphone(ua, lambda line: print(line, flush=True))
        stopping = asyncio.Event()

        def on_signal() -> None:  # SIGINT/SIGTERM: CANCEL while ringing, BYE once connected
            stopping.set()
            if phone.call is not None and not phone.call.answered.called:
                phone.hang_up()

        await on_stop_signals(reactor, on_signal).asFuture(loop)  # in place before anything is sent
        await ua.start().asFuture(loop)
        try:
            if stopping.is_set():
                return 1
            phone.dial(args.target)
            if phone.call is None:
                return 1
            await phone.call.answered.asFuture(loop)  # fires (with None) either way
            if not phone.connected:
                if stopping.is_set():
                    print("call cancelled", file=sys.stderr, flush=True)
                return 1
            # plain asyncio code runs alongside the reactor
            waits = [loop.create_task(asyncio.sleep(args.duration)), loop.create_task(stopping.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            hanging_up = phone.hang_up()
            if hanging_up is not None:
                await hanging_up.asFuture(loop)
            return 0
        except Exception as e:
            print(describe_error(e), file=sys.stderr, flush=True)
            return 1
        finally:
            await ua.stop().asFuture(loop)

    result: list[int] = []

    def start() -> None:
        task = loop.create_task(flow())
        task.add_done_callback(lambda t: (result.append(t.result()), reactor.stop()))

    reactor.callWhenRunning(start)
    reactor.run()
    return result[0] if result else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the Tk or the asyncio front end."""
    args = parse_args(argv)
    if args.asyncio:
        if not args.target:
            print("--asyncio needs --target", file=sys.stderr)
            return 2
        return run_asyncio(args)
    return run_tk(args)


if __name__ == "__main__":
    sys.exit(main())
