"""The fake-network tests reuse the hand-built messages of the server tests (tests/server/proxykit.py)."""

import sys
from pathlib import Path

_SERVER_TESTS = str(Path(__file__).resolve().parent.parent / "server")
if _SERVER_TESTS not in sys.path:
    sys.path.insert(0, _SERVER_TESTS)
