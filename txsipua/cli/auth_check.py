"""``txsipua auth-check --account FILE``: one REGISTER, and why authentication worked or failed.

RFC 3261 §22 made into a diagnostic.  The command sends one REGISTER (by
default with ``Expires: 0``, so no binding is left behind), answers the
challenges as every other command does, and then explains what happened:

- every challenge seen: 401 (``WWW-Authenticate``, the registrar itself,
  §22.2) or 407 (``Proxy-Authenticate``, a proxy on the path, §22.3), its
  realm, algorithm and qop, and where it came from;
- which credential of the account answered which realm, and with which
  username (the *authentication* username, which need not be the SIP user);
- when it failed, the likely cause and the fix:

  ``wrong realm``
      a challenge names a realm the account has no ``[[credentials]]`` for.
      Credentials are chosen by the challenge's realm, never by the SIP
      domain (§22.1), so a realm written as the domain never matches.
  ``auth user vs SIP user``
      credentials were sent and the same realm challenged again (not stale):
      the password or the username is wrong; when the username sent is the
      SIP user, the provider most likely gave a separate authentication
      username.  A 403 after good credentials: the registrar authenticated
      the auth user but does not let it register this address of record.
  ``algorithm unsupported``
      every challenge of a realm uses an algorithm txsipua does not implement,
      or the account stores an HA1 only for another algorithm.
  ``digest-leak guard``
      the challenge came from an address not trusted for its realm, so the
      credentials were withheld (the account's ``hosts`` list trusts more).

The pure part, :func:`diagnose`, takes the messages exchanged (as parsed) and
the account and returns :class:`Finding` values; the command prints them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

import attrs
from twisted.internet import defer

from txsipua.auth.challenge import Challenge, parse_authorization, parse_challenges
from txsipua.auth.digest import ALGORITHMS, canonical_algorithm
from txsipua.errors import AuthenticationError, SIPError, SIPStatusError, TransactionTimeout
from txsipua.sip.message import Request, Response, parse_message

__all__ = ["Exchange", "Finding", "add_auth_check_parser", "cmd_auth_check", "diagnose"]


@attrs.frozen
class Finding:
    """One conclusion of :func:`diagnose`.

    Attributes:
        kind: ``"ok"``, ``"wrong-realm"``, ``"auth-user"`` (the SIP user sent
            as the authentication user), ``"credentials"`` (a separate
            authentication user refused: the password or that username is
            wrong), ``"forbidden"``, ``"algorithm"``, ``"guard"``,
            ``"timeout"`` or ``"other"``.
        problem: what went wrong, in words (or what went right, for ``"ok"``).
        fix: what to change, in words (empty for ``"ok"``).
    """

    kind: str
    problem: str
    fix: str = ""


@attrs.define
class Exchange:
    """The messages of one auth-check, in order: ``(direction, message, peer)``.

    ``direction`` is ``"send"`` or ``"recv"``; ``peer`` is ``(host, port)``.
    """

    messages: list[tuple[str, Request | Response, tuple[str, int]]] = attrs.field(factory=list)

    def record(self, direction: str, data: bytes, peer: tuple[str, int]) -> None:
        """A trace callback: keep every message that parses."""
        with contextlib.suppress(SIPError):
            self.messages.append((direction, parse_message(data), (peer[0], int(peer[1]))))

    def challenges(self) -> list[tuple[int, Challenge, tuple[str, int]]]:
        """Every Digest challenge received: ``(status, challenge, from)``."""
        out: list[tuple[int, Challenge, tuple[str, int]]] = []
        for direction, msg, peer in self.messages:
            if direction != "recv" or not isinstance(msg, Response) or msg.status not in (401, 407):
                continue
            header = "WWW-Authenticate" if msg.status == 401 else "Proxy-Authenticate"
            for value in msg.headers.get_all(header):
                try:
                    out.extend((msg.status, c, peer) for c in parse_challenges(value, header)
                               if c.scheme == "Digest")
                except SIPError:
                    continue
        return out

    def answers(self) -> list[tuple[int, str, str, str, str]]:
        """Every credential sent: ``(request number, header, realm, username, algorithm)``."""
        out = []
        n = 0
        for direction, msg, _ in self.messages:
            if direction != "send" or not isinstance(msg, Request) or msg.method != "REGISTER":
                continue
            n += 1
            for header in ("Authorization", "Proxy-Authorization"):
                for value in msg.headers.get_all(header):
                    try:
                        a = parse_authorization(value)
                    except SIPError:
                        continue
                    out.append((n, header, a.realm, a.username, a.algorithm or "MD5"))
        return out

    def final(self) -> Response | None:
        """The last final response received, or None."""
        for direction, msg, _ in reversed(self.messages):
            if direction == "recv" and isinstance(msg, Response) and msg.status >= 200:
                return msg
        return None


def _realms(account: Any) -> tuple[str, ...]:
    realms = getattr(account.credentials, "realms", None)
    return tuple(realms()) if callable(realms) else ()


def _credential(account: Any, realm: str) -> Any:
    find = getattr(account.credentials, "credentials_for", None)
    return find(realm) if callable(find) else None


def diagnose(exchange: Exchange, account: Any, error: BaseException | None) -> list[Finding]:
    """What went right or wrong in ``exchange``, with fixes (RFC 3261 §22).

    Args:
        exchange: the messages of the REGISTER and its retries.
        account: the :class:`~txsipua.ua.account.Account` used.
        error: the failure of the registration, or None when it succeeded.

    Returns:
        At least one :class:`Finding`; a single ``"ok"`` one on success.
    """
    challenges = exchange.challenges()
    answers = exchange.answers()
    realms = _realms(account)
    findings: list[Finding] = []
    if error is None:
        answered = ", ".join(f"realm {r} as {u}" for _, _, r, u, _ in answers) or "no challenge"
        return [Finding("ok", f"registered: {answered}")]
    sip_user = account.user
    final = exchange.final()
    by_realm: dict[str, list[tuple[int, Challenge, tuple[str, int]]]] = {}
    for item in challenges:
        by_realm.setdefault(item[1].realm, []).append(item)
    for realm, items in by_realm.items():
        credential = _credential(account, realm)
        header = "Proxy-Authorization" if items[0][0] == 407 else "Authorization"
        if credential is None:
            similar = [r for r in realms if r.lower() == realm.lower()]
            also = f" (realms are compared exactly: {similar[0]!r} differs in case)" if similar else ""
            findings.append(Finding(
                "wrong-realm",
                f"wrong realm configured: {items[0][0]} challenged in realm {realm!r}, but the account has "
                f"credentials for {', '.join(repr(r) for r in realms) or 'no realm'}{also}; credentials are "
                f"chosen by the challenge's realm, not by the SIP domain {account.domain!r} (RFC 3261 §22.1)",
                f'set realm = "{realm}" in the [[credentials]] table that holds this provider\'s username '
                f"and password"))
            continue
        algorithms = [c.algorithm or "MD5" for _, c, _ in items]
        supported = [a for a in algorithms if canonical_algorithm(a) is not None]
        if not supported:
            findings.append(Finding(
                "algorithm",
                f"algorithm unsupported: realm {realm!r} is challenged with {', '.join(sorted(set(algorithms)))} "
                f"only; txsipua answers {', '.join(ALGORITHMS)}",
                "ask the server to also offer MD5 or SHA-256 (RFC 8760), or use another client for it"))
            continue
        ha1 = dict(getattr(credential, "ha1", {}) or {})
        if getattr(credential, "password", None) is None and ha1:
            usable = [a for a in supported if (canonical_algorithm(a) or "").removesuffix("-sess") in ha1]
            if not usable:
                findings.append(Finding(
                    "algorithm",
                    f"algorithm unsupported by the credential: realm {realm!r} is challenged with "
                    f"{', '.join(sorted(set(supported)))}, but the account stores an HA1 for "
                    f"{', '.join(sorted(ha1))} only (an HA1 is bound to one algorithm)",
                    f'configure password = "..." (or ha1 with algorithm = "{supported[0]}") for realm {realm!r}'))
                continue
        sent = [(n, u) for n, h, r, u, _ in answers if r == realm]
        rechallenged = sent and any(
            i > 0 and not c.stale for i, (_, c, _) in enumerate(items))
        if rechallenged:
            username = sent[-1][1]
            if username == sip_user:
                findings.append(Finding(
                    "auth-user",
                    f"auth user vs SIP user: realm {realm!r} refused username {username!r}, which is the SIP "
                    f"user; the server challenged again after the {header} (a wrong password or an unknown "
                    f"username gets the same new challenge)",
                    "providers often give a separate authentication username (an auth ID): set username = "
                    f"\"<auth ID>\" in the [[credentials]] table of realm {realm!r}, and check the password"))
            else:  # a separate auth user already: most likely the password (not auth user vs SIP user)
                findings.append(Finding(
                    "credentials",
                    f"credentials refused: realm {realm!r} challenged again after the {header} with username "
                    f"{username!r} (the password, or the username, is wrong)",
                    f"check the password of {username!r}; the username must be the authentication username the "
                    f"provider gave (here {username!r}, SIP user {sip_user!r}), not necessarily the SIP user"))
    if final is not None and final.status == 403 and answers:
        _, _, realm, username, _ = answers[-1]
        if "too many failed" in final.reason:
            findings.append(Finding(
                "forbidden", f"403 {final.reason}: the server locked this source or user out after failures",
                "wait for the lockout to end, then fix the credentials (see the other findings)"))
        else:
            findings.append(Finding(
                "forbidden",
                f"403 {final.reason}: realm {realm!r} accepted {username!r}'s credentials, but the registrar "
                f"does not let auth user {username!r} register {account.aor} (auth user vs SIP user: "
                "RFC 3261 §10.3 lets a registrar bind only the addresses of record the authenticated user owns)",
                f"the registrar must map auth user {username!r} to SIP user {sip_user!r} (txsipua answer: add "
                f"{sip_user} as the fifth field of {username}'s line in the users file, "
                f"{username}:REALM:HA1::{sip_user}), or the account's user is wrong"))
    kind = getattr(error, "kind", None)
    if kind == "guard":
        findings.append(Finding(
            "guard", f"digest-leak guard: {error}",
            "if that address really serves the realm, add it to the realm's hosts = [\"HOST:PORT\"], or set "
            "registrar/outbound_proxy to it"))
    if isinstance(error, TransactionTimeout):
        findings.append(Finding("timeout", f"no answer: {error}",
                                "check the registrar address, the transport and the firewall"))
    if not findings:
        if isinstance(error, SIPStatusError | AuthenticationError):
            findings.append(Finding("other", str(error), getattr(error, "hint", "") or ""))
        else:
            findings.append(Finding("other", f"{type(error).__name__}: {error}"))
    return findings


def _describe_challenge(status: int, c: Challenge, peer: tuple[str, int]) -> str:
    who = "the registrar (WWW-Authenticate)" if status == 401 else "a proxy (Proxy-Authenticate)"
    qop = ",".join(c.qop) if c.qop else "none (RFC 2069)"
    stale = " stale=true" if c.stale else ""
    return (f"challenge {status} from {who} at {peer[0]}:{peer[1]}: realm={c.realm!r} "
            f"algorithm={c.algorithm or 'MD5'} qop={qop}{stale}")


def report(exchange: Exchange, account: Any, error: BaseException | None, out: Any = None) -> None:
    """Print the exchange and :func:`diagnose`'s findings."""
    out = out or sys.stdout
    print(f"auth-check {account.aor} at {account.registrar_uri}", file=out)
    print(f"account: SIP user {account.user!r}; credentials for realm(s) "
          f"{', '.join(repr(r) for r in _realms(account)) or 'none'}", file=out)
    for realm in _realms(account):
        c = _credential(account, realm)
        if c is not None:
            kind = "password" if c.password is not None else f"HA1 for {', '.join(sorted(c.ha1))}"
            print(f"  realm {realm!r}: username {c.username!r} ({kind})", file=out)
    n = 0
    for direction, msg, peer in exchange.messages:
        if direction == "send" and isinstance(msg, Request):
            n += 1
            creds = [a for a in exchange.answers() if a[0] == n]
            carried = "; ".join(f"{h} realm={r!r} username={u!r} algorithm={a}" for _, h, r, u, a in creds)
            print(f"REGISTER #{n} to {peer[0]}:{peer[1]}: {carried or 'no credentials'}", file=out)
        elif isinstance(msg, Response):
            print(f"  <- {msg.status} {msg.reason}", file=out)
            if msg.status in (401, 407):
                header = "WWW-Authenticate" if msg.status == 401 else "Proxy-Authenticate"
                for value in msg.headers.get_all(header):
                    try:
                        for c in parse_challenges(value, header):
                            print(f"     {_describe_challenge(msg.status, c, peer)}", file=out)
                    except SIPError:
                        print(f"     unparsable {header}", file=out)
    for realm_answer in {(r, u) for _, _, r, u, _ in exchange.answers()}:
        print(f"credential of realm {realm_answer[0]!r} (username {realm_answer[1]!r}) answered realm "
              f"{realm_answer[0]!r}", file=out)
    for finding in diagnose(exchange, account, error):
        if finding.kind == "ok":
            print(f"OK: {finding.problem}", file=out)
        else:
            print(f"problem ({finding.kind}): {finding.problem}", file=out)
            if finding.fix:
                print(f"  fix: {finding.fix}", file=out)
    out.flush()


