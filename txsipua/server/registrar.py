"""REGISTER processing (RFC 3261 §10.3), sans-IO, over a :class:`~txsipua.server.bindings.BindingStore`.

One registrar logic serves both servers of the package: the registrar/proxy of
``txsipua demo`` (:class:`~txsipua.server.proxy.ProxyRegistrar`) and the
registrar that ``txsipua answer`` plugs into its user agent
(:class:`~txsipua.ua.registrar.Registrar`).  Authentication is the caller's
(it differs: a stateless proxy checks digest itself, a UA's core does it before
the request reaches the application), so is the decision of who may register
which AOR (§10.3 steps 3-4).  The rest of §10.3 is here::

    check(request)                     step 2  Require          -> 420
                                       step 5  AOR not ours     -> 404
    register(request, source, now)     step 6  Contact * rules  -> 400
                                       step 6  a Contact longer than
                                               max_contact_size  -> 400
                                       step 7  expiry: < min    -> 423 + Min-Expires
                                                        > max    -> cut down
                                               out-of-order CSeq -> 500
                                               over the cap      -> 503 + Retry-After
                                               over the AOR cap  -> 403
                                       step 8  all or nothing, then 200 with
                                               every live binding and its expiry

The two size bounds keep a binding small and the 200 (which lists every live
binding of the AOR) far below a UDP datagram's 65,507 bytes: with the defaults,
20 bindings of at most 2,048 bytes each, an AOR cannot be made unanswerable,
nor can a few thousand REGISTERs hold hundreds of megabytes.

Before each REGISTER the expired bindings of every AOR are purged.  Nothing
here reads a clock: time comes in as ``now`` (seconds, absolute).
"""

from __future__ import annotations

import attrs

from txsipua.core.transport import Address
from txsipua.errors import ParseError
from txsipua.server.bindings import Binding, BindingExpired, BindingStore, contact_key
from txsipua.sip.message import Request
from txsipua.sip.values import NameAddr

__all__ = ["RegisterReply", "Registrar"]


@attrs.frozen
class RegisterReply:
    """What to answer a REGISTER with.

    Attributes:
        status: the status code.
        reason: a reason phrase, or ``None`` for the standard one.
        headers: extra header fields, ``(name, value)`` pairs, in order
            (``Contact`` for 200, ``Min-Expires`` for 423, ``Retry-After`` for 503...).
        note: what happened, in words, for ladders and logs.
        overloaded: ``True`` when a limit refused it (the 503 of a full binding
            store, the 403 of a full AOR, the 400 of a too long Contact): worth a log line.
    """

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    note: str = ""
    overloaded: bool = False


