"""Guard: the pure media package imports without Twisted and reads no clock or randomness."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import attrs, threading  # third-party and stdlib modules may use the clock; only ours may not
for name in ("twisted", "random", "secrets", "uuid", "socket", "time"):
    sys.modules[name] = None  # any import of them now fails
import txsipua.media.sdp, txsipua.media.offer_answer, txsipua.media.rtp
import txsipua.media.g711, txsipua.media.dtmf, txsipua.media.wav, txsipua.media.audio, txsipua.media.digits
assert len(txsipua.media.audio.ToneSource(1000.0, 0.02).read()) == 320
offer = txsipua.media.offer_answer.make_offer("192.0.2.1", 4000, session_id=1)
assert txsipua.media.sdp.SessionDescription.parse(offer.to_bytes()) == offer
print("ok")
"""


def test_media_imports_without_twisted_clock_or_random():
    """Importing and using txsipua.media with twisted/random/time/socket blocked works."""
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
