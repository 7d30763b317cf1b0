"""An answering bot (IVR): answer, play a prompt, collect digits, record a message, transfer.

::

    python examples/ivr_bot.py --bind 127.0.0.1:5080 --prompt greeting.wav \\
        --record-dir messages/ --transfer-to sip:desk@example.com

For each incoming call the bot (:class:`IvrBot`) uses ``call.audio``
(:class:`txsipua.ua.audio.CallAudio`):

1. answers (200 with SDP) and waits for the ACK;
2. plays the prompt (a WAV, or a 1 kHz beep without ``--prompt``) with DTMF
   barge-in: a key pressed during the prompt stops it at once;
3. collects up to ``--max-digits`` digits, ended by ``#`` or by the timeouts
   (``collect_digits``: RFC 4733 events and SIP INFO digits alike; the key
   that barged in counts as the first digit);
4. beeps and records the caller's message to ``<record-dir>/<digits or
   "message">-<n>.wav`` for ``--message-seconds`` or until the caller presses
   ``#``, streamed to the file as it comes (flat memory);
5. transfers the caller to ``--transfer-to`` with ``call.transfer(target)``
   (REFER, RFC 3515) when the call has that method, else hangs up (BYE).

Each step prints one line (``ready HOST:PORT``, ``call N from URI``,
``digits D (reason)``, ``recorded PATH``, ``transferred`` / ``hung up``).
``--calls N`` stops after N calls; SIGINT/SIGTERM stop the bot cleanly
(calls in progress get their BYE).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` needs neither network nor sound)."""
    p = argparse.ArgumentParser(description="Answer calls: prompt, collect digits, record a message, transfer.")
    p.add_argument("--bind", default="127.0.0.1:0", metavar="HOST[:PORT]", help="local address")
    p.add_argument("--prompt", metavar="WAV", help="prompt to play (default: a short 1 kHz beep)")
    p.add_argument("--max-digits", type=int, default=4, help="digits to collect at most")
    p.add_argument("--digit-timeout", type=float, default=5.0, metavar="SECONDS", help="wait for the first digit")
    p.add_argument("--inter-digit-timeout", type=float, default=3.0, metavar="SECONDS", help="wait between digits")
    p.add_argument("--record-dir", default=".", metavar="DIR", help="where messages are written")
    p.add_argument("--message-seconds", type=float, default=10.0, metavar="SECONDS", help="longest message")
    p.add_argument("--transfer-to", default="", metavar="URI", help="transfer the caller here at the end")
    p.add_argument("--calls", type=int, default=0, metavar="N", help="stop after N calls (0: never)")
    return p.parse_args(argv)


class IvrBot:
    """The bot's script for each call (no I/O of its own: a user agent feeds it calls).

    Args:
        reactor: for timers.
        args: the parsed command line (or an ``argparse.Namespace`` built by a test).
        out: called with each line to print.
    """

    def __init__(self, reactor: Any, args: argparse.Namespace, out: Any = print) -> None:
        self.reactor = reactor
        self.args = args
        self.out = out
        self.count = 0
        self.finished: list[Any] = []  # one Deferred per call, fired with its outcome

    def on_incoming_call(self, incoming: Any) -> None:
        """``ua.on_incoming_call``: run :meth:`handle` for the call."""
        from twisted.internet import defer

        self.count += 1
        self.out(f"call {self.count} from {incoming.caller.uri}")
        done = defer.ensureDeferred(self.handle(incoming, self.count))
        done.addErrback(lambda f: self.out(f"call {self.count} failed: {f.value}") or "failed")
        self.finished.append(done)

    def prompt(self) -> Any:
        """The prompt source: the WAV file, or 0.4 s of a 1 kHz beep."""
        from txsipua.media.audio import ToneSource, WavSource

        return WavSource(self.args.prompt) if self.args.prompt else ToneSource(1000.0, 0.4)

    async def handle(self, incoming: Any, n: int) -> str:
        """Answer, prompt, collect, record, transfer; returns what happened to the call."""
        call = incoming.answer()
        await call.confirmed
        try:
            return await self.script(call, n)
        finally:
            if not call.ended.called:  # whatever failed (a prompt file...), the caller is not left hanging
                await call.hangup()

    async def script(self, call: Any, n: int) -> str:
        """The steps once the call is up."""
        from txsipua.media.audio import ToneSource

        audio = call.audio
        if audio is None:
            return "no media"
        await audio.play(self.prompt(), barge_in_dtmf=True)
        digits = await audio.collect_digits(max_digits=self.args.max_digits, timeout=self.args.digit_timeout,
                                            inter_digit_timeout=self.args.inter_digit_timeout, terminator="#")
        self.out(f"digits {digits or '-'} ({digits.reason})")
        if call.ended.called:
            return "ended"
        await audio.play(ToneSource(1000.0, 0.1))
        path = os.path.join(self.args.record_dir, f"{digits or 'message'}-{n}.wav")
        recording = audio.record(path)
        pressed = await audio.collect_digits(max_digits=1, timeout=self.args.message_seconds,
                                             terminator="#", flush=True)
        recording.close()
        self.out(f"recorded {path} ({pressed.reason})")
        if call.ended.called:
            return "ended"
        transfer = getattr(call, "transfer", None)  # REFER (RFC 3515), from the calls-xfer work
        if self.args.transfer_to and callable(transfer):
            await transfer(self.args.transfer_to)
            self.out("transferred")
            return "transferred"
        await call.hangup()
        self.out("hung up")
        return "hung up"


def main(reactor: Any, args: argparse.Namespace) -> Any:
    """Run the bot until ``--calls`` calls are done or a signal comes; fires with the exit status."""
    from twisted.internet import defer

    import txsipua
    from txsipua.cli.main import on_stop_signals, parse_bind

    os.makedirs(args.record_dir, exist_ok=True)
    ua = txsipua.UserAgent(reactor, txsipua.Configuration(), None, txsipua.UDPTransport(reactor, *parse_bind(args.bind)))
    bot = IvrBot(reactor, args, lambda line: print(line, flush=True))
    stopping: defer.Deferred[None] = defer.Deferred()

    def on_call(incoming: Any) -> None:
        bot.on_incoming_call(incoming)
        if args.calls and bot.count >= args.calls:
            defer.DeferredList(bot.finished).addBoth(lambda _: stopping.called or stopping.callback(None))

    ua.on_incoming_call = on_call

    @defer.inlineCallbacks
    def run() -> Any:
        yield on_stop_signals(reactor, lambda: stopping.called or stopping.callback(None))
        host, port = yield ua.start()
        print(f"ready {host}:{port}", flush=True)
        yield stopping
        yield ua.stop()
        return 0

    return run()


if __name__ == "__main__":
    import contextlib

    from twisted.internet import task

    arguments = parse_args()
    status: list[int] = []
    with contextlib.suppress(SystemExit):
        task.react(lambda reactor: main(reactor, arguments).addCallback(status.append))
    sys.exit(status[0] if status else 1)
