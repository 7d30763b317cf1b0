"""Recording: frames placed by RTP timestamp, silence bounded by max_gap and by real time."""

from __future__ import annotations

from txsipua.media.recording import Recording

FRAME = b"\x01\x02" * 160  # 20 ms


def test_reordering_and_loss_within_real_time():
    rec = Recording()
    rec.add(5, 1000, FRAME, 0.00)
    rec.add(5, 1000 + 320, FRAME, 0.04)  # frame 1 lost
    rec.add(5, 1000 + 160, FRAME, 0.05)  # ...then late
    assert rec.pcm() == FRAME * 3 and rec.gaps_cut == 0


def test_leaping_timestamps_grow_at_real_time_only():
    rec = Recording()
    for i in range(100):
        rec.add(5, (i * 800_000) & 0xFFFFFFFF, FRAME, i * 0.02)
    assert len(rec) == 100 * len(FRAME)  # 2 s of call, 2 s of recording
    assert rec.gaps_cut == 99


def test_long_silence_shortened_to_max_gap():
    rec = Recording(max_gap=1.0)
    rec.add(5, 0, FRAME, 0.0)
    rec.add(5, 160 + 8000 * 5, FRAME, 5.0)
    assert len(rec) == 2 * len(FRAME) + 16_000
    assert rec.gaps_cut == 1


def test_new_ssrc_continues_at_the_end_and_old_frames_are_dropped():
    rec = Recording()
    rec.add(5, 50_000, FRAME, 0.0)
    rec.add(6, 7, FRAME, 0.02)
    rec.add(6, (7 - 8000) & 0xFFFFFFFF, FRAME, 0.04)  # before the new SSRC's start: nowhere to go
    assert rec.pcm() == FRAME * 2
