"""Embedding txsipua in a GUI event loop: Tk through ``twisted.internet.tksupport``, or asyncio.

Tk (needs a display)::

    python examples/gui_loop.py --account alice.toml --target sip:bob@example.com

opens a small softphone: a target field; Call, Answer, Hang up, Hold/Resume and
Mute buttons; a DTMF keypad; a status line and the registration state (with
``--register``).  With a microphone and a speaker (PortAudio through
``sounddevice``, ``pip install 'txsipua[device]'``; ``--input-device`` and
``--output-device`` choose them, by PortAudio index or name) the call's audio
goes through them (:class:`txsipua.ua.device.AudioDevice`); without, the
calls still work, silently.  ``tksupport.install(root)`` lets the Twisted
reactor drive Tk's event loop, so button callbacks call the user API directly
(``ua.place_call()``, ``call.hangup()``, ``call.hold()``, ``call.send_dtmf()``)
and Deferred callbacks update the widgets: nothing blocks, no threads (the
PortAudio callback hands its frames to the reactor thread).  Closing the
window hangs up, unregisters, stops the UA and the reactor.  All the logic is
in :class:`Softphone`, which needs no display (the tests drive it).

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
    p.add_argument("--register", action="store_true", help="register with the account's registrar (Tk)")
    p.add_argument("--input-device", default=None, metavar="DEVICE", help="microphone (PortAudio index or name)")
    p.add_argument("--output-device", default=None, metavar="DEVICE", help="speaker (PortAudio index or name)")
    return p.parse_args(argv)


class Softphone:
    """The glue between widgets (or any front end) and the user API; no GUI code inside.

    One call at a time: dial out or answer the one ringing; hold, DTMF and
    mute on the current call; the registration's state for the status bar.

    Args:
        ua: a :class:`~txsipua.ua.useragent.UserAgent` (started before use).
        show: called with each status line for the user.
        device: an :class:`~txsipua.ua.device.AudioDevice` the current call's
            audio goes through once connected, or None (no sound).
    """

    def __init__(self, ua: Any, show: Any, device: Any = None) -> None:
        self.ua = ua
        self.show = show
        self.device = device
        self.call: Any = None
        self.incoming: Any = None  # a call ringing here, waiting for answer()
        self.connected = False  # the current call was answered
        self.held = False
        self.registration: Any = None
        ua.on_incoming_call = self._ringing

    # --- registration ----------------------------------------------------------
    def register(self, expires: int = 600) -> Any:
        """Register and keep refreshing; returns the first REGISTER's Deferred."""
        self.registration = self.ua.registration(expires)
        d = self.registration.start()
        d.addCallbacks(lambda _: self.show("registered"), lambda f: self.show(f"registration failed: {f.value}"))
        return d

    @property
    def registration_state(self) -> str:
        """``"not registered"`` or the registration's state (``"registered"``, ``"refreshing"``...)."""
        return "not registered" if self.registration is None else str(self.registration.state.value)

    # --- calls -------------------------------------------------------------------
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
        self.show(f"calling {target}...")
        call.on_progress = lambda r: self.show(f"{r.status} {r.reason}")
        self._follow(call)
        call.answered.addCallbacks(lambda _: self._connected(call), lambda f: self.show(f"failed: {f.value}"))
        call.answered.addErrback(lambda f: None)

    def _ringing(self, incoming: Any) -> None:
        if self.call is not None:
            incoming.reject(486)  # busy: one call at a time
            return
        self.incoming = incoming
        incoming.ring()
        self.show(f"incoming call from {incoming.caller.uri}")
        self._follow(incoming.call)

    def answer(self) -> None:
        """Answer the ringing call (200 with SDP)."""
        incoming, self.incoming = self.incoming, None
        if incoming is None or not incoming.pending:
            self.show("no call to answer")
            return
        call = incoming.answer()
        if not call.ended.called:
            self._connected(call)

    def hang_up(self) -> Any:
        """CANCEL, BYE or decline (603) as fits; returns the hangup Deferred (or None when idle)."""
        if self.incoming is not None and self.incoming.pending:
            incoming, self.incoming = self.incoming, None
            incoming.reject(603)
            return None
        if self.call is None:
            return None
        return self.call.hangup()

    def toggle_hold(self) -> Any:
        """Hold (re-INVITE sendonly) or resume; returns the re-INVITE's Deferred, or None when not connected."""
        if self.call is None or not self.connected:
            self.show("no call to hold")
            return None
        call, holding = self.call, not self.held
        d = call.hold() if holding else call.resume()

        def done(response: Any) -> Any:
            if 200 <= response.status < 300:
                self.held = holding
                self.show("on hold" if holding else "resumed")
            else:
                self.show(f"{'hold' if holding else 'resume'} refused: {response.status}")
            return response

        d.addCallbacks(done, lambda f: self.show(f"hold failed: {f.value}"))
        return d

    def dtmf(self, digit: str) -> Any:
        """Send one DTMF digit (RFC 4733) on the current call; the Deferred, or None when not connected."""
        if self.call is None or not self.connected:
            return None
        d = self.call.send_dtmf(digit)
        d.addErrback(lambda f: self.show(f"DTMF failed: {f.value}"))
        return d

    def toggle_mute(self) -> bool:
        """Mute or unmute the microphone; returns whether it is now muted (False without a device)."""
        if self.device is None:
            return False
        self.device.muted = not self.device.muted
        self.show("muted" if self.device.muted else "unmuted")
        return bool(self.device.muted)

    # --- what the calls say ------------------------------------------------------
    def _follow(self, call: Any) -> None:
        self.call = call
        self.connected = self.held = False

        def ended(reason: Any) -> Any:
            if self.call is call:
                self.call = None
                self.incoming = None
                self.connected = self.held = False
                if self.device is not None:
                    self.device.disconnect()
                self.show(f"call ended ({reason})")
            return reason

        call.ended.addBoth(ended)

    def _connected(self, call: Any) -> None:
        self.connected = True
        self.show("connected")
        if self.device is not None and call.audio is not None:
            try:
                self.device.connect(call.audio)
            except Exception as e:
                self.show(f"no sound: {e}")


