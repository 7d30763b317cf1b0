"""The Tk example's Softphone logic, without a display: two softphones on loopback through the test proxy.

Both register (401), alice dials bob, bob's softphone rings and answers, the
call's audio goes through alice's (fake) PortAudio device, alice holds and
resumes, her keypad's digits reach bob's collect_digits, mute stops the
microphone, and hanging up ends both sides and closes the device.  The
window itself is built on $DISPLAY or on an Xvfb the test starts.
"""

from __future__ import annotations

import importlib.util
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from loopback import account, eventually, settled, within

from txsipua.ua.device import AudioDevice

ROOT = Path(__file__).resolve().parents[2]


def load_gui() -> Any:
    spec = importlib.util.spec_from_file_location("example_gui_loop", ROOT / "examples" / "gui_loop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeDevice:
    """A PortAudio stand-in: the stream factory, and the stream it returns."""

    def __init__(self) -> None:
        self.running = False
        self.opened = 0
        self.callback: Any = None

    def __call__(self, **kwargs: Any) -> FakeDevice:
        self.opened += 1
        self.callback = kwargs["callback"]
        return self

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        pass


@pytest_twisted.inlineCallbacks
def test_two_softphones_register_call_hold_dtmf_mute_and_hang_up(reactor: Any, proxy: Any, make_ua: Any) -> Any:
    """The whole softphone flow through Softphone's methods, as the buttons call them."""
    gui = load_gui()
    alice_ua = yield make_ua(account("alice", proxy))
    bob_ua = yield make_ua(account("bob", proxy))
    fake = FakeDevice()
    alice_lines: list[str] = []
    bob_lines: list[str] = []
    alice = gui.Softphone(alice_ua, alice_lines.append, device=AudioDevice(reactor, stream_factory=fake))
    bob = gui.Softphone(bob_ua, bob_lines.append)
    assert alice.registration_state == "not registered"
    yield within(reactor, alice.register(600))
    yield within(reactor, bob.register(600))
    assert alice.registration_state == "registered" and "registered" in bob_lines
    alice.dial("sip:bob@example.com")
    yield eventually(reactor, lambda: bob.incoming is not None, 3.0, "bob rings")
    assert bob_lines[-1].startswith("incoming call from sip:alice@example.com")
    yield eventually(reactor, lambda: "180 Ringing" in alice_lines, 3.0, "alice hears ringing")
    bob.answer()
    yield eventually(reactor, lambda: alice.connected and bob.connected, 3.0, "connected both ways")
    assert fake.running and fake.opened == 1  # alice's call goes through her device
    held = yield within(reactor, alice.toggle_hold())
    assert held.status == 200 and alice.held and alice_lines[-1] == "on hold"
    yield within(reactor, alice.toggle_hold())
    assert not alice.held and alice_lines[-1] == "resumed"
    collecting = bob.call.audio.collect_digits(max_digits=3, timeout=3.0)
    for digit in "5*9":
        yield within(reactor, alice.dtmf(digit))
    digits = yield within(reactor, collecting)
    assert digits == "5*9"
    assert alice.toggle_mute() is True and alice.device.muted
    assert alice.toggle_mute() is False
    assert bob.dtmf("1") is not None and gui.Softphone(bob_ua, bob_lines.append).dtmf("1") is None
    reason = yield within(reactor, alice.hang_up())
    assert reason == "hangup"
    yield eventually(reactor, lambda: bob.call is None, 3.0, "bob's call ends")
    assert alice_lines[-1] == "call ended (hangup)" and bob_lines[-1] == "call ended (bye)"
    assert not fake.running and alice.device.audio is None
    assert alice.hang_up() is None and alice.toggle_hold() is None
    yield settled(reactor, alice_ua, bob_ua)


@pytest_twisted.inlineCallbacks
def test_declining_and_busy(reactor: Any, proxy: Any, make_ua: Any) -> Any:
    """Hang up while ringing declines (603); a second call while one rings gets 486."""
    from txsipua.errors import CallFailed

    gui = load_gui()
    alice_ua = yield make_ua(account("alice", proxy))
    bob_ua = yield make_ua(account("bob", proxy))
    lines: list[str] = []
    alice = gui.Softphone(alice_ua, lines.append)
    bob = gui.Softphone(bob_ua, lambda line: None)
    yield within(reactor, bob.register(600))
    alice.dial("sip:bob@example.com")
    yield eventually(reactor, lambda: bob.incoming is not None, 3.0, "bob rings")
    second = alice_ua.place_call("sip:bob@example.com")
    failure = yield within(reactor, second.answered.addErrback(lambda f: f.value))
    assert isinstance(failure, CallFailed) and failure.response.status == 486
    assert bob.hang_up() is None
    yield eventually(reactor, lambda: alice.call is None, 3.0, "alice's call ends")
    assert any(line.startswith("failed:") and "603" in line for line in lines), lines
    yield settled(reactor, alice_ua, bob_ua)


@pytest.fixture
def display() -> Iterator[str]:
    """An X display for Tk: $DISPLAY if set, else an Xvfb started here (stopped by PID); skipped without either.

    Under CI (``CI`` set) a missing Xvfb fails instead: .ci/run installs it.
    """
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        if os.environ.get("CI"):
            pytest.fail("Xvfb is not installed (.ci/run installs xvfb)")
        pytest.skip("no display and no Xvfb to build the Tk window")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(write_fd), "-nolisten", "tcp", "-screen", "0", "640x480x24"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 10.0)
        number = os.read(read_fd, 32).decode().strip() if ready else ""
        if not number:
            pytest.fail("Xvfb did not report its display within 10 s")
        yield f":{number}"
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_window_is_built_with_every_control(display: str) -> None:
    """build_window lays out the buttons and the keypad, wired to the Softphone (a real Tk window)."""
    import tkinter

    gui = load_gui()

    class UA:
        on_incoming_call = None

    root = tkinter.Tk(screenName=display)
    try:
        phone = gui.Softphone(UA(), print)
        widgets = gui.build_window(root, phone, "sip:bob@example.com")
        for name in ("call", "answer", "hangup", "hold", "mute", "key1", "key#", "key*"):
            assert name in widgets
        widgets["answer"].invoke()
        assert widgets["status"].get() == "no call to answer"
    finally:
        root.destroy()
