"""Challenge and credential grammar: parsing, serialising, and fuzzing (RFC 7616 §3.3-3.4)."""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txsipua.auth.challenge import (
    Challenge,
    DigestAuthorization,
    auth_scheme,
    parse_authorization,
    parse_challenges,
    quote,
)
from txsipua.errors import ParseError


def one(value: str, header: str = "WWW-Authenticate") -> Challenge:
    challenges = parse_challenges(value, header)
    assert len(challenges) == 1
    return challenges[0]


def test_rfc3261_example() -> None:
    """The 401 challenge of RFC 3261 §22.4 / §25 style."""
    c = one(
        'Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", '
        'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
    )
    assert c.scheme == "Digest" and c.is_digest
    assert c.realm == "atlanta.com"
    assert c.domain == "sip:boxesbybob.com"
    assert c.qop == ("auth",)
    assert c.nonce == "f84f1cec41e6cbe5aea9c8e88d359"
    assert c.opaque == ""
    assert c.stale is False
    assert c.algorithm == "MD5"
    assert c.header == "WWW-Authenticate"


def test_case_insensitive_names_values_kept() -> None:
    """Scheme and parameter names are case-insensitive; values keep their case."""
    c = one('dIgEsT REALM="Example.COM", NoNcE="AbC", Algorithm=sha-256', "Proxy-Authenticate")
    assert c.scheme == "Digest"
    assert c.realm == "Example.COM"
    assert c.nonce == "AbC"
    assert c.algorithm == "sha-256"
    assert c.header == "Proxy-Authenticate"
    assert set(c.params) == {"realm", "nonce", "algorithm"}


def test_quoted_string_escapes() -> None:
    """Backslash escapes in quoted-strings are undone; commas and = inside quotes are data."""
    c = one(r'Digest realm="a \"quoted\" realm, with = and \\ ", nonce="x\y"')
    assert c.realm == 'a "quoted" realm, with = and \\ '
    assert c.nonce == "xy"


def test_qop_list_and_unquoted_token() -> None:
    """qop="auth,auth-int" is a list; a token qop value is accepted too."""
    assert one('Digest realm="r", nonce="n", qop="auth, auth-int"').qop == ("auth", "auth-int")
    assert one('Digest realm="r", nonce="n", qop=auth').qop == ("auth",)
    assert one('Digest realm="r", nonce="n"').qop == ()


@pytest.mark.parametrize(
    ("text", "stale"),
    [
        ("TRUE", True),
        ("true", True),
        ('"True"', True),
        ("false", False),
        ("FALSE", False),
        ("yes", False),
    ],
)
def test_stale(text: str, stale: bool) -> None:
    """stale compares case-insensitively with "true"."""
    assert one(f'Digest realm="r", nonce="n", stale={text}').stale is stale


def test_unknown_parameters_kept_but_ignored() -> None:
    """Unknown parameters are kept in params and do not disturb the known ones."""
    c = one('Digest realm="r", charset=UTF-8, nonce="n", x-extension="a, b", userhash=true')
    assert c.params["charset"] == "UTF-8"
    assert c.params["x-extension"] == "a, b"
    assert c.userhash is True


def test_several_challenges_in_one_field() -> None:
    """RFC 7235 §4.1: several challenges, of several schemes, comma-separated in one field."""
    cs = parse_challenges(
        'Basic realm="simple", Digest realm="r1", nonce="n1", algorithm=SHA-256, '
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", '
        "Negotiate, NTLM abc==, Digest realm=r2,nonce=n2"
    )
    assert [c.scheme for c in cs] == ["Basic", "Digest", "Newauth", "Negotiate", "NTLM", "Digest"]
    assert cs[0].realm == "simple"
    assert cs[1].realm == "r1" and cs[1].algorithm == "SHA-256"
    assert cs[2].params == {"realm": "apps", "type": "1", "title": 'Login to "apps"'}
    assert cs[4].token68 == "abc=="
    assert cs[5].realm == "r2" and cs[5].nonce == "n2"