def audio_device(reactor: Any, args: argparse.Namespace) -> Any:
    """An AudioDevice when sounddevice finds a microphone and a speaker, else None (calls stay silent)."""
    from txsipua.media.audio import AudioError
    from txsipua.ua.device import AudioDevice, list_devices

    try:
        devices = list_devices()
    except AudioError:
        return None
    if not any(d.inputs for d in devices) or not any(d.outputs for d in devices):
        return None

    def number(text: str | None) -> Any:
        return int(text) if text is not None and text.isdigit() else text

    return AudioDevice(reactor, input_device=number(args.input_device), output_device=number(args.output_device))


def build_window(root: Any, phone: Softphone, target_text: str) -> dict[str, Any]:
    """Lay out the softphone's widgets in ``root``; returns them by name (for tests under Xvfb)."""
    import tkinter as tk

    status = tk.StringVar(value="starting...")
    registration = tk.StringVar(value=phone.registration_state)
    target = tk.StringVar(value=target_text)
    tk.Entry(root, textvariable=target, width=40).pack(padx=8, pady=4)
    buttons = tk.Frame(root)
    widgets: dict[str, Any] = {"status": status, "registration": registration, "target": target}
    for name, text, command in (
        ("call", "Call", lambda: phone.dial(target.get())),
        ("answer", "Answer", phone.answer),
        ("hangup", "Hang up", phone.hang_up),
        ("hold", "Hold/Resume", phone.toggle_hold),
        ("mute", "Mute", phone.toggle_mute),
    ):
        widgets[name] = tk.Button(buttons, text=text, command=command)
        widgets[name].pack(side=tk.LEFT)
    buttons.pack()
    keypad = tk.Frame(root)
    for i, digit in enumerate("123456789*0#"):
        button = tk.Button(keypad, text=digit, width=3, command=lambda d=digit: phone.dtmf(d))
        button.grid(row=i // 3, column=i % 3)
        widgets[f"key{digit}"] = button
    keypad.pack(pady=4)
    tk.Label(root, textvariable=status).pack(padx=8, pady=2)
    tk.Label(root, textvariable=registration).pack(padx=8, pady=2)
    phone.show = status.set
    return widgets


def run_tk(args: argparse.Namespace) -> int:
    """The Tk front end; returns the exit status when the window closes."""
    import tkinter as tk

    from twisted.internet import reactor, tksupport

    import txsipua
    from txsipua.cli.main import on_stop_signals, parse_bind

    root = tk.Tk()
    root.title("txsipua")
    ua = txsipua.UserAgent(reactor, txsipua.Configuration(), txsipua.Account.from_toml(args.account),
                           txsipua.UDPTransport(reactor, *parse_bind(args.bind)))
    phone = Softphone(ua, print, device=audio_device(reactor, args))
    widgets = build_window(root, phone, args.target)
    status, registration = widgets["status"], widgets["registration"]

    def poll() -> None:  # the registration refreshes by itself: show its state twice a second
        registration.set(f"registration: {phone.registration_state}")
        root.after(500, poll)

    poll()

    def close() -> None:
        d = ua.stop()  # hangs up live calls first
        d.addBoth(lambda _: reactor.stop())

    root.protocol("WM_DELETE_WINDOW", close)
    on_stop_signals(reactor, close)  # SIGINT/SIGTERM: as closing the window (CANCEL or BYE first)
    tksupport.install(root)

    def started(addr: Any) -> None:
        status.set(f"ready on {addr[0]}:{addr[1]}")
        if args.register:
            phone.register()

    ua.start().addCallbacks(started, lambda f: status.set(f"cannot listen: {f.value}"))
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
