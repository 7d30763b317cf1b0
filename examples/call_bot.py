"""A call bot: call, play a WAV file, send DTMF, record what the other side says, hang up.

::

    python examples/call_bot.py sip:ivr@example.com --account bot.toml \\
        --play prompt.wav --dtmf 1234# --record answer.wav --listen 3

The bot places the call with :meth:`UserAgent.place_call` (answering any 407/401
with the account's credentials), then uses the call's RTP stream
(:class:`txsipua.net.rtp.MediaStream`): ``play()`` sends the WAV as G.711
paced by the reactor (20 ms packets), ``send_dtmf()`` sends RFC 4733
telephone events, ``record_to()`` streams every received frame to a WAV
(8000 Hz mono) as it comes, completed when the stream stops.  After ``--listen`` more seconds it
hangs up with BYE.  With ``--tone`` instead of ``--play`` it sends a
generated 440 Hz tone (no file needed).

SIGINT or SIGTERM at any step winds down instead of stopping the reactor
(:func:`txsipua.cli.main.on_stop_signals`): while ringing, ``call.hangup()``
sends CANCEL; once connected, the script skips to the hang-up (BYE) at once.

Exit status: 0 when the whole script ran (or was cut short by a signal once
answered), 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
from collections.abc import Sequence
from typing import Any


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` needs neither network nor display)."""
    p = argparse.ArgumentParser(description="Call TARGET, play a WAV, send DTMF, record the answer, hang up.")
    p.add_argument("target", help="SIP URI to call")
    p.add_argument("--account", required=True, metavar="FILE", help="account file (TOML)")
    p.add_argument("--bind", default="127.0.0.1:0", metavar="HOST[:PORT]", help="local address")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--play", metavar="WAV", help="WAV file to play once answered (any rate, PCM)")
    src.add_argument("--tone", type=float, default=0.0, metavar="SECONDS", help="play a 440 Hz tone instead")
    p.add_argument("--dtmf", default="", metavar="DIGITS", help="DTMF digits to send after playing (RFC 4733)")
    p.add_argument("--record", metavar="WAV", help="write what the other side sends to this WAV file")
    p.add_argument("--listen", type=float, default=1.0, metavar="SECONDS",
                   help="seconds to keep listening after the DTMF before hanging up")
    return p.parse_args(argv)


def tone(seconds: float, freq: float = 440.0, rate: int = 8000) -> bytes:
    """A sine tone as 16-bit little-endian mono PCM."""
    n = int(rate * seconds)
    return b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(n))


def main(reactor: Any, args: argparse.Namespace) -> Any:
    """Run the bot; the Deferred fires with the exit status."""
    from twisted.internet import defer, task

    import txsipua
    from txsipua.cli.main import describe_error, on_stop_signals, parse_bind

    stopping: defer.Deferred[None] = defer.Deferred()  # fires on SIGINT/SIGTERM
    placed: list[Any] = []

    def on_signal() -> None:
        if not stopping.called:
            stopping.callback(None)
        if placed and not placed[0].answered.called:
            placed[0].hangup()  # CANCEL (sent once the callee has answered with a 1xx, §9.1)

    def step(d: Any) -> Any:
        """Wait for ``d``, or less if a signal comes first (``d`` then goes on by itself)."""
        return defer.DeferredList([d, stopping], fireOnOneCallback=True, fireOnOneErrback=True,
                                  consumeErrors=True)

    @defer.inlineCallbacks
    def run() -> Any:
        ua = txsipua.UserAgent(reactor, txsipua.Configuration(), txsipua.Account.from_toml(args.account),
                               txsipua.UDPTransport(reactor, *parse_bind(args.bind)))
        yield on_stop_signals(reactor, on_signal)  # fires once in place; before anything is sent
        yield ua.start()
        try:
            if stopping.called:
                print("interrupted", file=sys.stderr, flush=True)
                return 1
            call = ua.place_call(args.target)
            placed.append(call)
            try:
                yield call.answered
            except Exception:
                if not stopping.called:
                    raise
                print("call cancelled", file=sys.stderr, flush=True)
                return 1
            media = call.media
            if media is None:
                raise RuntimeError("the call has no media stream")
            print(f"answered; codec {call.media_params.codec.name if call.media_params else '?'}", flush=True)
            if args.record:
                media.record_to(args.record)  # streamed to the file; completed when the stream stops (at hangup)
            if (args.play or args.tone) and not stopping.called:
                playing = media.play(args.play if args.play else tone(args.tone))
                yield step(playing)
                print(f"played: {playing.called and playing.result}", flush=True)
            if args.dtmf and not stopping.called:
                sending = call.send_dtmf(args.dtmf)
                yield step(sending)
                sent = sending.called and sending.result
                print(f"dtmf {args.dtmf}: {'sent' if sent else 'not sent'}", flush=True)
            if not call.ended.called and not stopping.called:
                yield step(task.deferLater(reactor, args.listen, lambda: None))
            reason = yield call.hangup()
            stats = media.stats
            print(f"hung up ({reason}); rtp sent={stats.packets_sent} received={stats.packets_received} "
                  f"lost={stats.packets_lost} dtmf_sent={stats.dtmf_sent}", flush=True)
            if args.record:
                print(f"recorded to {args.record}", flush=True)
            return 0
        except Exception as e:
            print(describe_error(e), file=sys.stderr, flush=True)
            return 1
        finally:
            yield ua.stop()

    return run()


if __name__ == "__main__":
    import contextlib

    from twisted.internet import task

    arguments = parse_args()
    status: list[int] = []
    with contextlib.suppress(SystemExit):  # react() exits by itself; keep our own status
        task.react(lambda reactor: main(reactor, arguments).addCallback(status.append))
    sys.exit(status[0] if status else 1)
