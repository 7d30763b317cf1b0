"""A call's audio for bots and softphones: prompts, digits, frame streams, recordings.

``call.audio`` is a :class:`CallAudio`.  It sits between the application and
the call's RTP stream (:class:`~txsipua.net.rtp.MediaStream`), through the
two seams of :mod:`txsipua.media.audio`:

- Rates: the call's audio runs at the negotiated codec's PCM rate
  (:attr:`CallAudio.rate`: 8000 Hz for G.711, 16000 Hz for G.722, 48000 Hz
  for Opus; 8000 Hz before the stream is configured), so a wideband call
  keeps its band.  What the application gives (:meth:`CallAudio.send`,
  :meth:`CallAudio.play`) and asks for (:meth:`CallAudio.frames`, sinks,
  recordings) is resampled from and to the rate it names; when the codec
  changes on a re-INVITE the resamplers follow.
- Received: the stream pushes each decoded frame to :class:`CallAudio` at
  the codec's rate (``write(frame, rate)``), which hands it on to every
  consumer: :meth:`CallAudio.frames` streams, recordings
  (:meth:`CallAudio.record`), sinks (:meth:`CallAudio.add_sink`, a speaker)
  and the voice-energy barge-in of prompts.  A consumer whose ``write``
  raises is detached at its first failure (logged once, with the traceback).
- Sent: while it has something to send, :class:`CallAudio` gives the stream
  one *burst* source; each 20 ms pull mixes the current prompt
  (:meth:`CallAudio.play`) and the frames the application queued
  (:meth:`CallAudio.send`, a microphone).  After 100 ms with nothing the burst
  ends, the stream stops sending, and the next audio starts a new talkspurt.
- Digits: every received digit, RFC 4733 telephone events from the stream
  and SIP INFO bodies alike, goes through :meth:`CallAudio.digit_received`:
  it stops prompts that asked for DTMF barge-in, feeds the running
  :meth:`CallAudio.collect_digits` (or waits in a type-ahead buffer of
  :data:`TYPE_AHEAD` digits for the next one), and calls :attr:`CallAudio.on_digit`.

Queues and what they drop (everything is driven by the reactor; no thread):

- a :meth:`CallAudio.frames` stream holds at most ``max_frames`` (50, one
  second); when the application reads slower than real time the *oldest*
  frame is dropped (``dropped`` counts them): live audio stays live.
- :meth:`CallAudio.send` queues frames for sending; its Deferred fires once
  the queue is under :data:`SEND_QUEUE` frames (200 ms), so ``await`` paces a
  faster-than-real-time producer.  A producer that does not wait is cut at
  :data:`SEND_QUEUE_MAX` frames (one second): the *oldest* queued frames are
  dropped (``send_dropped``).
- type-ahead digits beyond :data:`TYPE_AHEAD` drop the oldest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from txsipua.errors import LocalProtocolError
from txsipua.media.audio import (
    IAudioSink,
    IAudioSource,
    Rechunker,
    Resampler,
    WavSink,
    frame_octets,
    mix,
    resampled_source,
    rms,
)
from txsipua.media.codecs import resample
from txsipua.media.digits import CollectedDigits, DigitCollector, DigitState

__all__ = ["HANGOVER", "SEND_QUEUE", "SEND_QUEUE_MAX", "TYPE_AHEAD", "CallAudio", "FrameStream"]

#: The rate of the PCM exchanged with the RTP stream, Hz (G.711).
RATE = 8000
#: Frames of silence sent after the audio runs out before a burst ends (100 ms).
HANGOVER = 5
#: :meth:`CallAudio.send` Deferreds wait while this many frames are queued (200 ms).
SEND_QUEUE = 10
#: At most this many frames stay queued for sending (one second): older ones are dropped.
SEND_QUEUE_MAX = 50
#: Digits kept for the next :meth:`CallAudio.collect_digits` while none runs.
TYPE_AHEAD = 32
#: Default RMS (16-bit scale) above which a received frame counts as voice for barge-in.
VOICE_THRESHOLD = 1000.0

log = Logger()


@implementer(IAudioSink)
class FrameStream:
    """Received audio as an async iterator of 20 ms frames at ``rate`` (see :meth:`CallAudio.frames`).

    ``async for frame in stream`` inside a Twisted coroutine
    (``Deferred.fromCoroutine``/``ensureDeferred``) waits for each frame;
    the loop ends when the call's media ends or :meth:`close` is called.

    Attributes:
        rate: the rate of the frames it yields, Hz.
        dropped: frames dropped because the reader was slower than real time.
    """

    def __init__(self, rate: int, max_frames: int = 50, on_close: Callable[[FrameStream], object] | None = None,
                 source_rate: int = RATE) -> None:
        self.rate = rate
        self._frames: deque[bytes] = deque()
        self._max = max(1, max_frames)
        self._resampler = Resampler(source_rate, rate)  # made again if the call's rate changes
        self._chunks = Rechunker(frame_octets(rate))
        self._waiter: defer.Deferred[bytes | None] | None = None
        self._on_close = on_close
        self.closed = False
        self.dropped = 0

    def write(self, frame: bytes, rate: int = RATE) -> None:
        """Take received PCM at ``rate`` Hz (the :class:`CallAudio` side: the codec's rate)."""
        if self.closed:
            return
        if self._resampler.rate_in != rate:
            self._resampler = Resampler(rate, self.rate)
        for out in self._chunks.push(self._resampler.process(frame)):
            if self._waiter is not None:
                waiter, self._waiter = self._waiter, None
                waiter.callback(out)
                continue
            if len(self._frames) >= self._max:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(out)

    def close(self) -> None:
        """End the stream: frames already queued are still read, then the loop ends."""
        if self.closed:
            return
        self.closed = True
        if self._on_close is not None:
            self._on_close(self)
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            waiter.callback(None)

    def __len__(self) -> int:
        """Frames waiting to be read."""
        return len(self._frames)

    def __aiter__(self) -> FrameStream:
        """The stream is its own iterator."""
        return self

    async def __anext__(self) -> bytes:
        """The next frame; StopAsyncIteration once closed and drained."""
        if self._frames:
            return self._frames.popleft()
        if self.closed:
            raise StopAsyncIteration
        d: defer.Deferred[bytes | None] = defer.Deferred()
        self._waiter = d
        frame = await d
        if frame is None:
            raise StopAsyncIteration
        return frame

    async def aclose(self) -> None:
        """Close the stream (``async with`` and ``aclosing`` friendly)."""
        self.close()


class _Prompt:
    def __init__(self, source: Any, pulled: Any, deferred: defer.Deferred[str], dtmf: bool, voice: float | None,
                 voice_frames: int) -> None:
        self.source = source  # as given, at its own rate
        self._pulled = pulled  # the source at the rate last asked for
        self.deferred = deferred
        self.barge_dtmf = dtmf
        self.voice_threshold = voice
        self.voice_frames = voice_frames
        self.voiced = 0

    def read(self, rate: int) -> bytes:
        """The next 20 ms of the prompt at ``rate`` (a new resampler when the call's rate changed)."""
        if self._pulled.rate != rate:
            self._pulled = resampled_source(self.source, rate)
        frame: bytes = self._pulled.read()
        return frame


@implementer(IAudioSource)
class _Burst:
    """What the RTP stream pulls while :class:`CallAudio` has something to send."""

    def __init__(self, audio: CallAudio, rate: int) -> None:
        self.audio = audio
        self.rate = rate  # the call's rate when the burst started (the stream converts if it changes)
        self.idle = 0
        self.closed = False

    def read(self) -> bytes:
        if self.closed:
            return b""
        frame = self.audio.next_frame(self.rate)
        if frame is not None:
            self.idle = 0
            return frame
        self.idle += 1
        if self.idle > HANGOVER:
            self.closed = True
            return b""
        return bytes(frame_octets(self.rate))

    def close(self) -> None:
        self.closed = True


@implementer(IAudioSink)
class CallAudio:
    """The audio of one call: play prompts, send and receive frames, collect digits, record.

    Made by :class:`~txsipua.ua.media.CallMedia`; applications use it as
    ``call.audio``.  It works before the RTP stream exists: prompts and
    frames wait for it.

    Args:
        reactor: provides ``callLater`` and ``seconds`` (collection timeouts).

    Attributes:
        rate: the rate of the PCM exchanged with the RTP stream, Hz: the
            negotiated codec's (:attr:`~txsipua.net.rtp.MediaStream.sample_rate`),
            8000 before the stream is configured.
        on_digit: called with each received digit and how it came
            (``on_digit(digit, via)``, ``via`` ``"rfc4733"`` or ``"info"``), or None.
        send_dropped: frames dropped from a full send queue.
        ended: True once the call's media has ended.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._stream: Any = None
        self._prompts: deque[_Prompt] = deque()
        self._outgoing: deque[tuple[bytes, int]] = deque()  # (20 ms frame, its rate)
        self._out_rate = RATE
        self._out_chunks = Rechunker(frame_octets(RATE))
        self._out_resamplers: dict[tuple[int, int], Resampler] = {}
        self._senders: deque[defer.Deferred[None]] = deque()
        self._burst: _Burst | None = None
        self._consumers: list[Any] = []
        self._type_ahead: deque[str] = deque(maxlen=TYPE_AHEAD)
        self._collector: DigitCollector | None = None
        self._collected: defer.Deferred[CollectedDigits] | None = None
        self._collect_timer: Any = None
        self.on_digit: Callable[[str, str], object] | None = None
        self.send_dropped = 0
        self.ended = False

    # ------------------------------------------------------------- the stream
    @property
    def rate(self) -> int:
        """The call's audio rate, Hz: the negotiated codec's PCM rate (8000 before the stream is configured)."""
        rate = getattr(self._stream, "sample_rate", RATE)
        return rate if isinstance(rate, int) and rate > 0 else RATE

    def attach(self, stream: Any) -> None:
        """Connect to the call's RTP stream (done by :class:`~txsipua.ua.media.CallMedia`)."""
        if self._stream is not None or self.ended:
            return
        self._stream = stream
        stream.add_sink(self, any_rate=True)
        stream.add_digit_sink(self._rtp_digit)
        self._kick()

    def _rtp_digit(self, digit: str) -> None:
        self.digit_received(digit, "rfc4733")

    def write(self, frame: bytes, rate: int = RATE) -> None:
        """A decoded frame from the stream at ``rate`` Hz (the codec's): to every consumer, and to the voice barge-in.

        A consumer whose ``write`` raises is detached (and closed) at once;
        the failure is logged once, with its traceback.
        """
        if self.ended:
            return
        for consumer in list(self._consumers):
            try:
                consumer.write(frame, rate)
            except Exception:
                log.failure("an audio sink failed: detached from the call's audio")
                self.remove_sink(consumer)
                try:
                    consumer.close()
                except Exception:
                    log.failure("closing a failed audio sink failed")
        barging = [p for p in self._prompts if p.voice_threshold is not None]
        if barging:
            level = rms(frame)
            for p in barging:
                assert p.voice_threshold is not None
                p.voiced = p.voiced + 1 if level >= p.voice_threshold else 0
                if p.voiced >= p.voice_frames:
                    self._end_prompt(p, "voice")

    def close(self) -> None:
        """The stream stopped: the call's audio ends (see :meth:`end`)."""
        self.end()

    def end(self) -> None:
        """End everything: prompts fire ``"ended"``, a collection ends ``"cancelled"``, sinks close.

        Idempotent; the call does it when its media stops.
        """
        if self.ended:
            return
        self.ended = True
        for p in list(self._prompts):
            self._end_prompt(p, "ended")
        if self._burst is not None:
            self._burst.close()
        self._outgoing.clear()
        self._wake_senders(everyone=True)
        self._stop_collecting(cancel=True)
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            try:
                consumer.close()
            except Exception:
                log.failure("closing an audio consumer failed")

    # ---------------------------------------------------------------- sending
    def next_frame(self, rate: int = RATE) -> bytes | None:
        """The next 20 ms frame to send at ``rate`` Hz: the prompt and the queued frames mixed; None when neither."""
        parts: list[bytes] = []
        while self._prompts:
            p = self._prompts[0]
            try:
                frame = p.read(rate)
            except Exception as e:
                log.failure("a prompt's source failed")
                self._prompts.popleft()
                p.source.close()
                p.deferred.errback(e)
                continue
            if frame:
                parts.append(frame)
                break
            self._end_prompt(p, "done")
        if self._outgoing:
            queued, queued_rate = self._outgoing.popleft()
            parts.append(resample(queued, queued_rate, rate) if queued_rate != rate else queued)
            self._wake_senders()
        return mix(parts) if parts else None

    def _kick(self) -> None:
        """Give the stream a burst when there is something to send and none runs."""
        if self._burst is not None or self._stream is None or self.ended:
            return
        if not (self._prompts or self._outgoing):
            return
        burst = self._burst = _Burst(self, self.rate)

        def over(result: object) -> None:
            if self._burst is burst:
                self._burst = None
                if result is True:
                    self._kick()

        self._stream.play(burst).addBoth(over)

    def play(self, source: Any, *, barge_in_dtmf: bool = False, barge_in_voice: bool = False,
             voice_threshold: float = VOICE_THRESHOLD, voice_frames: int = 3) -> defer.Deferred[str]:
        """Play a prompt after those already queued.

        Args:
            source: an :class:`~txsipua.media.audio.IAudioSource` (any rate:
                resampled to the call's :attr:`rate`), or 16-bit mono PCM at 8000 Hz.
            barge_in_dtmf: stop the prompt when a digit arrives (the digit
                stays for :meth:`collect_digits`, as type-ahead: ``flush=True``
                discards it).
            barge_in_voice: stop the prompt when the peer speaks:
                ``voice_frames`` frames in a row at or above ``voice_threshold`` RMS.

        Returns:
            A Deferred firing with why the prompt ended: ``"done"`` (all of
            it was handed to the stream), ``"stopped"`` (:meth:`stop_playing`),
            ``"dtmf"``, ``"voice"``, or ``"ended"`` (the call's media ended).
            Cancelling it stops the prompt at once (CancelledError).

        Raises:
            txsipua.media.audio.AudioError: the source's rate needs ``soxr``.
            txsipua.errors.WavError: a :class:`~txsipua.media.audio.WavSource`
                that is not a PCM WAV file (OSError: one that cannot be read).
        """
        if isinstance(source, bytes | bytearray | memoryview):
            from txsipua.media.audio import PCMSource

            source = PCMSource(bytes(source), RATE)
        opener = getattr(source, "open", None)
        if callable(opener):
            opener()  # a WavSource reads its header now: a bad file raises here, not mid-call
        source = IAudioSource(source)
        pulled = resampled_source(source, self.rate)
        prompt: _Prompt

        def cancel(_: defer.Deferred[str]) -> None:
            if prompt in self._prompts:
                self._prompts.remove(prompt)
            prompt.source.close()

        d: defer.Deferred[str] = defer.Deferred(cancel)
        prompt = _Prompt(source, pulled, d, barge_in_dtmf, voice_threshold if barge_in_voice else None, max(1, voice_frames))
        if self.ended:
            pulled.close()
            d.callback("ended")
            return d
        self._prompts.append(prompt)
        self._kick()
        return d

    def stop_playing(self) -> None:
        """Stop every queued prompt now; their Deferreds fire with ``"stopped"``."""
        for p in list(self._prompts):
            self._end_prompt(p, "stopped")

    @property
    def playing(self) -> bool:
        """True while a prompt is queued or playing."""
        return bool(self._prompts)

    def _end_prompt(self, prompt: _Prompt, reason: str) -> None:
        if prompt in self._prompts:
            self._prompts.remove(prompt)
        prompt.source.close()
        if not prompt.deferred.called:
            prompt.deferred.callback(reason)

    def send(self, frame: bytes, rate: int = RATE) -> defer.Deferred[None]:
        """Queue PCM to send after what is queued (mixed with any prompt).

        Args:
            frame: 16-bit little-endian mono PCM at ``rate`` (normally one
                20 ms frame; any whole number of samples).
            rate: its rate, Hz (resampled to the call's :attr:`rate`, the
                negotiated codec's; a rate that differs needs ``soxr``).

        Returns:
            A Deferred firing (None) once the queue is under
            :data:`SEND_QUEUE` frames: ``await`` it to send in real time.  See
            the module's drop policy.

        Raises:
            txsipua.media.audio.AudioError: an odd number of octets, a bad
                rate, or a rate that needs ``soxr``.
        """
        if len(frame) % 2:
            from txsipua.media.audio import AudioError

            raise AudioError("16-bit PCM must have an even number of octets")
        if self.ended:
            return defer.succeed(None)
        target = self.rate
        if target != self._out_rate:  # the codec changed: cut frames at the new rate
            self._out_rate, self._out_chunks = target, Rechunker(frame_octets(target))
        if rate != target:
            resampler = self._out_resamplers.get((rate, target))
            if resampler is None:
                frame_octets(rate)
                resampler = self._out_resamplers[(rate, target)] = Resampler(rate, target)
            frame = resampler.process(bytes(frame))
        for out in self._out_chunks.push(bytes(frame)):
            if len(self._outgoing) >= SEND_QUEUE_MAX:
                self._outgoing.popleft()
                self.send_dropped += 1
            self._outgoing.append((out, target))
        self._kick()
        if len(self._outgoing) < SEND_QUEUE:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._senders.append(d)
        return d

    def _wake_senders(self, everyone: bool = False) -> None:
        while self._senders and (everyone or len(self._outgoing) < SEND_QUEUE):
            d = self._senders.popleft()
            if not d.called:
                d.callback(None)

    # ---------------------------------------------------------------- receiving
    def frames(self, rate: int = RATE, max_frames: int = 50) -> FrameStream:
        """A new stream of the received audio from now on, 20 ms frames at ``rate`` Hz.

        ``async for frame in call.audio.frames(rate=16000): ...`` in a Twisted
        coroutine; see :class:`FrameStream` and the module's drop policy.

        Raises:
            txsipua.media.audio.AudioError: a bad rate, or one that needs ``soxr``.
        """
        stream = FrameStream(rate, max_frames, on_close=self.remove_sink, source_rate=self.rate)
        if self.ended:
            stream.close()
        else:
            self._consumers.append(stream)
        return stream

    def add_sink(self, sink: Any) -> Any:
        """Push the received audio to an :class:`~txsipua.media.audio.IAudioSink` (any rate) until the call ends.

        Returns:
            The sink (give it to :meth:`remove_sink`).  The sink is
            closed when the call's audio ends.  It gets the audio resampled
            from the call's rate to its own ``rate`` (a rate that differs
            needs ``soxr``); a sink whose ``write`` raises is detached.
        """
        sink = IAudioSink(sink)
        attached = _FollowingSink(sink, self.rate)
        if self.ended:
            attached.close()
        else:
            self._consumers.append(attached)
        return sink

    def remove_sink(self, attached: Any) -> None:
        """Stop pushing to what :meth:`add_sink` (or :meth:`frames`) attached; it is not closed."""
        for consumer in list(self._consumers):
            if consumer is attached or getattr(consumer, "sink", None) is attached:
                self._consumers.remove(consumer)

    def record(self, target: Any, rate: int | None = None) -> Any:
        """Record what the peer sends from now on, streamed to a WAV file (or to any sink).

        Args:
            target: a path (a :class:`~txsipua.media.audio.WavSink` at ``rate``
                is made) or an :class:`~txsipua.media.audio.IAudioSink`.
            rate: the file's rate, Hz; None: the call's :attr:`rate` now (the
                negotiated codec's, so a wideband call is recorded wideband).

        Returns:
            The sink; it is closed (the file completed) when the call ends, or
            by ``sink.close()`` sooner.  Memory stays flat however long.
        """
        sink = target if IAudioSink.providedBy(target) else WavSink(target, rate or self.rate)
        self.add_sink(sink)
        return sink

    # ------------------------------------------------------------------ digits
    def digit_received(self, digit: str, via: str = "rfc4733") -> None:
        """The one entry for received DTMF, whatever carried it.

        RFC 4733 events arrive here from the RTP stream; the SIP INFO path
        (``application/dtmf-relay``, ``application/dtmf``) calls it with
        ``via="info"``.  The digit first goes to the running
        :meth:`collect_digits` (else to the type-ahead buffer), then stops
        prompts with DTMF barge-in, then goes to :attr:`on_digit`.  So the
        digit that barged in is type-ahead by the time the prompt's Deferred
        fires: ``collect_digits()`` gets it first, ``collect_digits(flush=True)``
        discards it (as every digit received before the call).

        Args:
            digit: ``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"`` (or ``"!"`` flash).
            via: ``"rfc4733"`` or ``"info"``.
        """
        if self.ended:
            return
        digit = digit.upper()
        # The digit is placed (running collection, else type-ahead) before
        # anyone hears of it: a collect_digits(flush=True) started from a
        # barged prompt's Deferred or from on_digit flushes this digit too.
        if self._collector is not None:
            self._collector.digit(digit, self._reactor.seconds())
            self._after_collector_input()
        else:
            self._type_ahead.append(digit)
        for p in [p for p in self._prompts if p.barge_dtmf]:
            self._end_prompt(p, "dtmf")
        if self.on_digit is not None:
            try:
                self.on_digit(digit, via)
            except Exception:
                log.failure("on_digit callback failed")

    def collect_digits(self, max_digits: int = 1, timeout: float | None = 5.0,
                       inter_digit_timeout: float | None = 3.0, terminator: str = "#",
                       flush: bool = False) -> defer.Deferred[CollectedDigits]:
        """Collect DTMF digits (RFC 4733 and SIP INFO alike).

        Digits typed ahead (while a prompt played) count first, unless ``flush``.

        Args:
            max_digits: end once this many came.
            timeout: seconds to wait for the first digit (None: forever).
            inter_digit_timeout: seconds to wait for each next digit (None: forever).
            terminator: digits that end the collection, not kept (``""``: none).
            flush: forget the type-ahead digits first: every digit received
                before this call, including the one that just barged in on a
                prompt (:meth:`play` with ``barge_in_dtmf``), even when this is
                called from that prompt's Deferred or from :attr:`on_digit`.

        Returns:
            A Deferred firing with the digits, a ``str``
            (:class:`~txsipua.media.digits.CollectedDigits`, whose ``reason``
            is ``"max"``, ``"terminator"``, ``"timeout"`` or ``"cancelled"``:
            the call ended).  Cancelling it stops the collection.  It fails
            with LocalProtocolError when a collection already runs.

        Raises:
            ValueError: ``max_digits`` below 1 or a negative timeout.
        """
        if self._collector is not None:
            return defer.fail(LocalProtocolError("a digit collection is already running"))
        collector = DigitCollector(self._reactor.seconds(), max_digits, timeout, inter_digit_timeout, terminator)

        def cancel(_: Any) -> None:
            if self._collector is collector:
                self._collector = None
                self._collected = None
                self._cancel_collect_timer()

        d: defer.Deferred[CollectedDigits] = defer.Deferred(cancel)
        self._collector, self._collected = collector, d
        if flush:
            self._type_ahead.clear()
        if self.ended:
            collector.cancel(self._reactor.seconds())
        while self._type_ahead and collector.state is not DigitState.DONE:
            collector.digit(self._type_ahead.popleft(), self._reactor.seconds())
        self._after_collector_input()
        return d

    def _after_collector_input(self) -> None:
        collector = self._collector
        if collector is None:
            return
        if collector.result is not None:
            self._stop_collecting(cancel=False)
            return
        self._cancel_collect_timer()
        deadline = collector.get_timer()
        if deadline is not None:
            self._collect_timer = self._reactor.callLater(
                max(0.0, deadline - self._reactor.seconds()), self._collect_timeout)

    def _collect_timeout(self) -> None:
        self._collect_timer = None
        if self._collector is not None:
            self._collector.handle_timer(self._reactor.seconds())
            self._after_collector_input()

    def _cancel_collect_timer(self) -> None:
        if self._collect_timer is not None and self._collect_timer.active():
            self._collect_timer.cancel()
        self._collect_timer = None

    def _stop_collecting(self, cancel: bool) -> None:
        collector, d = self._collector, self._collected
        if collector is None or d is None:
            return
        if cancel:
            collector.cancel(self._reactor.seconds())
        self._collector = self._collected = None
        self._cancel_collect_timer()
        assert collector.result is not None
        if not d.called:
            d.callback(collector.result)


@implementer(IAudioSink)
class _FollowingSink:
    """A sink fed at whatever rate the call runs, resampled to the sink's own (see :meth:`CallAudio.add_sink`)."""

    def __init__(self, sink: Any, source_rate: int) -> None:
        self.sink = sink
        self.rate = sink.rate
        frame_octets(self.rate)
        self._resampler = Resampler(source_rate, self.rate)  # made again if the call's rate changes
        self._closed = False

    def write(self, frame: bytes, rate: int = RATE) -> None:
        if self._closed:
            return
        if self._resampler.rate_in != rate:
            self._resampler = Resampler(rate, self.rate)
        out = self._resampler.process(frame)
        if out:
            self.sink.write(out)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        out = self._resampler.process(b"", last=True)
        if out:
            self.sink.write(out)
        self.sink.close()
