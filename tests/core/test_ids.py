"""Tests for txsipua.core.ids: identifiers from an injected randomness source."""

from __future__ import annotations

import re

from txsipua.core.ids import BRANCH_MAGIC_COOKIE, IdGenerator, SequentialIds


def test_branch_has_magic_cookie_and_64_bits() -> None:
    """A branch is the RFC 3261 §8.1.1.7 cookie followed by 16 hex digits."""
    ids = IdGenerator()
    branch = ids.branch()
    assert branch.startswith(BRANCH_MAGIC_COOKIE)
    assert re.fullmatch(r"z9hG4bK[0-9a-f]{16}", branch)


def test_default_identifiers_differ() -> None:
    """The default generator (secrets) does not repeat itself."""
    ids = IdGenerator()
    assert len({ids.branch() for _ in range(200)}) == 200
    assert len({ids.tag() for _ in range(200)}) == 200


def test_injected_token_is_used_for_everything() -> None:
    """Every identifier comes from the injected token callable."""
    calls: list[int] = []

    def token(n: int) -> str:
        calls.append(n)
        return "ab" * n

    ids = IdGenerator(token=token)
    assert ids.branch() == "z9hG4bK" + "ab" * 8
    assert ids.tag() == "ab" * 8
    assert ids.call_id("192.0.2.1") == "ab" * 12 + "@192.0.2.1"
    assert ids.call_id() == "ab" * 12
    assert ids.cnonce() == "ab" * 8
    assert calls == [8, 8, 12, 12, 8]


def test_sequential_ids_are_deterministic() -> None:
    """SequentialIds counts up, keeping the real token lengths."""
    ids = SequentialIds()
    assert ids.branch() == "z9hG4bK0000000000000001"
    assert ids.tag() == "0000000000000002"
    assert ids.call_id("h.example.com") == "000000000000000000000003@h.example.com"
    assert ids.cnonce() == "0000000000000004"
    again = SequentialIds()
    assert again.branch() == "z9hG4bK0000000000000001"
    assert isinstance(ids, IdGenerator)


def test_sequential_ids_start() -> None:
    """The counter can start elsewhere, so two generators in one test never collide."""
    ids = SequentialIds(counter=0x1000)
    assert ids.tag() == "0000000000001001"


def test_random_hex_reads_ahead_and_never_repeats() -> None:
    """RandomHex hands out fresh hex digits of the requested length across buffer refills."""
    from txsipua.core.ids import RandomHex

    token = RandomHex(chunk=64)
    seen = [token(8) for _ in range(100)]  # 12 refills of a 64-byte buffer
    assert all(len(t) == 16 and int(t, 16) >= 0 for t in seen)
    assert len(set(seen)) == len(seen)
    assert len(token(100)) == 200  # larger than the chunk: read at once
    token.forget()
    assert token(8) not in seen


def test_default_ids_in_a_forked_child_differ_from_the_parent() -> None:
    """After fork the child's default generator drops the parent's read-ahead digits."""
    import os

    from txsipua.core.ids import IdGenerator

    ids = IdGenerator()
    ids.tag()  # fill the buffer in the parent
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(w, ids.tag().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.waitpid(pid, 0)
    os.close(r)
    assert len(child) == 16 and child != ids.tag()
