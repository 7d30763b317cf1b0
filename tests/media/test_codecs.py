"""The codec layer (txsipua.media.codecs): frame sizes, clock-rate quirks, round trips by signal, concealment."""

from __future__ import annotations

import math
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txsipua.media import g711
from txsipua.media.codecs import (
    CODECS,
    G722,
    OPUS,
    PCMA,
    PCMU,
    AudioCodec,
    CodecUnavailable,
    lookup,
    resample,
)
from txsipua.media.offer_answer import G722 as G722_SDP
from txsipua.media.offer_answer import OPUS as OPUS_SDP
from txsipua.media.offer_answer import PCMU as PCMU_SDP
from txsipua.media.offer_answer import TELEPHONE_EVENT_PTS, make_answer, make_offer, negotiate
from txsipua.media.sdp import SessionDescription


def sine(freq: float, rate: int, samples: int, amplitude: int = 8000) -> bytes:
    """16-bit LE mono PCM."""
    return array("h", (int(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(samples))).tobytes()


def share(pcm: bytes, freq: float, rate: int) -> float:
    """Share of the power at ``freq`` (Goertzel)."""
    x = array("h")
    x.frombytes(pcm)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / ((sum(v * v for v in x) or 1) * len(x) / 2)


def test_rates_and_frame_sizes() -> None:
    """G.722: RTP clock 8000 but 16 kHz PCM (RFC 3551 §4.5.2); Opus: 48000 both (RFC 7587)."""
    assert (G722.clock_rate, G722.sample_rate, G722.frame_samples(20), G722.timestamp_step(20)) == (8000, 16000,
                                                                                                    320, 160)
    assert (OPUS.clock_rate, OPUS.frame_samples(20), OPUS.timestamp_step(20), OPUS.channels) == (48000, 960, 960, 2)
    assert PCMU.frame_samples(30) == PCMU.timestamp_step(30) == 240
    assert lookup("g722") is G722 and lookup("OPUS", 48000) is OPUS and lookup("opus", 8000) is None
    assert lookup("G729") is None and set(CODECS) == {"pcmu", "pcma", "g722", "opus"}


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_fast_paths_match_the_reference(codec: AudioCodec) -> None:
    """The translate/numpy paths give exactly txsipua.media.g711's octets and samples."""
    encoder, decoder = codec.coders()
    every = array("H", range(65536)).tobytes()
    ref_enc, ref_dec = (g711.ulaw_encode, g711.ulaw_decode) if codec is PCMU else (g711.alaw_encode, g711.alaw_decode)
    assert encoder.encode(every) == ref_enc(every)
    assert decoder.decode(bytes(range(256))) == ref_dec(bytes(range(256)))


@pytest.mark.parametrize("codec", [G722, OPUS], ids=["G722", "opus"])
def test_wideband_round_trip_keeps_a_5khz_tone(codec: AudioCodec) -> None:
    """50 frames of 5 kHz through encode/decode come out with their energy at 5 kHz (G.711 could not carry it)."""
    if not codec.available():
        pytest.skip(f"{codec.name} needs pip install 'txsipua[{codec.extra}]'")
    encoder, decoder = codec.coders(20)
    n = codec.frame_samples(20)
    pcm = sine(5000, codec.sample_rate, n * 50)
    out = b"".join(decoder.decode(encoder.encode(pcm[2 * n * k : 2 * n * (k + 1)])) for k in range(50))
    assert len(out) == len(pcm)
    assert share(out[len(out) // 2 :], 5000, codec.sample_rate) > 0.6
    lost = decoder.conceal(n)
    assert len(lost) == 2 * n


def test_repeat_concealment_fades_then_silence() -> None:
    """G.711 loss concealment: the last frame at 1/2, 1/4, 1/8, then silence."""
    encoder, decoder = PCMU.coders()
    frame = sine(1000, 8000, 160)
    heard = decoder.decode(encoder.encode(frame))
    level = max(abs(v) for v in array("h", heard))
    levels = []
    for _ in range(4):
        x = array("h")
        x.frombytes(decoder.conceal(160))
        levels.append(max(abs(v) for v in x))
    assert levels[0] == pytest.approx(level / 2, abs=2) and levels[2] == pytest.approx(level / 8, abs=2)
    assert levels[3] == 0


def test_missing_library_names_the_extra() -> None:
    """A codec whose module is absent is unavailable and says which extra installs it."""
    fake = AudioCodec("X", 120, 8000, 8000, module="txsipua_no_such_module", extra="x")
    assert not fake.available()
    with pytest.raises(CodecUnavailable, match=r"txsipua\[x\]"):
        fake.coders()


@given(st.binary(max_size=400).filter(lambda b: len(b) % 2 == 0), st.sampled_from([8000, 16000, 48000]),
       st.sampled_from([8000, 16000, 48000]))
def test_resample_length_and_bounds(pcm: bytes, a: int, b: int) -> None:
    """Resampling gives len * b // a samples and stays within the input's range."""
    out = resample(pcm, a, b)
    assert len(out) == 2 * (len(pcm) // 2 * b // a)
    if pcm and out:
        x, y = array("h"), array("h")
        x.frombytes(pcm)
        y.frombytes(out)
        assert min(x) <= min(y) and max(y) <= max(x)


def test_resample_keeps_a_tone() -> None:
    """A 1 kHz tone at 8 kHz up to 16 kHz and 48 kHz and back keeps its frequency."""
    pcm = sine(1000, 8000, 1600)
    assert share(resample(pcm, 8000, 16000), 1000, 16000) > 0.8
    assert share(resample(resample(pcm, 8000, 48000), 48000, 8000), 1000, 8000) > 0.8
    with pytest.raises(ValueError):
        resample(b"\0", 8000, 16000)


def test_offer_lists_telephone_event_per_clock_rate_and_answer_picks_the_matching_one() -> None:
    """opus + G722 + PCMU: events at 48000 (PT 103) and 8000 (PT 101); the one at the chosen codec's rate is used."""
    offer = SessionDescription.parse(make_offer("192.0.2.10", 4000, codecs=(OPUS_SDP, G722_SDP, PCMU_SDP),
                                                session_id=1).to_bytes())
    m = offer.media[0]
    assert m.encoding(111) == "opus/48000/2" and m.fmtp[111] == "minptime=10;useinbandfec=1"
    assert m.encoding(TELEPHONE_EVENT_PTS[48000]) == "telephone-event/48000"
    assert m.encoding(TELEPHONE_EVENT_PTS[8000]) == "telephone-event/8000"
    answer = make_answer(offer, "192.0.2.20", 5000, codecs=(OPUS_SDP, PCMU_SDP), session_id=2, prefer="local")
    params = negotiate(offer, answer)
    assert params.codec.name == "opus" and params.telephone_event_pt == 103
    g722_only = make_answer(offer, "192.0.2.20", 5000, codecs=(G722_SDP,), session_id=2)
    params = negotiate(offer, g722_only)
    assert params.codec.name == "G722" and params.telephone_event_pt == 101