def test_empty_list_elements_and_whitespace() -> None:
    """Empty list elements and odd white space are tolerated (RFC 7230 §7)."""
    cs = parse_challenges(' ,Digest  realm = "r" ,, nonce="n" ,\t, Basic realm="b"  ')
    assert [(c.scheme, c.realm) for c in cs] == [("Digest", "r"), ("Basic", "b")]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        ",,",
        'Digest realm="r"',  # no nonce
        'Digest nonce="n"',  # no realm
        'Digest realm="r, nonce="n"',  # unterminated
        'Digest realm="r" nonce="n"',  # missing comma
        'Digest realm="r", realm="s", nonce="n"',  # duplicate
        'Digest realm=, nonce="n"',
        '"Digest" realm="r"',
        'Digest realm="r", nonce="n\\',
        'Digest realm="a\x01", nonce="n"',
        "Digest abc==",
        'Digest realm="r", nonce="n", =x',
    ],
)
def test_invalid(value: str) -> None:
    """Malformed challenges raise ParseError with status 400."""
    with pytest.raises(ParseError) as info:
        parse_challenges(value)
    assert info.value.status == 400


def test_to_header_value() -> None:
    """Serialisation quotes realm/domain/nonce/opaque/qop, leaves algorithm/stale as tokens."""
    c = Challenge.digest(
        'my "realm"',
        "abc",
        opaque="op",
        algorithm="SHA-256",
        qop=("auth", "auth-int"),
        stale=True,
        domain="sip:a sip:b",
    )
    assert c.to_header_value() == (
        'Digest realm="my \\"realm\\"", domain="sip:a sip:b", nonce="abc", opaque="op", '
        'stale=true, algorithm=SHA-256, qop="auth,auth-int"'
    )
    assert parse_challenges(c.to_header_value()) == [c]


def test_reserialise_is_fixpoint() -> None:
    """A parsed challenge serialises to text that parses back to the same value."""
    c = one('digest Realm="r", NONCE="n", stale=TRUE, qop="auth , auth-int", Foo=bar')
    again = one(c.to_header_value())
    assert again == c


def test_quote_rejects_controls() -> None:
    """quote() refuses CR/LF; it escapes backslash and DQUOTE."""
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError):
        quote("a\r\nb")


# -- credentials -----------------------------------------------------------------

