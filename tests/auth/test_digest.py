"""Digest computations against the RFC worked examples and our own golden vectors."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from txsipua.auth.digest import (
    ALGORITHMS,
    base_algorithm,
    canonical_algorithm,
    compute_ha1,
    compute_ha2,
    compute_response,
    compute_userhash,
    digest_length,
    hash_hex,
    is_sess,
)


def test_rfc2617_section_3_5() -> None:
    """RFC 2617 §3.5: Mufasa / "Circle Of Life", qop=auth, MD5."""
    ha1 = compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    response = compute_response(
        algorithm="MD5",
        ha1=ha1,
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        cnonce="0a4f113b",
        nc="00000001",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, expected: str) -> None:
    """RFC 7616 §3.9.1: the MD5 and SHA-256 examples for Mufasa / "Circle of Life"."""
    ha1 = compute_ha1(algorithm, "Mufasa", "http-auth@example.org", "Circle of Life")
    response = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=RFC7616_NONCE,
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        cnonce=RFC7616_CNONCE,
        nc="00000001",
    )
    assert response == expected


def test_rfc7616_section_3_9_2_userhash() -> None:
    """RFC 7616 §3.9.2: the hashed username of "Jäsøn Doe" with SHA-512-256 (UTF-8)."""
    assert (
        compute_userhash("SHA-512-256", "J\u00e4s\u00f8n Doe", "api@example.org")
        == "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    )


# Golden vectors: alice/atlanta.example.com/zanzibar, INVITE sip:bob@biloxi.example.com,
# nonce 84a4cc6f3082121f32b42a2187831a9e, cnonce 0a4f113b, nc 00000001, body b"v=0\r\n".
VECTORS = [
    ("MD5", None, "88da6aba90408d42b662f0e0cfd95996"),
    ("MD5", "auth", "3346adf04a1c5bd5489643f0d1ca67bd"),
    ("MD5", "auth-int", "3fdba03e9b8b80948d6f3c09287fd2ba"),
    ("MD5-sess", None, "3828aa9a67db017fff1215fb5c8c72b3"),
    ("MD5-sess", "auth", "436acef9ab650993ead57784231f3ba2"),
    ("MD5-sess", "auth-int", "1b3dc7a9b2b80d6ac378dad19597293d"),
    ("SHA-256", None, "b2c5965726b7b2042726dee0026445b3b58f86d8a2e1bb2e473316641aa5529a"),
    ("SHA-256", "auth", "460473194aaf2e8dae5e40aa52d35753d416842c3ee7234c5008f55a7012c959"),
    ("SHA-256", "auth-int", "7e708c190dc034dad3f35700b6b3f0f468dde839304b9257a12230c2fdaec799"),
    ("SHA-256-sess", None, "54b61d0374545970ffef536ada36b95e04ca5f2beaf02b24ad33ca8fe03fae21"),
    ("SHA-256-sess", "auth", "ef53962965f7e661c602c0921dbb3e5a788a34d062e566b6ff25433e1911e9df"),
    (
        "SHA-256-sess",
        "auth-int",
        "2c2df76aee13dbddc5fbc4564f5058f3dacddd275b36d6b2bf247fdf194c907c",
    ),
    ("SHA-512-256", None, "d4daeadba09e721ece04f5a35038cbee8be9f6db8c113b8c6898c73480730fab"),
    ("SHA-512-256", "auth", "249272b6d48a4e75ee558a39f6acc4f0a30d21e7311fd507a30fa4df740842d3"),
    (
        "SHA-512-256",
        "auth-int",
        "d2fbbc9f18dd39408caea2da4a25398f59cd1240c066b5482eb396a9860bf768",
    ),
    (
        "SHA-512-256-sess",
        None,
        "86d34de1d56508e8c1eb87619d37d8b1bb7821070a467cb3250f51de44979a8b",
    ),
    (
        "SHA-512-256-sess",
        "auth",
        "dc5b0d38b820a2753c788ec67e86b8d92c306fb35eb25f1b642197dd4a8ca58a",
    ),
    (
        "SHA-512-256-sess",
        "auth-int",
        "6c2d3a7cd82d009b20b885a574e36898ef59461fab17bacd12bafea0ac44349b",
    ),
]


def _vector_response(algorithm: str, qop: str | None, body: bytes = b"v=0\r\n") -> str:
    ha1 = compute_ha1(algorithm, "alice", "atlanta.example.com", "zanzibar")
    return compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce="84a4cc6f3082121f32b42a2187831a9e",
        method="INVITE",
        uri="sip:bob@biloxi.example.com",
        qop=qop,
        cnonce="0a4f113b",
        nc="00000001" if qop else None,
        body=body,
    )


@pytest.mark.parametrize(("algorithm", "qop", "expected"), VECTORS)
def test_golden_vectors(algorithm: str, qop: str | None, expected: str) -> None:
    """Every algorithm x qop x sess combination against precomputed digests."""
    assert _vector_response(algorithm, qop) == expected


def test_vectors_cover_every_combination() -> None:
    """The golden table holds each supported algorithm with no qop, auth and auth-int."""
    assert {(a, q) for a, q, _ in VECTORS} == {
        (a, q) for a in ALGORITHMS for q in (None, "auth", "auth-int")
    }


def _reference(hasher: Any, algorithm: str, qop: str | None, body: bytes) -> str:
    """The RFC 7616 §3.4 formulas spelled out with hashlib (an independent oracle)."""

    def h(text: str | bytes) -> str:
        data = text.encode() if isinstance(text, str) else text
        return str(hasher(data).hexdigest())

    nonce, cnonce, nc = "n0nce", "c", "0000000a"
    ha1 = h("bob:biloxi.example.com:pw")
    if algorithm.endswith("-sess"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"BYE:sip:a@b:{h(body)}") if qop == "auth-int" else h("BYE:sip:a@b")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("qop", [None, "auth", "auth-int"])
@pytest.mark.parametrize("body", [b"", b"hello\r\n"])
def test_against_reference(algorithm: str, qop: str | None, body: bytes) -> None:
    """compute_response agrees with a direct hashlib transcription, empty body included."""
    base = base_algorithm(algorithm)
    hasher = {
        "MD5": hashlib.md5,
        "SHA-256": hashlib.sha256,
        "SHA-512-256": lambda data: hashlib.new("sha512_256", data),
    }[base]
    got = compute_response(
        algorithm=algorithm,
        ha1=compute_ha1(algorithm, "bob", "biloxi.example.com", "pw"),
        nonce="n0nce",
        method="BYE",
        uri="sip:a@b",
        qop=qop,
        cnonce="c",
        nc="0000000a" if qop else None,
        body=body,
    )
    assert got == _reference(hasher, algorithm, qop, body)


def test_auth_int_hashes_empty_body() -> None:
    """auth-int with an empty body differs from auth (H("") is part of HA2)."""
    assert _vector_response("MD5", "auth-int", b"") != _vector_response("MD5", "auth", b"")
    assert (
        compute_ha2("MD5", "BYE", "sip:a@b", "auth-int", b"")
        == hashlib.md5(b"BYE:sip:a@b:" + hashlib.md5(b"").hexdigest().encode()).hexdigest()
    )


def test_algorithm_names_case_insensitive() -> None:
    """Algorithm names match case-insensitively; absent means MD5 (RFC 2617 §3.2.1)."""
    assert canonical_algorithm("sha-256-SESS") == "SHA-256-sess"
    assert canonical_algorithm(None) == "MD5"
    assert canonical_algorithm("SHA-1") is None
    assert _vector_response("md5-SESS", "auth") == _vector_response("MD5-sess", "auth")
    assert compute_ha1(None, "a", "b", "c") == compute_ha1("MD5", "a", "b", "c")
    assert is_sess("sha-512-256-sess") and not is_sess("SHA-512-256")
    assert digest_length("MD5-sess") == 32 and digest_length("SHA-512-256") == 64
    assert hash_hex("SHA-256", b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_sess_cnonce_override() -> None:
    """cnonce_for_sess/nonce_for_sess derive the session HA1 from the first exchange."""
    ha1 = compute_ha1("MD5-sess", "a", "r", "p")
    common = {
        "algorithm": "MD5-sess",
        "ha1": ha1,
        "method": "BYE",
        "uri": "sip:x",
        "qop": "auth",
        "nc": "00000002",
    }
    first = compute_response(nonce="n1", cnonce="c1", **common)  # type: ignore[arg-type]
    same = compute_response(
        nonce="n1",
        cnonce="c1",
        cnonce_for_sess="c1",
        nonce_for_sess="n1",
        **common,  # type: ignore[arg-type]
    )
    other = compute_response(nonce="n1", cnonce="c2", cnonce_for_sess="c1", **common)  # type: ignore[arg-type]
    assert first == same
    sess_ha1 = hashlib.md5(f"{ha1}:n1:c1".encode()).hexdigest()
    ha2 = hashlib.md5(b"BYE:sip:x").hexdigest()
    assert other == hashlib.md5(f"{sess_ha1}:n1:00000002:c2:auth:{ha2}".encode()).hexdigest()


def test_unicode_is_utf8() -> None:
    """Usernames, realms and passwords are hashed as UTF-8 (RFC 7616 §3.4.1)."""
    assert (
        compute_ha1("MD5", "jürgen", "ré", "pässword")
        == hashlib.md5("jürgen:ré:pässword".encode()).hexdigest()
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithm": "SHA-1"},
        {"qop": "auth-conf"},
        {"qop": "auth", "cnonce": None},
        {"qop": "auth", "nc": None},
        {"algorithm": "MD5-sess", "qop": None, "cnonce": None},
    ],
)
def test_errors(kwargs: dict[str, object]) -> None:
    """Unsupported algorithm/qop and missing cnonce/nc raise ValueError."""
    args: dict[str, object] = {
        "algorithm": "MD5",
        "ha1": "0" * 32,
        "nonce": "n",
        "method": "BYE",
        "uri": "sip:x",
        "qop": "auth",
        "cnonce": "c",
        "nc": "00000001",
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        compute_response(**args)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compute_ha1("SHA-1", "a", "b", "c")
