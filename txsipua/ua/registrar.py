"""The registrar of ``txsipua answer``: the §10.3 logic of :mod:`txsipua.server.registrar` in a UA.

Plug it into a :class:`~txsipua.ua.useragent.UserAgent` as ``ua.on_request =
Registrar(ua).handle``.  REGISTER requests reach it already authenticated by
the UA's authenticator when it has one (``respond.identity`` is then the auth
username); without one (``txsipua answer --registrar``) anyone may register any
AOR.  Bindings live in a :class:`~txsipua.server.bindings.BindingStore`, the
same store and logic the demo's registrar/proxy uses; before each REGISTER the
expired bindings of every AOR are purged, and past ``max_bindings`` a REGISTER
that would add a binding gets 503 with Retry-After and a warning in the log.
Other methods are answered as the UA would.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from twisted.logger import Logger

from txsipua.core.transport import response_destination
from txsipua.errors import ParseError
from txsipua.server.bindings import Binding, BindingStore
from txsipua.server.registrar import Registrar as RegistrarLogic
from txsipua.sip.message import Request

__all__ = ["Registrar"]


class Registrar:
    """A registrar for the requests a user agent hands to its application.

    Args:
        ua: the user agent (its ``reactor`` gives the time; its transport the source).
        min_expires: shortest interval accepted; shorter gets 423 (§10.3 step 7).
        max_expires: longest interval granted.
        default_expires: used when the request names none.
        owners: auth username -> the AOR user it may register besides its own
            name (an authenticated user may register only its own address of
            record, RFC 3261 §10.3 step 3; 403 otherwise).
        max_bindings: the most bindings held over all AORs (``None``: no cap).
        retry_after: the Retry-After of the 503 past ``max_bindings``, seconds.
        log: where the warnings of refused REGISTERs go (503 of a full store,
            403 past ``max_bindings_per_aor``, 400 of a too long Contact; a
            :class:`twisted.logger.Logger`); by default the class's logger.
        max_bindings_per_aor: the most live bindings of one AOR (403 past it).
        owner_rules: optional ``rules(auth username) -> AOR users`` it may also
            register (the users file's fifth field, read live); with ``owners``
            and the user's own name, the AORs it may register.

    Attributes:
        store: the binding store.
        logic: the shared §10.3 registrar logic.
    """

    log = Logger()

    def __init__(self, ua: Any, min_expires: int = 60, max_expires: int = 7200, default_expires: int = 3600,
                 owners: Mapping[str, str] | None = None, max_bindings: int | None = 10000,
                 retry_after: int = 60, log: Logger | None = None, max_bindings_per_aor: int = 20,
                 owner_rules: Callable[[str], Collection[str]] | None = None) -> None:
        self.ua = ua
        if log is not None:
            self.log = log
        self.owners = dict(owners or {})
        self.owner_rules = owner_rules
        self.store = BindingStore(max_bindings)
        self.logic = RegistrarLogic(self.store, min_expires=min_expires, max_expires=max_expires,
                                    default_expires=default_expires, retry_after=retry_after,
                                    max_bindings_per_aor=max_bindings_per_aor)

    @property
    def bindings(self) -> dict[str, dict[str, Binding]]:
        """The live bindings: ``{aor: {contact URI text: Binding}}`` (a snapshot)."""
        now = self.ua.reactor.seconds()
        out: dict[str, dict[str, Binding]] = {}
        for aor in self.store.aors():
            live = self.store.bindings(aor, now)
            if live:
                out[aor] = {str(b.contact.uri): b for b in live}
        return out

    def handle(self, request: Request, respond: Callable[..., None]) -> None:
        """Answer REGISTER; answer MESSAGE/INFO/NOTIFY with 200 and others with 501."""
        if request.method != "REGISTER":
            respond(200 if request.method in ("MESSAGE", "INFO", "NOTIFY") else 501)
            return
        now = self.ua.reactor.seconds()
        try:
            reply = self.logic.check(request)
            if reply is None:
                to_uri = request.to.uri
                identity = getattr(respond, "identity", None)
                if identity is not None and to_uri.user != identity and self.owners.get(identity) != to_uri.user \
                        and (self.owner_rules is None or to_uri.user not in self.owner_rules(identity)):
                    self.log.warn("403: auth user {identity} may not register {aor}; to allow it, add "
                                  "{user} as the fifth field of {identity}'s line in the users file "
                                  "(or --owner {identity}={user})", identity=identity,
                                  aor=str(to_uri.address_of_record), user=to_uri.user)
                    respond(403, f"{identity} may not register {to_uri.address_of_record}")
                    return
                reply = self.logic.register(request, _source(request), now)
        except ParseError as e:
            respond(400, e.detail)
            return
        if reply.overloaded and reply.status == 503:
            self.log.warn("registrar: {note}; answered 503 (Retry-After {retry})",
                          note=reply.note, retry=self.logic.retry_after)
        elif reply.overloaded:
            self.log.warn("registrar: {note}; answered {status}", note=reply.note, status=reply.status)
        respond(reply.status, reply.reason, headers=list(reply.headers))


def _source(request: Request) -> tuple[str, int]:
    """Where a request came from, as its top Via tells after §18.2.1 stamping (received/rport)."""
    try:
        return response_destination(request.top_via)
    except ParseError:
        return ("", 0)