AUTHZ = (
    'Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
    'uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", '
    'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_parse_authorization() -> None:
    """RFC 3261 §22.4-style credentials parse into their fields."""
    a = parse_authorization(AUTHZ)
    assert a.username == "bob"
    assert a.realm == "biloxi.com"
    assert a.uri == "sip:bob@biloxi.com"
    assert a.qop == "auth" and a.nc == "00000001" and a.cnonce == "0a4f113b"
    assert a.response == "6629fae49393a05397450978507c4ef1"
    assert a.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert a.algorithm is None
    assert parse_authorization(a.to_header_value()) == a


def test_authorization_username_star() -> None:
    """username* (RFC 7616 §3.4.4, RFC 8187 encoding) decodes as UTF-8."""
    a = parse_authorization(
        "Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=r, nonce=n, uri=u, response=x"
    )
    assert a.username == "J\u00e4s\u00f8n Doe"


@pytest.mark.parametrize(
    "value",
    [
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        'Digest realm="r", nonce="n", uri="u", response="x"',
        'Digest username="u", nonce="n", uri="u", response="x"',
        'Digest username="u", realm="r", uri="u", response="x"',
        'Digest username="u", realm="r", nonce="n", response="x"',
        'Digest username="u", realm="r", nonce="n", uri="u"',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, cnonce="c", nc=1',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", Digest',
        "Digest username*=latin1''x, realm=r, nonce=n, uri=u, response=x",
        "Digest username*=UTF-8''%FF, realm=r, nonce=n, uri=u, response=x",
        "Digest",
    ],
)
def test_parse_authorization_invalid(value: str) -> None:
    """Missing fields, wrong scheme, bad nc or bad username* raise ParseError."""
    with pytest.raises(ParseError):
        parse_authorization(value)


def test_auth_scheme() -> None:
    """auth_scheme() returns the scheme token as sent."""
    assert auth_scheme("  Basic abc") == "Basic"
    with pytest.raises(ParseError):
        auth_scheme('"x"')


# -- property tests ------------------------------------------------------------------

# values: the delimiters that matter to the grammar, plus any non-control character
_text = st.text(
    alphabet=st.sampled_from(list(' \t",\\=;:<>@azAZ09-é'))
    | st.characters(min_codepoint=0x20, blacklist_categories=["Cs"], blacklist_characters="\x7f"),
    max_size=12,
)
_token = st.text(alphabet="abcXYZ019-.!%*_+`'~", min_size=1, max_size=8)


@st.composite
def challenges(draw: st.DrawFn) -> Challenge:
    """Digest challenges built with Challenge.digest (params consistent with fields)."""
    extra_names = draw(
        st.lists(
            _token.filter(
                lambda t: (
                    t.lower()
                    not in {
                        "realm",
                        "domain",
                        "nonce",
                        "opaque",
                        "stale",
                        "algorithm",
                        "qop",
                        "userhash",
                    }
                )
            ),
            max_size=3,
            unique_by=str.lower,
        )
    )
    return Challenge.digest(
        draw(_text),
        draw(_text),
        opaque=draw(st.none() | _text),
        algorithm=draw(
            st.none() | st.sampled_from(["MD5", "SHA-256", "sha-512-256-SESS"]) | _token
        ),
        qop=tuple(draw(st.lists(st.sampled_from(["auth", "auth-int", "auth-conf"]), max_size=3))),
        stale=draw(st.booleans()),
        domain=draw(st.none() | _text),
        userhash=draw(st.booleans()),
        extra={name.lower(): draw(_text) for name in extra_names},
        header=draw(st.sampled_from(["WWW-Authenticate", "Proxy-Authenticate"])),
    )


@settings(max_examples=50, deadline=None)
@given(st.lists(challenges(), min_size=1, max_size=3))
def test_round_trip(cs: list[Challenge]) -> None:
    """Any challenge we serialise parses back to the same value, also several in one field."""
    header = cs[0].header
    cs = [attrs.evolve(c, header=header) for c in cs]
    for c in cs:
        assert parse_challenges(c.to_header_value(), c.header) == [c]
    joined = ", ".join(c.to_header_value() for c in cs)
    assert parse_challenges(joined, header) == cs


@st.composite
def authorizations(draw: st.DrawFn) -> DigestAuthorization:
    """Digest credentials with consistent params."""
    qop = draw(st.none() | st.sampled_from(["auth", "auth-int"]))
    fields = {
        "username": draw(_text),
        "realm": draw(_text),
        "nonce": draw(_text),
        "uri": draw(_text),
        "response": draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)),
        "algorithm": draw(st.none() | _token),
        "cnonce": draw(_text) if qop else draw(st.none() | _text),
        "nc": draw(st.text(alphabet="0123456789abcdef", min_size=8, max_size=8)) if qop else None,
        "qop": qop,
        "opaque": draw(st.none() | _text),
        "userhash": draw(st.booleans()),
    }
    params = {k: v for k, v in fields.items() if isinstance(v, str)}
    if fields["userhash"]:
        params["userhash"] = "true"
    return DigestAuthorization(params=params, **fields)  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(authorizations())
def test_authorization_round_trip(a: DigestAuthorization) -> None:
    """Any credentials we serialise parse back to the same value."""
    assert parse_authorization(a.to_header_value()) == a


_garbage = st.text(
    alphabet=st.sampled_from(list('Digest Basic realm=nonce"\\,=; \t\r\nqop=auth\x00\x7fé')),
    max_size=60,
) | st.text(max_size=60)


