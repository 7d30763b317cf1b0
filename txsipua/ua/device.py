"""A desktop microphone and speaker for a call, through PortAudio (``sounddevice``, the ``device`` extra).

:class:`AudioDevice` connects one duplex PortAudio stream to a call's
:class:`~txsipua.ua.audio.CallAudio`:

- microphone: PortAudio calls back on its own thread with 20 ms of input; the
  frame crosses to the reactor thread (``reactor.callFromThread``) and goes
  to :meth:`~txsipua.ua.audio.CallAudio.send`, unless :attr:`AudioDevice.muted`.
- speaker: the call's received frames are pushed (reactor thread) into a
  bounded queue of :data:`SPEAKER_FRAMES` frames (the *oldest* is dropped when
  it is full, so latency stays bounded); the PortAudio callback takes one
  frame per call, or plays silence when none waits.

The stream is built by an injectable ``stream_factory`` (the tests give a fake
device; the default opens ``sounddevice.RawStream``), so nothing here needs a
sound card to be tested.  ``sounddevice`` is imported only when the default
factory or :func:`list_devices` is used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from twisted.logger import Logger
from zope.interface import implementer

from txsipua.media.audio import AudioError, IAudioSink, frame_octets

__all__ = ["SPEAKER_FRAMES", "AudioDevice", "DeviceInfo", "list_devices", "sounddevice_stream"]

#: Received frames queued for the speaker at most (100 ms); older ones are dropped.
SPEAKER_FRAMES = 5

log = Logger()

StreamFactory = Callable[..., Any]


@attrs.frozen
class DeviceInfo:
    """One PortAudio device.

    Attributes:
        index: PortAudio's device number (what ``input_device``/``output_device`` take).
        name: its name.
        inputs: input channels (0: not a microphone).
        outputs: output channels (0: not a speaker).
    """

    index: int
    name: str
    inputs: int
    outputs: int


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as e:  # OSError: the PortAudio library is missing
        raise AudioError(f"audio devices need sounddevice and PortAudio: pip install 'txsipua[device]' ({e})") from e
    return sounddevice


def list_devices(sd: Any = None) -> list[DeviceInfo]:
    """The PortAudio devices (empty on a machine without sound).

    Raises:
        AudioError: ``sounddevice`` or PortAudio is not installed.
    """
    sd = sd or _sounddevice()
    return [DeviceInfo(i, str(d["name"]), int(d["max_input_channels"]), int(d["max_output_channels"]))
            for i, d in enumerate(sd.query_devices())]


def sounddevice_stream(*, samplerate: int, blocksize: int, device: tuple[Any, Any],
                       callback: Callable[..., None]) -> Any:
    """The default stream factory: a duplex ``sounddevice.RawStream`` (mono, 16-bit).

    Raises:
        AudioError: ``sounddevice`` or PortAudio is not installed.
    """
    sd = _sounddevice()
    return sd.RawStream(samplerate=samplerate, blocksize=blocksize, device=device, channels=1,
                        dtype="int16", callback=callback)


@implementer(IAudioSink)
class _Speaker:
    """The call's received audio, queued for the PortAudio callback."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.size = frame_octets(rate)
        self.frames: deque[bytes] = deque(maxlen=SPEAKER_FRAMES)  # appending drops the oldest, atomically
        self.pending = bytearray()
        self.dropped = 0

    def write(self, frame: bytes) -> None:
        self.pending += frame
        while len(self.pending) >= self.size:
            chunk = bytes(self.pending[: self.size])
            del self.pending[: self.size]
            if len(self.frames) == SPEAKER_FRAMES:
                self.dropped += 1
            self.frames.append(chunk)

    def close(self) -> None:
        self.frames.clear()
        self.pending.clear()


class AudioDevice:
    """A microphone and a speaker (PortAudio) for one call at a time.

    Args:
        reactor: provides ``callFromThread`` (the PortAudio callback's way in).
        input_device: the microphone, a PortAudio index or name (None: the default).
        output_device: the speaker (None: the default).
        rate: the device's rate, Hz; other rates than 8000 need ``soxr``.
        stream_factory: ``factory(samplerate=, blocksize=, device=(input, output),
            callback=)`` returning a stream with ``start()``, ``stop()`` and
            ``close()`` whose callback is called as
            ``callback(indata, outdata, frames, time, status)`` with 16-bit
            mono buffers (:func:`sounddevice_stream` by default).

    Attributes:
        muted: True sends nothing from the microphone.
        speaker_muted: True plays silence instead of the call.
        audio: the :class:`~txsipua.ua.audio.CallAudio` connected, or None.
        overruns: callbacks with a PortAudio status flag (xrun...).
    """

    def __init__(self, reactor: Any, *, input_device: Any = None, output_device: Any = None, rate: int = 8000,
                 stream_factory: StreamFactory | None = None) -> None:
        self._reactor = reactor
        self.input_device = input_device
        self.output_device = output_device
        self.rate = rate
        self._size = frame_octets(rate)
        self._factory = stream_factory or sounddevice_stream
        self._stream: Any = None
        self._speaker: _Speaker | None = None
        self._attached: Any = None
        self.audio: Any = None
        self.muted = False
        self.speaker_muted = False
        self.overruns = 0

    def connect(self, audio: Any) -> None:
        """Start the device on a call's :class:`~txsipua.ua.audio.CallAudio` (another call is disconnected first).

        Raises:
            AudioError: no ``sounddevice``/PortAudio, or the rate needs ``soxr``.
            Exception: whatever the stream factory raises (no such device...).
        """
        self.disconnect()
        speaker = _Speaker(self.rate)
        attached = audio.add_sink(speaker)
        try:
            stream = self._factory(samplerate=self.rate, blocksize=self._size // 2,
                                   device=(self.input_device, self.output_device), callback=self._callback)
            stream.start()
        except Exception:
            audio.remove_sink(attached)
            raise
        self.audio, self._speaker, self._attached, self._stream = audio, speaker, attached, stream

    def select(self, input_device: Any = None, output_device: Any = None) -> None:
        """Choose other devices; a connected call moves to them at once."""
        self.input_device, self.output_device = input_device, output_device
        if self.audio is not None:
            self.connect(self.audio)

    def disconnect(self) -> None:
        """Stop and close the device stream; the call goes on without it. Idempotent."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                log.failure("closing the audio device failed")
        if self.audio is not None:
            self.audio.remove_sink(self._attached)
        self.audio = self._speaker = self._attached = None

    # --- the PortAudio thread ------------------------------------------------
    def _callback(self, indata: Any, outdata: Any, frames: int, time: Any, status: Any) -> None:
        if status:
            self.overruns += 1
        speaker = self._speaker
        size = len(outdata)
        try:
            chunk = speaker.frames.popleft() if speaker is not None else b""
        except IndexError:  # nothing received to play: silence
            chunk = b""
        if self.speaker_muted:
            chunk = b""
        outdata[:] = chunk[:size] + bytes(size - len(chunk[:size]))
        if not self.muted:
            self._reactor.callFromThread(self._microphone, bytes(indata))

    # --- back on the reactor thread ------------------------------------------
    def _microphone(self, frame: bytes) -> None:
        if self.audio is not None and not self.muted:
            self.audio.send(frame, self.rate)