@defer.inlineCallbacks
def cmd_auth_check(reactor: Any, args: argparse.Namespace) -> Any:
    """Run one REGISTER for ``--account`` and print :func:`report`; exit 0 only if it succeeded."""
    from txsipua.cli.common import EXIT_FAILED, EXIT_OK, bind_for, load_account, transport_options
    from txsipua.cli.trace import session_trace
    from txsipua.ua.config import Configuration
    from txsipua.ua.useragent import UserAgent

    account = load_account(args.account)
    exchange = Exchange()
    tracer = session_trace(reactor, args)

    def trace(direction: str, data: bytes, peer: tuple[str, int]) -> None:
        exchange.record(direction, data, peer)
        if tracer.wanted:
            tracer(direction, data, peer)

    ua = UserAgent(reactor, Configuration(media=False), account, trace=trace,
                   **transport_options(reactor, args, bind_for(args, account)))
    tracer.attach(ua)
    yield ua.start()
    error: BaseException | None = None
    try:
        yield ua.register(args.expires)
    except Exception as e:
        error = e
    yield ua.stop()
    report(exchange, account, error)
    return EXIT_OK if error is None else EXIT_FAILED


def add_auth_check_parser(sub: Any, common: Any) -> None:
    """Add the ``auth-check`` command to the subparsers ``sub`` (``common`` adds the shared options)."""
    from txsipua.cli.common import non_negative_int

    p = sub.add_parser(
        "auth-check", help="one REGISTER, then why digest authentication worked or failed",
        description="Send one REGISTER (Expires: 0 by default: no binding is left) and explain the "
                    "challenges seen (401/407, realm, algorithm, qop), which credential answered which "
                    "realm, and, when it failed, the fix (wrong realm configured, auth user vs SIP user, "
                    "algorithm unsupported, digest-leak guard). Exit 0 only if the REGISTER succeeded.")
    p.add_argument("--account", required=True, metavar="FILE", help="account file (TOML)")
    p.add_argument("--expires", type=non_negative_int, default=0, metavar="SECONDS",
                   help="expiry asked for (default 0: unregister our contact, leaving nothing behind)")
    common(p)
    p.set_defaults(func=cmd_auth_check)