@settings(max_examples=300, deadline=None)
@given(_garbage)
def test_only_parse_error_escapes(value: str) -> None:
    """Whatever the text, the parsers return or raise ParseError, nothing else."""
    for parser in (parse_challenges, parse_authorization, auth_scheme):
        with contextlib.suppress(ParseError):
            parser(value)


@settings(max_examples=50, deadline=None)
@given(challenges(), st.integers(min_value=0, max_value=200), st.text(max_size=5))
def test_mutated_challenges_only_parse_error(c: Challenge, cut: int, insert: str) -> None:
    """Truncated or spliced valid challenges raise only ParseError."""
    text = c.to_header_value()
    cut %= len(text) + 1
    for mutated in (text[:cut], text[:cut] + insert + text[cut:]):
        with contextlib.suppress(ParseError):
            parse_challenges(mutated)


def test_non_text_input() -> None:
    """Bytes or None are refused with ParseError."""
    for bad in (b"Digest realm=r", None):
        with pytest.raises(ParseError):
            parse_challenges(bad)  # type: ignore[arg-type]
        with pytest.raises(ParseError):
            parse_authorization(bad)  # type: ignore[arg-type]


_param_lists = st.lists(
    st.tuples(
        st.sampled_from(["", " ", "\t", ",", " , ", ",,"]),
        _token,
        st.sampled_from(["=", " = ", "", "=="]),
        _text.map(quote) | _token | st.sampled_from(['"unterminated', '"a\\', '"\\"', '"\x01"']),
    ),
    max_size=4,
).map(lambda items: "".join(a + b + c + d for a, b, c, d in items))


@settings(max_examples=300, deadline=None)
@given(_param_lists, st.booleans())
def test_fast_param_path_matches_reference_scanner(text: str, stop: bool) -> None:
    """The regex fast path and the character scanner agree on every input (value, position, error)."""
    from txsipua.auth.challenge import _parse_params, _parse_params_scan, _Scanner

    def run(parser: Any) -> tuple[Any, int]:
        sc = _Scanner(text)
        try:
            return parser(sc, stop_at_new_scheme=stop), sc.pos
        except ParseError as e:
            return ("error", e.detail), -1

    assert run(_parse_params) == run(_parse_params_scan)


@settings(max_examples=400, deadline=None)
@given(st.tuples(st.sampled_from(["Digest ", "digest\t", " DIGEST  ", "Digest", "Basic ", "Digestx "]), _param_lists,
       st.sampled_from(["", ",", " ", ", x", 'a="b'])).map(lambda t: t[0] + t[1] + t[2]))
def test_whole_value_path_matches_reference_scanner(value: str) -> None:
    """``_params_at_once`` either declines (None) or gives exactly what the scanner parses."""
    from txsipua.auth.challenge import _params_at_once, _parse_params_scan, _Scanner

    fast = _params_at_once(value)
    if fast is None:
        return
    sc = _Scanner(value)
    sc.skip_ws()
    assert (sc.token() or "").lower() == "digest"
    reference, _ = _parse_params_scan(sc, stop_at_new_scheme=False)
    assert fast == reference


def test_whole_value_path_declines_what_it_cannot_vouch_for() -> None:
    """A gap, a missing comma or a repeated name is left to the scanner (which words the error)."""
    from txsipua.auth.challenge import _params_at_once

    assert _params_at_once('Digest a="1", b=2') == {"a": "1", "b": "2"}
    assert _params_at_once('Digest a="x\\"y"') == {"a": 'x"y'}
    assert _params_at_once('Digest a="1" b=2') is None
    assert _params_at_once('Digest a="1", a=2') is None
    assert _params_at_once('Digest a="1", ;b=2') is None
    assert _params_at_once('Basic a="1"') is None
    for bad in ('Digest a="1" b=2', 'Digest a="1", a=2'):
        with pytest.raises(ParseError):
            parse_authorization(bad + ', username="u", realm="r", nonce="n", uri="u", response="r"')