class Registrar:
    """The §10.3 registrar logic.

    Args:
        store: where bindings live (share it with the location service of a proxy).
        domain: the domain served: a REGISTER for an AOR of another domain gets
            404 (§10.3 step 5); ``None`` accepts any domain.
        min_expires: the shortest registration accepted, seconds (423 below it).
        max_expires: longer registrations are cut down to this, seconds.
        default_expires: used when a REGISTER names no expiry, seconds.
        retry_after: the Retry-After of the 503 sent when the store is full, seconds.
        max_contact_size: the longest Contact accepted, in characters of its
            text (URI and parameters); a longer one gets 400 naming the limit.
        max_bindings_per_aor: the most live bindings one AOR may hold; a
            REGISTER that would add past it gets 403 naming the limit.

    Attributes:
        store: the binding store.
        refused_full: how many REGISTERs got 503 because the store was full.
        refused_limits: how many REGISTERs got 400/403 for a Contact too long
            or too many bindings of one AOR.

    Raises:
        ValueError: ``max_contact_size`` or ``max_bindings_per_aor`` below 1.
    """

    def __init__(
        self,
        store: BindingStore,
        *,
        domain: str | None = None,
        min_expires: int = 60,
        max_expires: int = 7200,
        default_expires: int = 3600,
        retry_after: int = 60,
        max_contact_size: int = 2048,
        max_bindings_per_aor: int = 20,
    ) -> None:
        if max_contact_size < 1 or max_bindings_per_aor < 1:
            raise ValueError("max_contact_size and max_bindings_per_aor must be at least 1")
        self.store = store
        self.max_contact_size = max_contact_size
        self.max_bindings_per_aor = max_bindings_per_aor
        self.refused_limits = 0
        self.domain = domain
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.retry_after = retry_after
        self.refused_full = 0

    def check(self, request: Request) -> RegisterReply | None:
        """The checks made before authentication (§10.3 steps 2 and 5).

        Returns:
            the reply to send (420, 404), or ``None`` to go on.

        Raises:
            ParseError: the To header field does not parse (answer 400).
        """
        require = request.headers.get_all("Require")
        if require:
            return RegisterReply(420, headers=(("Unsupported", ", ".join(require)),),
                                 note=f"420: unsupported {', '.join(require)}")
        to_uri = request.to.uri
        if self.domain is not None and (
            to_uri.host.lower() != self.domain.lower() or to_uri.user is None
        ):
            return RegisterReply(404, note=f"404: {to_uri.address_of_record} is not of {self.domain}")
        return None

    def purge(self, now: float) -> list[BindingExpired]:
        """Remove the expired bindings of every AOR; report each."""
        return self.store.purge(now)

    def register(self, request: Request, source: Address, now: float) -> RegisterReply:
        """Apply an authenticated, authorised REGISTER (§10.3 steps 6-8).

        Args:
            request: the REGISTER.
            source: where it came from, ``(ip, port)``.
            now: seconds, absolute.

        Returns:
            the reply; the store is changed only when its status is 200.

        Raises:
            ParseError: To, Contact, Expires, Call-ID or CSeq do not parse (answer 400).
        """
        self.store.purge(now)
        aor = request.to.uri.address_of_record.lower()
        contacts = request.contact
        header_expires = request.expires
        if any(c.wildcard for c in contacts):
            if len(contacts) != 1 or header_expires != 0:
                return RegisterReply(400, "Bad Request (Contact: * needs Expires: 0)",
                                     note="400: Contact * needs Expires: 0 alone")
            self.store.clear(aor)
            return self._ok(aor, now, "removed every binding")
        changes: list[tuple[NameAddr, int]] = []
        for contact in contacts:
            size = len(str(contact))
            if size > self.max_contact_size:
                self.refused_limits += 1
                return RegisterReply(
                    400, f"Bad Request (Contact longer than {self.max_contact_size} bytes)",
                    note=f"400: a Contact of {size} bytes for {aor} from {source[0]}:{source[1]} "
                         f"(limit {self.max_contact_size})",
                    overloaded=True)
            expires = contact.expires
            if expires is None:
                expires = header_expires if header_expires is not None else self.default_expires
            if expires < 0:
                return RegisterReply(400, "Bad Request (negative expires)", note="400: negative expires")
            if 0 < expires < self.min_expires:
                return RegisterReply(423, headers=(("Min-Expires", str(self.min_expires)),),
                                     note=f"423: {expires}s is below {self.min_expires}s")
            changes.append((contact, min(expires, self.max_expires)))
        call_id = request.call_id
        seq = request.cseq.seq
        adding = 0
        for contact, expires in changes:
            old = self.store.get(aor, contact_key(contact.uri))
            if old is not None and old.call_id == call_id and old.cseq >= seq:
                return RegisterReply(500, "Server Internal Error (out-of-order CSeq)",
                                     note="500: out-of-order REGISTER")
            if old is None and expires > 0:
                adding += 1
        live = len(self.store.bindings(aor, now))
        if adding and live + adding > self.max_bindings_per_aor:
            self.refused_limits += 1
            return RegisterReply(
                403, f"Forbidden (at most {self.max_bindings_per_aor} bindings per address-of-record)",
                note=f"403: {aor} holds {live} bindings, {adding} more from {source[0]}:{source[1]} "
                     f"would pass the limit of {self.max_bindings_per_aor}",
                overloaded=True,
            )
        if adding and not self.store.room(adding):
            self.refused_full += 1
            return RegisterReply(
                503, "Service Unavailable (too many registrations)",
                headers=(("Retry-After", str(self.retry_after)),),
                note=f"503: the binding store is full ({self.store.max_bindings} bindings); "
                     f"{aor} from {source[0]}:{source[1]} refused",
                overloaded=True,
            )
        notes = []
        for contact, expires in changes:
            key = contact_key(contact.uri)
            if expires == 0:
                if self.store.remove(aor, key) is not None:
                    notes.append(f"removed {contact.uri}")
                continue
            params = {k: v for k, v in contact.params.items() if k != "expires"}
            binding = Binding(aor, contact.replace(params=params), now + expires, call_id, seq, source)
            refreshed = self.store.put(binding)
            notes.append(f"{'refreshed' if refreshed else 'bound'} {contact.uri} for {expires}s")
        return self._ok(aor, now, "; ".join(notes) or "fetched bindings")

    def _ok(self, aor: str, now: float, note: str) -> RegisterReply:
        headers = []
        for binding in self.store.bindings(aor, now):
            contact = binding.contact.replace(
                params={**binding.contact.params, "expires": str(binding.remaining(now))}
            )
            headers.append(("Contact", str(contact)))
        return RegisterReply(200, headers=tuple(headers), note=f"200: {note}")


def parse_failure(error: ParseError) -> RegisterReply:
    """The reply to a REGISTER whose header fields did not parse (400, RFC 3261 §8.2)."""
    return RegisterReply(error.status, None, note=f"malformed: {error.detail}")
