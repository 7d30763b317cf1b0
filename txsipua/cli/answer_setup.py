"""The set-up of ``txsipua answer`` (and ``twist txsipua answer``): an answering UAS and registrar.

:func:`build_answering_ua` turns the ``answer`` options into a
:class:`~txsipua.ua.useragent.UserAgent`: the digest authenticator of
``--realm``/``--users`` (401, or 407 with ``--proxy-role``, RFC 3261 §22),
the twisted.cred portal over the htdigest file, the password-guessing limits,
and the registrar (§10.3) with its AOR ownership rules (``--owner`` and the
users file's fifth field).  The service that runs it is
:class:`txsipua.cli.service.UserAgentService`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from txsipua.errors import UsageError

__all__ = ["build_answering_ua", "warn_missing_ha1"]


def warn_missing_ha1(store: Any, realm: str, algorithms: tuple[str, ...], path: str) -> None:
    """Warn on stderr when no user of ``realm`` has an HA1 for a challenged algorithm.

    Such a challenge can never be answered right (every user would get 403
    after the failure limit); an algorithm name the server refuses is left to
    the DigestServer's own error.
    """
    from txsipua.auth.digest import base_algorithm, canonical_algorithm

    have = store.algorithms(realm)
    missing = []
    for name in algorithms:
        canonical = canonical_algorithm(name)
        if canonical is not None and base_algorithm(canonical) not in have and name not in missing:
            missing.append(name)
    if missing:
        print(f"warning: no user of realm {realm!r} in {path} has an HA1 for {', '.join(missing)} "
              f"(it has {', '.join(sorted(have)) or 'none'}): those challenges cannot be answered",
              file=sys.stderr, flush=True)


def build_answering_ua(reactor: Any, args: argparse.Namespace, tracer: Any) -> Any:
    """The answering user agent of the ``answer`` options (not started).

    Args:
        reactor: the reactor.
        args: the parsed ``answer`` options.
        tracer: the :class:`~txsipua.cli.trace.SessionTrace` of the command.

    Raises:
        UsageError: ``--realm`` without ``--users`` (or the reverse), an
            unreadable users file, a bad ``--owner`` or algorithm.
    """
    from txsipua.auth.server import DigestServer
    from txsipua.cli.common import load_account, parse_bind, transport_options
    from txsipua.cli.server_options import auth_guard, server_log
    from txsipua.ua.config import Configuration
    from txsipua.ua.useragent import UserAgent

    bind = parse_bind(args.bind)
    if getattr(args, "log_format", "text") == "json":
        from twisted.logger import Logger

        log = Logger(namespace="txsipua.answer")  # every event already reaches stderr as JSON
    else:
        log = server_log()
    authenticator = portal = register_authenticator = None
    users_store = None  # the --users file: its fifth field says who may register which AOR
    account = load_account(args.account) if args.account else None
    if args.realm or args.users:
        if not (args.realm and args.users):
            raise UsageError("--realm and --users go together")
        from txsipua.ua.cred import HtdigestFileStore, make_portal

        try:
            store = HtdigestFileStore(args.users, check_every=1.0)  # edits seen within a second
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read --users {args.users}: {e}") from None
        secret = args.secret.encode() if args.secret else None
        import secrets as _secrets

        secret_bytes = secret or _secrets.token_bytes(32)
        algorithms = tuple(args.algorithm or ["MD5"])
        warn_missing_ha1(store, args.realm, algorithms, args.users)
        guard = auth_guard(args, log)
        try:
            # each instance numbers its nonces apart from others sharing --secret
            authenticator = DigestServer(args.realm, secret_bytes, algorithms=algorithms, proxy_role=args.proxy_role,
                                         instance=_secrets.randbits(32), **guard)
            if args.proxy_role:
                # the registrar side still answers REGISTER with 401 (RFC 3261 §22.3)
                register_authenticator = DigestServer(args.realm, secret_bytes, algorithms=algorithms,
                                                      instance=_secrets.randbits(32), **guard)
        except ValueError as e:
            raise UsageError(str(e)) from None
        portal = make_portal(store)
        users_store = store
    config = Configuration(media=not args.no_media,
                           socket_buffer=args.socket_buffer * 1024 if args.socket_buffer else None,
                           max_calls=args.max_calls, max_call_duration=args.max_call_duration or None)
    ua = UserAgent(reactor, config, account, authenticator=authenticator, portal=portal,
                   register_authenticator=register_authenticator,
                   **transport_options(reactor, args, bind, server=True),
                   trace=tracer if tracer.wanted else None)
    tracer.attach(ua)
    ua.log = log  # refused calls are logged on stderr with the server's other warnings
    registrar = None
    if authenticator is not None or args.registrar:
        from txsipua.ua.registrar import Registrar

        owners: dict[str, str] = {}
        for item in args.owner or []:
            auth_user, sep, aor_user = item.partition("=")
            if not sep or not auth_user or not aor_user:
                raise UsageError(f"--owner takes AUTHUSER=AORUSER, not {item!r}")
            owners[auth_user] = aor_user
        registrar = Registrar(ua, owners=owners, max_bindings=args.max_bindings or None, log=log,
                              max_bindings_per_aor=args.max_bindings_per_aor,
                              owner_rules=users_store.may_register if users_store is not None else None)
        ua.on_request = registrar.handle
    return ua
