"""A small in-UA registrar (RFC 3261 §10.3) for the ``answer`` command.

Plug it into a :class:`~txsipua.ua.useragent.UserAgent` as ``ua.on_request =
Registrar(ua).handle``; REGISTER requests are authenticated first by the UA's
authenticator when it has one.  Other methods are answered as the UA would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from txsipua.errors import ParseError
from txsipua.sip.message import Request
from txsipua.sip.values import NameAddr


class Registrar:
    """Keeps bindings per address of record in memory.

    Args:
        ua: the user agent (its reactor gives the time).
        min_expires: shortest interval accepted; shorter gets 423 (§10.3 step 7).
        max_expires: longest interval granted.
        default_expires: used when the request names none.
        owners: auth username -> the AOR user it may register besides its own
            name (an authenticated user may register only its own address of
            record, RFC 3261 §10.3 step 3; 403 otherwise).

    Attributes:
        bindings: ``{aor: {contact text: (NameAddr, absolute expiry seconds)}}``.
    """

    def __init__(self, ua: Any, min_expires: int = 60, max_expires: int = 7200, default_expires: int = 3600,
                 owners: Mapping[str, str] | None = None) -> None:
        self.ua = ua
        self.owners = dict(owners or {})
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.bindings: dict[str, dict[str, tuple[NameAddr, float]]] = {}

    def handle(self, request: Request, respond: Callable[..., None]) -> None:
        """Answer REGISTER; answer MESSAGE/INFO/NOTIFY with 200 and others with 501."""
        if request.method != "REGISTER":
            respond(200 if request.method in ("MESSAGE", "INFO", "NOTIFY") else 501)
            return
        now = self.ua.reactor.seconds()
        try:
            to_uri = request.to.uri
            aor = to_uri.address_of_record
            contacts = request.contact
            header_expires = request.expires
        except ParseError as e:
            respond(400, e.detail)
            return
        identity = getattr(respond, "identity", None)
        if identity is not None and to_uri.user != identity and self.owners.get(identity) != to_uri.user:
            respond(403, f"{identity} may not register {aor}")
            return
        table = self.bindings.setdefault(aor, {})
        for key, (_, exp) in list(table.items()):
            if exp <= now:
                del table[key]
        if any(c.wildcard for c in contacts):
            if header_expires != 0 or len(contacts) != 1:
                respond(400, "Contact: * needs Expires: 0 and no other Contact")
                return
            table.clear()
        # check every contact first: the updates are committed all or none (§10.3 step 8)
        changes: list[tuple[NameAddr, int]] = []
        for c in contacts:
            if c.wildcard:
                continue
            asked = c.expires if c.expires is not None else header_expires
            exp = self.default_expires if asked is None else asked
            if exp < 0:
                respond(400, "Bad Request (negative expires)")
                return
            if 0 < exp < self.min_expires:
                respond(423, headers=[("Min-Expires", str(self.min_expires))])
                return
            changes.append((c, min(exp, self.max_expires)))
        for c, exp in changes:
            key = str(c.uri)
            if exp == 0:
                table.pop(key, None)
            else:
                table[key] = (NameAddr(c.uri), now + exp)
        headers = [
            ("Contact", f"<{na.uri}>;expires={max(0, int(exp - now))}") for na, exp in table.values()
        ]
        respond(200, headers=headers)
