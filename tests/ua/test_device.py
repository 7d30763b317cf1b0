"""Tests for txsipua.ua.device.AudioDevice with a fake PortAudio device (no sound card needed).

The fake stream keeps the callback; the test plays the PortAudio thread by
calling it with 16-bit buffers, and the fake reactor runs what the callback
handed over with ``callFromThread`` when the test says so.
"""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest
from twisted.internet import task
from twisted.internet.testing import FakeDatagramTransport

from txsipua.media import g711
from txsipua.media.audio import AudioError
from txsipua.media.offer_answer import PCMU, MediaParams
from txsipua.media.rtp import RtpPacket
from txsipua.net.rtp import MediaStream
from txsipua.ua.audio import CallAudio
from txsipua.ua.device import SPEAKER_FRAMES, AudioDevice, list_devices

REMOTE = ("127.0.0.1", 40000)


class ThreadedClock(task.Clock):
    """A task.Clock whose callFromThread queues the call until run_threads()."""

    def __init__(self) -> None:
        super().__init__()
        self.from_threads: list[Any] = []

    def callFromThread(self, f: Any, *args: Any) -> None:  # noqa: N802 - Twisted's name
        self.from_threads.append((f, args))

    def run_threads(self) -> None:
        calls, self.from_threads = self.from_threads, []
        for f, args in calls:
            f(*args)


class FakeDevice:
    """A fake PortAudio duplex stream: records how it was opened; the test drives its callback."""

    def __init__(self) -> None:
        self.opened: list[dict[str, Any]] = []
        self.callback: Any = None
        self.running = False
        self.closed = 0

    def __call__(self, **kwargs: Any) -> FakeDevice:
        self.opened.append(kwargs)
        self.callback = kwargs["callback"]
        return self

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        self.closed += 1

    def tick(self, mic: bytes) -> bytes:
        """One 20 ms period: the microphone gives ``mic``; returns what the speaker got."""
        out = bytearray(len(mic))
        self.callback(mic, out, len(mic) // 2, None, 0)
        return bytes(out)


def tone(freq: float, amplitude: int = 8000) -> bytes:
    return struct.pack("<160h", *(round(amplitude * math.sin(2 * math.pi * freq * i / 8000)) for i in range(160)))


def setup() -> tuple[AudioDevice, FakeDevice, CallAudio, MediaStream, ThreadedClock, FakeDatagramTransport]:
    clock = ThreadedClock()
    stream = MediaStream(clock, ssrc=1, rng=random.Random(1), media_timeout=None)
    transport = FakeDatagramTransport()
    stream.makeConnection(transport)
    stream.configure(MediaParams(remote_address=REMOTE[0], remote_port=REMOTE[1], codec=PCMU,
                                 telephone_event_pt=101, direction="sendrecv", local_telephone_event_pt=101))
    audio = CallAudio(clock)
    audio.attach(stream)
    fake = FakeDevice()
    device = AudioDevice(clock, input_device=2, output_device="Speakers", stream_factory=fake)
    return device, fake, audio, stream, clock, transport


def test_microphone_goes_out_as_rtp_and_rtp_comes_out_of_the_speaker() -> None:
    """Mic frames become RTP packets carrying them; received RTP is what the speaker callback plays."""
    device, fake, audio, stream, clock, transport = setup()
    device.connect(audio)
    assert fake.running and fake.opened[0]["device"] == (2, "Speakers")
    assert fake.opened[0]["samplerate"] == 8000 and fake.opened[0]["blocksize"] == 160
    mic = tone(700)
    for _ in range(3):
        fake.tick(mic)
        clock.run_threads()
        clock.advance(0.02)
    sent = [RtpPacket.parse(d) for d, _ in transport.written]
    assert sent and g711.ulaw_decode(sent[0].payload) == g711.ulaw_decode(g711.ulaw_encode(mic))
    heard = tone(450)
    stream.datagramReceived(RtpPacket(0, 1, 0, 5, payload=g711.ulaw_encode(heard)).to_bytes(), REMOTE)
    assert fake.tick(bytes(320)) == g711.ulaw_decode(g711.ulaw_encode(heard))
    assert fake.tick(bytes(320)) == bytes(320)  # nothing more received: silence


def test_mute_and_speaker_mute() -> None:
    """muted: the microphone sends nothing; speaker_muted: the speaker plays silence."""
    device, fake, audio, stream, clock, transport = setup()
    device.connect(audio)
    device.muted = True
    for _ in range(5):
        fake.tick(tone(700))
        clock.run_threads()
        clock.advance(0.02)
    assert transport.written == []
    device.speaker_muted = True
    stream.datagramReceived(RtpPacket(0, 1, 0, 5, payload=g711.ulaw_encode(tone(450))).to_bytes(), REMOTE)
    assert fake.tick(bytes(320)) == bytes(320)


def test_speaker_queue_is_bounded_and_devices_can_change() -> None:
    """Received faster than played: only SPEAKER_FRAMES wait; select() reopens on other devices; disconnect closes."""
    device, fake, audio, stream, clock, transport = setup()
    device.connect(audio)
    for i in range(SPEAKER_FRAMES + 4):
        stream.datagramReceived(RtpPacket(0, i, 160 * i, 5, payload=g711.ulaw_encode(tone(450))).to_bytes(), REMOTE)
    played = [fake.tick(bytes(320)) for _ in range(SPEAKER_FRAMES + 2)]
    assert sum(1 for p in played if p != bytes(320)) == SPEAKER_FRAMES
    device.select(input_device=5, output_device=6)
    assert fake.opened[-1]["device"] == (5, 6) and fake.closed == 1 and fake.running
    device.disconnect()
    device.disconnect()
    assert fake.closed == 2 and not fake.running and device.audio is None


def test_a_failing_device_leaves_the_call_alone() -> None:
    """The factory raises (no such device): connect() raises, no sink stays attached."""
    clock = ThreadedClock()
    audio = CallAudio(clock)

    def broken(**kwargs: Any) -> Any:
        raise OSError("no such device")

    device = AudioDevice(clock, stream_factory=broken)
    with pytest.raises(OSError):
        device.connect(audio)
    assert device.audio is None


def test_list_devices_reads_portaudio() -> None:
    """list_devices() through sounddevice (an empty list on a machine without sound)."""
    try:
        devices = list_devices()
    except AudioError as e:
        pytest.skip(f"sounddevice/PortAudio missing: {e}")
    assert all(d.inputs >= 0 and d.outputs >= 0 for d in devices)

    class FakeSD:
        @staticmethod
        def query_devices() -> list[dict[str, Any]]:
            return [{"name": "Mic", "max_input_channels": 1, "max_output_channels": 0}]

    assert [(d.index, d.name, d.inputs) for d in list_devices(FakeSD)] == [(0, "Mic", 1)]
