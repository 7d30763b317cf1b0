"""Hand-built SIP messages and digest answers for the registrar/proxy tests.

Deliberately independent of the UA core: every request is written out field by
field and digest responses are computed from the challenge with the RFC 7616
formulas, so a bug in the client code cannot hide one in the server.
"""

from __future__ import annotations

from txsipua.auth.challenge import DigestAuthorization, parse_challenges
from txsipua.auth.digest import compute_ha1, compute_response
from txsipua.sip.message import Request, Response, parse_message

PROXY = ("192.0.2.1", 5060)
ALICE = ("192.0.2.10", 5060)
ALICE_PHONE2 = ("192.0.2.11", 5064)
BOB = ("192.0.2.20", 5070)
DOMAIN = "example.com"
REALM = "voip.example.net"
USERS = {"alice-auth": ("alice-pw", "alice"), "bob-auth": ("bob-pw", "bob")}
SECRET = b"0123456789abcdef-registrar-test"


def hostport(address: tuple[str, int]) -> str:
    """``"ip:port"``."""
    return f"{address[0]}:{address[1]}"


def register(
    source: tuple[str, int] = ALICE,
    user: str = "alice",
    *,
    cseq: int = 1,
    branch: str = "z9hG4bKreg1",
    call_id: str = "reg-call-1@192.0.2.10",
    contact: str | None = None,
    expires: int | None = 600,
    contact_params: str = "",
    extra: list[tuple[str, str]] | None = None,
) -> Request:
    """A REGISTER for ``sip:<user>@example.com`` sent from ``source``."""
    headers = [
        ("Via", f"SIP/2.0/UDP {hostport(source)};branch={branch}"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{user}@{DOMAIN}>;tag=ft-{user}"),
        ("To", f"<sip:{user}@{DOMAIN}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
    ]
    if contact != "":
        headers.append(("Contact", contact or f"<sip:{user}@{hostport(source)}>{contact_params}"))
    if expires is not None:
        headers.append(("Expires", str(expires)))
    headers.extend(extra or [])
    return Request("REGISTER", f"sip:{DOMAIN}", headers)


def invite(
    source: tuple[str, int] = ALICE,
    target: str = "bob",
    *,
    cseq: int = 1,
    branch: str = "z9hG4bKinv1",
    call_id: str = "call-1@192.0.2.10",
    max_forwards: int = 70,
    method: str = "INVITE",
    extra: list[tuple[str, str]] | None = None,
) -> Request:
    """An out-of-dialog INVITE (or other method) from alice to ``sip:<target>@example.com``."""
    headers = [
        ("Via", f"SIP/2.0/UDP {hostport(source)};branch={branch};rport"),
        ("Max-Forwards", str(max_forwards)),
        ("From", f'"Alice" <sip:alice@{DOMAIN}>;tag=a-tag-1'),
        ("To", f"<sip:{target}@{DOMAIN}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:alice@{hostport(source)}>"),
    ]
    headers.extend(extra or [])
    body = b"v=0\r\n" if method == "INVITE" else b""
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return Request(method, f"sip:{target}@{DOMAIN}", headers, body)


def authorize(
    request: Request,
    challenge_response: Response,
    username: str,
    password: str,
    *,
    cseq: int | None = None,
    branch: str | None = None,
    realm: str | None = None,
) -> Request:
    """The retried request answering ``challenge_response`` (RFC 3261 §22.2).

    CSeq + 1 and a new branch unless given; the credentials use qop=auth when
    offered.  ``realm`` overrides the realm written in the credentials.
    """
    header = "WWW-Authenticate" if challenge_response.status == 401 else "Proxy-Authenticate"
    answer_header = "Authorization" if challenge_response.status == 401 else "Proxy-Authorization"
    value = challenge_response.headers.get(header)
    assert value is not None
    challenge = parse_challenges(value, header)[0]
    the_realm = realm or challenge.realm
    qop = "auth" if "auth" in challenge.qop else None
    cnonce = "0a4f113b" if qop else None
    nc = "00000001" if qop else None
    ha1 = compute_ha1(challenge.algorithm, username, the_realm, password)
    digest = compute_response(
        algorithm=challenge.algorithm, ha1=ha1, nonce=challenge.nonce, method=request.method,
        uri=request.uri_text, qop=qop, cnonce=cnonce, nc=nc, body=request.body,
    )
    credentials = DigestAuthorization(
        username=username, realm=the_realm, nonce=challenge.nonce, uri=request.uri_text,
        response=digest, algorithm=challenge.algorithm, cnonce=cnonce, nc=nc, qop=qop,
        opaque=challenge.opaque,
    )
    retry = request.copy()
    old = request.cseq
    retry.headers.set("CSeq", f"{cseq or old.seq + 1} {old.method}")
    top = request.top_via
    retry.headers.pop_first_value("Via")
    retry.headers.prepend("Via", str(top.with_params(branch=branch or (top.branch or "") + "x")))
    retry.headers.add(answer_header, credentials.to_header_value())
    return retry


def parse(data: bytes) -> Request | Response:
    """Parse bytes the server sent."""
    return parse_message(data)


def response_to(request: Request, status: int, to_tag: str = "b-tag-1", **extra: str) -> Response:
    """What a UAS answers to ``request`` as received: every Via copied (RFC 3261 §8.2.6.2)."""
    headers: list[tuple[str, str]] = [("Via", v) for v in request.headers.get_all("Via")]
    for name in ("Record-Route",):
        headers.extend((name, v) for v in request.headers.get_all(name))
    to = request.headers.get("To") or ""
    headers += [
        ("From", request.headers.get("From") or ""),
        ("To", to if ";tag=" in to else f"{to};tag={to_tag}"),
        ("Call-ID", request.call_id),
        ("CSeq", str(request.cseq)),
    ]
    headers.extend((k.replace("_", "-"), v) for k, v in extra.items())
    return Response(status, None, headers)
