"""Parse and serialise digest challenges and credentials (RFC 3261 §25.1, RFC 7235 §2.1, RFC 7616 §3.3-3.4).

The grammar, as RFC 3261 §25.1 and RFC 7235 §2.1 give it::

    WWW-Authenticate  =  "WWW-Authenticate" HCOLON challenge
    challenge         =  ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
    other-challenge   =  auth-scheme [ LWS ( token68 / auth-param *(COMMA auth-param) ) ]
    auth-param        =  auth-param-name EQUAL ( token / quoted-string )
    quoted-string     =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
    quoted-pair       =  "\\" (%x00-09 / %x0B-0C / %x0E-7F)

One header field value may hold several challenges separated by commas (RFC 7235
§4.1): a token followed by white space and then by something other than ``=``
starts a new challenge.  Scheme and parameter names are case-insensitive;
parameter values keep their case (``stale`` and ``userhash`` compare
case-insensitively).

The anatomy of a challenge::

    Digest realm="atlanta.example.com", nonce="84a4cc6f", qop="auth,auth-int", algorithm=SHA-256
    \\____/ \\__________________________________________________________________________/
    scheme                         auth-params (name = token / quoted-string)

Only :class:`~txsipua.errors.ParseError` escapes the parsers, whatever the input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote

import attrs

from txsipua.errors import ParseError

__all__ = [
    "Challenge",
    "DigestAuthorization",
    "auth_scheme",
    "parse_authorization",
    "parse_challenges",
    "quote",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")  (RFC 3261)
# widened with RFC 7230's tchar extras "#$&^|" so HTTP-style peers parse too.
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~#$&^|]+")
_TOKEN_FULL = re.compile(r"[A-Za-z0-9\-.!%*_+`'~#$&^|]+\Z")
# token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="  (RFC 7235 §2.1)
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|\Z))")
_WS = " \t\r\n"
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}\Z")
# RFC 8187 ext-value: charset "'" [ language ] "'" value-chars
_EXT_VALUE = re.compile(r"([A-Za-z0-9!#$%&+\-^_`{}~]+)'[A-Za-z0-9\-]*'(.*)\Z", re.S)

#: Parameters of a digest challenge that are always sent quoted (RFC 7616 §3.3).
_QUOTED_CHALLENGE = ("realm", "domain", "nonce", "opaque", "qop")
#: Parameters of digest credentials that are always sent quoted (RFC 7616 §3.4).
_QUOTED_CREDENTIALS = ("username", "realm", "nonce", "uri", "response", "cnonce", "opaque")


def quote(value: str) -> str:
    """Return ``value`` as a quoted-string, escaping ``\\`` and ``"`` (RFC 3261 §25.1).

    Raises:
        ValueError: ``value`` contains CR, LF or another control character
            that a quoted-string cannot carry.
    """
    for ch in value:
        if (ch < " " and ch != "\t") or ch == "\x7f":
            raise ValueError(f"a quoted-string cannot carry {ch!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_param(name: str, value: str, quoted: bool) -> str:
    if not quoted and _TOKEN_FULL.match(value):
        return f"{name}={value}"
    return f"{name}={quote(value)}"


class _Scanner:
    """A cursor over one header field value."""

    __slots__ = ("text", "pos", "n")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.n = len(text)

    def fail(self, what: str) -> ParseError:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return ParseError(f"bad authentication header: {what} at offset {self.pos} in {shown!r}")

    def skip_ws(self) -> None:
        text, n, pos = self.text, self.n, self.pos
        while pos < n and text[pos] in _WS:
            pos += 1
        self.pos = pos

    def skip_commas(self) -> bool:
        """Skip white space and commas; tell whether a comma was seen."""
        seen = False
        while True:
            self.skip_ws()
            if self.pos < self.n and self.text[self.pos] == ",":
                self.pos += 1
                seen = True
            else:
                return seen

    def at_end(self) -> bool:
        return self.pos >= self.n

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.n else ""

    def token(self) -> str | None:
        m = _TOKEN.match(self.text, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group()

    def quoted_string(self) -> str:
        # at the opening DQUOTE
        text, n = self.text, self.n
        pos = self.pos + 1
        out: list[str] = []
        start = pos
        while True:
            if pos >= n:
                self.pos = pos
                raise self.fail("unterminated quoted-string")
            ch = text[pos]
            if ch == '"':
                out.append(text[start:pos])
                self.pos = pos + 1
                return "".join(out)
            if ch == "\\":
                if pos + 1 >= n:
                    self.pos = pos
                    raise self.fail("quoted-pair at end of input")
                nxt = text[pos + 1]
                if nxt in "\r\n":
                    self.pos = pos
                    raise self.fail("quoted-pair escapes CR or LF")
                out.append(text[start:pos])
                out.append(nxt)
                pos += 2
                start = pos
                continue
            if (ch < " " and ch != "\t") or ch == "\x7f":
                self.pos = pos
                raise self.fail(f"control character {ch!r} in quoted-string")
            pos += 1

    def value(self) -> str:
        if self.peek() == '"':
            return self.quoted_string()
        tok = self.token()
        if tok is None:
            raise self.fail("expected a token or quoted-string value")
        return tok


_TOKEN_CLASS = r"[A-Za-z0-9\-.!%*_+`'~#$&^|]+"
# one auth-param with the separator after it:
#   *WS name *WS "=" *WS ( quoted-string / token ) *WS [ "," *( WS / "," ) ]
# quoted-string contents, unrolled (qdtext run, then quoted-pair + qdtext run, repeated): one
# character class per run instead of an alternation per character (a 64-digit nonce is one run)
_QUOTED_BODY = r'[^"\\\x00-\x08\x0a-\x1f\x7f]*(?:\\[^\r\n][^"\\\x00-\x08\x0a-\x1f\x7f]*)*'
_PARAM_FAST = re.compile(
    r"[ \t\r\n]*(" + _TOKEN_CLASS + r")[ \t\r\n]*=[ \t\r\n]*"
    r'(?:"(' + _QUOTED_BODY + r')"|(' + _TOKEN_CLASS + r"))"
    r"[ \t\r\n]*(,[ \t\r\n,]*)?"
)
# the same auth-param with the whole match as group 1, for findall over a whole value
_PARAM_ALL = re.compile("(" + _PARAM_FAST.pattern + ")")
# "Digest" and the white space after it, at the start of a credentials value
_DIGEST_SCHEME = re.compile(r"[ \t\r\n]*[Dd][Ii][Gg][Ee][Ss][Tt][ \t\r\n]+")
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)


def _parse_params(sc: _Scanner, *, stop_at_new_scheme: bool) -> tuple[dict[str, str], list[str]]:
    """Parse ``auth-param *(COMMA auth-param)``; return (params by lower-case name, names as sent).

    With ``stop_at_new_scheme``, a token not followed by ``=`` ends the list: it
    is the scheme of the next challenge (the scanner is left on it).

    A regex fast path handles the common case (a well-formed list running to
    the end of the value); anything else goes through the character scanner
    :func:`_parse_params_scan`, the reference, which also words the errors.
    """
    text, end = sc.text, sc.n
    pos = sc.pos
    params: dict[str, str] = {}
    order: list[str] = []
    match = _PARAM_FAST.match
    while True:
        m = match(text, pos)
        if m is None:
            break
        name, value, token, separator = m.groups()
        key = name.lower()
        if key in params:
            break
        if value is None:
            value = token
        elif "\\" in value:
            value = _QUOTED_PAIR.sub(r"\1", value)
        params[key] = value
        order.append(key)
        pos = m.end()
        if pos == end:
            sc.pos = pos
            return params, order
        if separator is None:
            break
    return _parse_params_scan(sc, stop_at_new_scheme=stop_at_new_scheme)


def _parse_params_scan(
    sc: _Scanner, *, stop_at_new_scheme: bool
) -> tuple[dict[str, str], list[str]]:
    """The character-by-character reference of :func:`_parse_params`."""
    params: dict[str, str] = {}
    order: list[str] = []
    first = True
    while True:
        if not first:
            if not sc.skip_commas():
                sc.skip_ws()
                if sc.at_end():
                    break
                raise sc.fail("expected a comma between parameters")
            if sc.at_end():
                break
        first = False
        sc.skip_ws()
        mark = sc.pos
        name = sc.token()
        if name is None:
            raise sc.fail("expected a parameter name")
        sc.skip_ws()
        if sc.peek() != "=":
            if stop_at_new_scheme:
                sc.pos = mark
                break
            raise sc.fail(f"expected '=' after {name!r}")
        sc.pos += 1
        sc.skip_ws()
        value = sc.value()
        key = name.lower()
        if key in params:
            raise sc.fail(f"parameter {name!r} appears twice")
        params[key] = value
        order.append(key)
    return params, order


def _split_qop(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() == "true"


@attrs.frozen
class Challenge:
    """One challenge from a ``WWW-Authenticate`` or ``Proxy-Authenticate`` field (RFC 7616 §3.3).

    Build one with :meth:`digest` (which keeps :attr:`params` consistent with
    the named attributes) or get them from :func:`parse_challenges`.

    Attributes:
        scheme: ``"Digest"`` (canonical spelling) or another scheme as sent
            (``"Basic"``, ``"Bearer"``...), which txsipua never answers.
        realm: the realm, unquoted (``""`` when absent from a non-Digest challenge).
        nonce: the nonce, unquoted (``""`` for non-Digest challenges).
        opaque: the opaque value to echo, or ``None``.
        algorithm: the algorithm as sent, ``None`` when absent (meaning MD5).
        qop: the offered qop values, as sent (``("auth", "auth-int")``).
        stale: ``True`` when ``stale=true`` (case-insensitive): retry with the new
            nonce, the credentials were good (RFC 7616 §3.3).
        domain: the protection space URI list, as sent, or ``None``.
        userhash: ``True`` when the server supports hashed usernames (RFC 7616 §3.4.4).
        params: every parameter, names lower-cased, values unquoted.
        header: ``"WWW-Authenticate"`` or ``"Proxy-Authenticate"``.
        token68: the token68 of a non-Digest challenge (``Negotiate abc==``), or ``None``.
    """

    scheme: str
    realm: str
    nonce: str
    opaque: str | None
    algorithm: str | None
    qop: tuple[str, ...]
    stale: bool
    domain: str | None
    userhash: bool
    params: Mapping[str, str] = attrs.field(hash=False)
    header: str = "WWW-Authenticate"
    token68: str | None = None

    @classmethod
    def digest(
        cls,
        realm: str,
        nonce: str,
        *,
        opaque: str | None = None,
        algorithm: str | None = None,
        qop: tuple[str, ...] = (),
        stale: bool = False,
        domain: str | None = None,
        userhash: bool = False,
        extra: Mapping[str, str] | None = None,
        header: str = "WWW-Authenticate",
    ) -> Challenge:
        """Build a Digest challenge whose :attr:`params` agree with its attributes.

        Args:
            extra: further parameters (e.g. ``{"charset": "UTF-8"}``), names
                lower-cased here.
        """
        params: dict[str, str] = {"realm": realm}
        if domain is not None:
            params["domain"] = domain
        params["nonce"] = nonce
        if opaque is not None:
            params["opaque"] = opaque
        if stale:
            params["stale"] = "true"
        if algorithm is not None:
            params["algorithm"] = algorithm
        if qop:
            params["qop"] = ",".join(qop)
        if userhash:
            params["userhash"] = "true"
        for key, value in (extra or {}).items():
            params.setdefault(key.lower(), value)
        return cls(
            scheme="Digest",
            realm=realm,
            nonce=nonce,
            opaque=opaque,
            algorithm=algorithm,
            qop=tuple(qop),
            stale=stale,
            domain=domain,
            userhash=userhash,
            params=params,
            header=header,
        )

    @property
    def is_digest(self) -> bool:
        """``True`` for a Digest challenge."""
        return self.scheme == "Digest"

    def to_header_value(self) -> str:
        """Serialise as one header field value (RFC 7616 §3.3).

        The named attributes win over :attr:`params`; other parameters follow
        in :attr:`params` order.  ``realm``, ``domain``, ``nonce``, ``opaque`` and
        ``qop`` are quoted, ``algorithm``, ``stale`` and ``userhash`` are tokens.

        Raises:
            ValueError: a value holds a character no quoted-string can carry.
        """
        if not self.is_digest:
            if self.token68 is not None:
                return f"{self.scheme} {self.token68}"
            parts = [_format_param(k, v, k in _QUOTED_CHALLENGE) for k, v in self.params.items()]
            return f"{self.scheme} {', '.join(parts)}" if parts else self.scheme
        parts = [f"realm={quote(self.realm)}"]
        if self.domain is not None:
            parts.append(f"domain={quote(self.domain)}")
        parts.append(f"nonce={quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        # flags and the qop list keep their spelling from params when it agrees
        stale = self.params.get("stale")
        if self.stale:
            parts.append("stale=" + (stale if stale is not None and _flag(stale) else "true"))
        elif stale is not None:
            parts.append(_format_param("stale", stale if not _flag(stale) else "false", False))
        if self.algorithm is not None:
            parts.append(_format_param("algorithm", self.algorithm, False))
        if self.qop:
            sent = self.params.get("qop")
            if sent is None or _split_qop(sent) != self.qop:
                sent = ",".join(self.qop)
            parts.append(f"qop={quote(sent)}")
        userhash = self.params.get("userhash")
        if self.userhash:
            parts.append(
                "userhash=" + (userhash if userhash is not None and _flag(userhash) else "true")
            )
        elif userhash is not None:
            parts.append(
                _format_param("userhash", userhash if not _flag(userhash) else "false", False)
            )
        known = {"realm", "domain", "nonce", "opaque", "stale", "algorithm", "qop", "userhash"}
        for key, value in self.params.items():
            if key not in known:
                parts.append(_format_param(key, value, False))
        return "Digest " + ", ".join(parts)


def _make_challenge(scheme: str, params: dict[str, str], header: str, sc: _Scanner) -> Challenge:
    if scheme.lower() != "digest":
        return Challenge(
            scheme=scheme,
            realm=params.get("realm", ""),
            nonce=params.get("nonce", ""),
            opaque=params.get("opaque"),
            algorithm=params.get("algorithm"),
            qop=_split_qop(params.get("qop")),
            stale=_flag(params.get("stale")),
            domain=params.get("domain"),
            userhash=_flag(params.get("userhash")),
            params=params,
            header=header,
        )
    if "realm" not in params:
        raise sc.fail("Digest challenge without realm")
    if "nonce" not in params:
        raise sc.fail("Digest challenge without nonce")
    return Challenge(
        scheme="Digest",
        realm=params["realm"],
        nonce=params["nonce"],
        opaque=params.get("opaque"),
        algorithm=params.get("algorithm"),
        qop=_split_qop(params.get("qop")),
        stale=_flag(params.get("stale")),
        domain=params.get("domain"),
        userhash=_flag(params.get("userhash")),
        params=params,
        header=header,
    )


def parse_challenges(value: str, header: str = "WWW-Authenticate") -> list[Challenge]:
    """Parse one ``WWW-Authenticate``/``Proxy-Authenticate`` field value (RFC 7235 §4.1).

    Args:
        value: the field value; it may hold several comma-separated challenges
            of any scheme.
        header: the field name the value came from, recorded in each
            :attr:`Challenge.header`.

    Returns:
        The challenges in order, at least one.  Non-Digest schemes are returned
        with :attr:`Challenge.scheme` as sent so the caller can log and skip them.

    Raises:
        ParseError: the value does not follow the grammar, or a Digest
            challenge lacks ``realm`` or ``nonce`` (status 400).  Nothing else
            escapes.
    """
    if not isinstance(value, str):
        raise ParseError(f"authentication header value must be text, not {type(value).__name__}")
    sc = _Scanner(value)
    challenges: list[Challenge] = []
    sc.skip_commas()
    if sc.at_end():
        raise sc.fail("empty challenge")
    while not sc.at_end():
        scheme = sc.token()
        if scheme is None:
            raise sc.fail("expected an auth-scheme")
        if sc.peek() and sc.peek() not in _WS + ",":
            raise sc.fail(f"expected white space after scheme {scheme!r}")
        sc.skip_ws()
        params: dict[str, str] = {}
        token68: str | None = None
        if not sc.at_end() and sc.peek() != ",":
            # token68 wins when it runs to a comma or the end ("NTLM abc==")
            m68 = _TOKEN68.match(value, sc.pos)
            if m68 is not None:
                token68 = m68.group()
                sc.pos = m68.end()
            else:
                params, _ = _parse_params(sc, stop_at_new_scheme=True)
        challenge = _make_challenge(scheme, params, header, sc)
        if token68 is not None:
            if challenge.is_digest:
                raise sc.fail("Digest challenge with a token68")
            challenge = attrs.evolve(challenge, token68=token68)
        challenges.append(challenge)
        if sc.skip_commas():
            continue
        sc.skip_ws()
        if not sc.at_end() and token68 is not None:
            raise sc.fail("expected a comma after token68")
    return challenges


def auth_scheme(value: str) -> str:
    """Return the auth-scheme of an ``Authorization``-style value, as sent (``"Digest"``, ``"Basic"``).

    Raises:
        ParseError: the value does not start with a token.
    """
    sc = _Scanner(value if isinstance(value, str) else "")
    sc.skip_ws()
    tok = sc.token()
    if tok is None:
        raise sc.fail("expected an auth-scheme")
    return tok


@attrs.frozen
class DigestAuthorization:
    """Digest credentials from an ``Authorization``/``Proxy-Authorization`` field (RFC 7616 §3.4).

    Attributes:
        username: the username, unquoted (decoded from ``username*`` when
            that form was used, RFC 7616 §3.4.4).
        realm: the realm, unquoted.
        nonce: the nonce being answered.
        uri: the digest-uri (RFC 3261 §22.4: the Request-URI).
        response: the request-digest, hex.
        algorithm: as sent, ``None`` when absent (MD5).
        cnonce: the client nonce, or ``None`` (RFC 2069 form).
        nc: the nonce count, 8 hex digits, or ``None``.
        qop: ``"auth"``/``"auth-int"``, or ``None``.
        opaque: echoed opaque, or ``None``.
        userhash: ``True`` when ``username`` is a hash (RFC 7616 §3.4.4).
        params: every parameter, names lower-cased, values unquoted.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    nc: str | None = None
    qop: str | None = None
    opaque: str | None = None
    userhash: bool = False
    params: Mapping[str, str] = attrs.field(factory=dict, hash=False)

    def to_header_value(self) -> str:
        """Serialise as one ``Authorization`` field value (RFC 3261 §25.1, RFC 7616 §3.4).

        ``username``, ``realm``, ``nonce``, ``uri``, ``response``, ``cnonce`` and
        ``opaque`` are quoted; ``algorithm``, ``qop``, ``nc`` and ``userhash`` are
        tokens.  Extra entries of :attr:`params` not named above follow.

        Raises:
            ValueError: a value holds a character no quoted-string can carry.
        """
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(self.realm)}",
            f"nonce={quote(self.nonce)}",
            f"uri={quote(self.uri)}",
            f"response={quote(self.response)}",
        ]
        if self.algorithm is not None:
            parts.append(_format_param("algorithm", self.algorithm, False))
        if self.cnonce is not None:
            parts.append(f"cnonce={quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.qop is not None:
            parts.append(_format_param("qop", self.qop, False))
        if self.nc is not None:
            parts.append(_format_param("nc", self.nc, False))
        if self.userhash:
            parts.append("userhash=true")
        known = {
            "username",
            "username*",
            "realm",
            "nonce",
            "uri",
            "response",
            "algorithm",
            "cnonce",
            "opaque",
            "qop",
            "nc",
            "userhash",
        }
        for key, value in self.params.items():
            if key not in known:
                parts.append(_format_param(key, value, False))
        return "Digest " + ", ".join(parts)


def _decode_ext_value(text: str, sc: _Scanner) -> str:
    m = _EXT_VALUE.match(text)
    if m is None or m.group(1).lower() != "utf-8":
        raise sc.fail("username* is not a UTF-8 ext-value")
    try:
        return unquote(m.group(2), encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise sc.fail("username* does not decode as UTF-8") from None


def _params_at_once(value: str) -> dict[str, str] | None:
    """The auth-params of a well-formed ``Digest`` credentials value in one ``findall``, or None.

    Non-overlapping matches whose lengths add up to the rest of the value tile it exactly; each
    but the last must end with its comma.  ``None`` (no verdict) for anything else (another scheme,
    a gap, a missing comma, a repeated name): :func:`_parse_params_scan` then decides.
    """
    head = _DIGEST_SCHEME.match(value)
    if head is None:
        return None
    start = head.end()
    found = _PARAM_ALL.findall(value, start)
    if not found:
        return None
    params: dict[str, str] = {}
    total = 0
    for whole, name, quoted, token, _ in found:
        total += len(whole)
        # a token is never empty: an empty one means the value was a quoted-string
        params[name.lower()] = token or (quoted if "\\" not in quoted else _QUOTED_PAIR.sub(r"\1", quoted))
    if total != len(value) - start or len(params) != len(found):
        return None
    for entry in found[:-1]:
        if not entry[4]:
            return None
    return params


def parse_authorization(value: str) -> DigestAuthorization:
    """Parse a Digest ``Authorization``/``Proxy-Authorization`` field value (RFC 7616 §3.4).

    Args:
        value: the field value, e.g. ``'Digest username="bob", realm="biloxi.com", ...'``.

    Returns:
        The credentials.

    Raises:
        ParseError: not the Digest scheme, bad syntax, a required parameter
            (username, realm, nonce, uri, response) missing, ``qop`` without
            ``cnonce``/``nc``, or ``nc`` not 8 hex digits (status 400).
            Nothing else escapes.
    """
    if not isinstance(value, str):
        raise ParseError(f"authorization value must be text, not {type(value).__name__}")
    sc = _Scanner(value)
    params = _params_at_once(value)
    if params is None:  # anything unusual: the scanner decides, and words the error
        sc.skip_ws()
        scheme = sc.token()
        if scheme is None:
            raise sc.fail("expected an auth-scheme")
        if scheme.lower() != "digest":
            raise sc.fail(f"scheme {scheme!r} is not Digest")
        if sc.peek() not in _WS:
            raise sc.fail("expected white space after the scheme")
        params, _ = _parse_params(sc, stop_at_new_scheme=False)
    if "username*" in params:
        if "username" in params:
            raise sc.fail("both username and username*")
        username = _decode_ext_value(params["username*"], sc)
    elif "username" in params:
        username = params["username"]
    else:
        raise sc.fail("credentials without username")
    for required in ("realm", "nonce", "uri", "response"):
        if required not in params:
            raise sc.fail(f"credentials without {required}")
    qop = params.get("qop")
    cnonce = params.get("cnonce")
    nc = params.get("nc")
    if qop is not None and (cnonce is None or nc is None):
        raise sc.fail("qop without cnonce and nc")
    if nc is not None and not _HEX8.match(nc):
        raise sc.fail(f"nc {nc!r} is not 8 hex digits")
    return DigestAuthorization(
        username=username,
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=params.get("algorithm"),
        cnonce=cnonce,
        nc=nc,
        qop=qop,
        opaque=params.get("opaque"),
        userhash=_flag(params.get("userhash")),
        params=params,
    )
