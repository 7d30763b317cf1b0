"""A long-lived txsipua: a registered account and an answering or scripted bot, as a Twisted service.

:class:`UserAgentService` is a :class:`twisted.application.service.Service`
around one :class:`~txsipua.ua.useragent.UserAgent`:

- ``startService``: listen, then register the account (if asked) and keep the
  registration refreshed (RFC 3261 §10.2.4); incoming calls are answered
  (200 with SDP), handed to a *bot* (``bot(call)``, e.g. one that plays a
  prompt and hangs up), hung up after ``duration`` seconds if set;
- ``stopService``: hang up every call (CANCEL or BYE as each requires),
  unregister (``Expires: 0``) and stop listening; the Deferred it returns fires
  once all of that is done, so ``twistd``/``twist`` wait for it before the
  reactor stops.

``txsipua answer`` and ``txsipua register --keep`` run this same service (the
commands add their printing and signal handling around it); the ``twist``
plugin (``twisted/plugins/txsipua_plugin.py``) runs it under ``twist``::

    twist txsipua answer --bind 127.0.0.1:5080 --realm voip.example.net --users users.htdigest
    twist txsipua register --account alice.toml --expires 600
    twist txsipua answer --account bob.toml --register --bot mybot:on_call

The options are those of the ``txsipua`` command of the same name (``--help``
lists them).  Logging goes through twisted.logger (``twist --log-format``
chooses text or JSON), the service's events under namespace ``txsipua.service``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

__all__ = ["Options", "UserAgentService", "load_bot", "make_service"]

Bot = Callable[[Any], Any]
"""``bot(call)`` for each answered :class:`~txsipua.ua.call.Call`; may return a Deferred or coroutine."""


def load_bot(spec: str) -> Bot:
    """Import ``MODULE:FUNCTION`` (``--bot``).

    Raises:
        UsageError: not ``MODULE:FUNCTION``, the module cannot be imported, or no such callable.
    """
    from txsipua.errors import UsageError

    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"--bot takes MODULE:FUNCTION, not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"--bot {spec}: cannot import {module_name}: {e}") from None
    bot = getattr(module, name, None)
    if not callable(bot):
        raise UsageError(f"--bot {spec}: {module_name} has no callable {name!r}")
    return bot


class UserAgentService(Service):
    """One user agent run as a service: listening, optionally registered, optionally answering.

    Args:
        ua: the :class:`~txsipua.ua.useragent.UserAgent` (not started).
        register_expires: register the account for this many seconds and
            keep it refreshed; ``None``: do not register.
        answer: answer incoming calls (otherwise the UA's own handler, if
            any, stays; with none it declines them).
        duration: hang up each answered call after this many seconds (0: wait for BYE).
        count: after this many answered calls have ended, :attr:`finished` fires.
        bot: called with every answered call.
        on_answered: called with every answered call before the bot (the
            CLI's ``--pcap-rtp`` hook).
        ring: seconds to ring (180, reliable when the caller supports
            100rel, RFC 3262) before answering; 0 answers at once.

    Attributes:
        ready: fires with ``((host, port), RegistrationResult or None)`` once
            listening and registered, or fails with the registration's error.
        finished: fires when ``count`` calls have ended (never with ``count`` 0).
        answered: how many calls were answered.
        registration: the :class:`~txsipua.ua.registration.Registration`, or None.
        unregister_error: why unregistering failed on stop, or None.
    """

    log = Logger(namespace="txsipua.service")

    def __init__(self, ua: Any, *, register_expires: int | None = None, answer: bool = False,
                 duration: float = 0.0, count: int = 0, bot: Bot | None = None,
                 on_answered: Callable[[Any], object] | None = None, ring: float = 0.0) -> None:
        self.ua = ua
        self.ring = ring
        self.register_expires = register_expires
        self.duration = duration
        self.count = count
        self.bot = bot
        self.on_answered = on_answered
        self.answered = 0
        self.registration: Any = None
        self.unregister_error: BaseException | None = None
        self.ready: defer.Deferred[Any] = defer.Deferred()
        self.finished: defer.Deferred[None] = defer.Deferred()
        self._stopping: defer.Deferred[None] | None = None
        if answer:
            ua.on_incoming_call = self._on_call

    # ----------------------------------------------------------- lifecycle
    def start(self) -> defer.Deferred[Any]:
        """Listen and register; the Deferred is :attr:`ready`."""
        defer.ensureDeferred(self._start()).chainDeferred(self.ready)
        return self.ready

    async def _start(self) -> Any:
        address = await self.ua.start()
        self.log.info("listening on {host}:{port}", host=address[0], port=address[1])
        result = None
        if self.register_expires is not None:
            self.registration = reg = self.ua.registration(self.register_expires)
            reg.on_refresh_failed = self._refresh_failed
            result = await reg.start()
            self.log.info("registered {aor}: {expires} s granted", aor=str(self.ua.account.aor),
                          expires=result.expires)
        return (address, result)

    def _refresh_failed(self, error: Exception) -> None:
        from txsipua.cli.common import describe_error

        self.log.warn("registration refresh failed: {reason}", reason=describe_error(error))

    def stop(self) -> defer.Deferred[None]:
        """Hang up, unregister (errors kept in :attr:`unregister_error`), stop listening. Idempotent."""
        if self._stopping is None:
            self._stopping = defer.ensureDeferred(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        if not self.ready.called:
            # stopped while starting: let the REGISTER finish, then undo it below
            with contextlib.suppress(Exception):
                await self.ready
        reg = self.registration
        if reg is not None:
            await reg.stop()  # never fails: an un-REGISTER's error is kept in unregister_error
            if reg.unregister_error is None:
                self.log.info("unregistered")
            else:
                self.unregister_error = reg.unregister_error
                self.log.warn("unregistering failed: {error}", error=str(reg.unregister_error))
        await self.ua.stop()

    def abandon_registration(self) -> None:
        """Forget the registration without unregistering (``register`` without ``--keep``)."""
        if self.registration is not None:
            self.registration.abandon()
            self.registration = None

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        """Start (see :meth:`start`); a failure is logged and stops the reactor."""
        super().startService()

        def failed(f: Any) -> None:
            from txsipua.cli.common import describe_error

            self.log.critical("cannot start: {reason}", reason=describe_error(f.value))
            reactor = self.ua.reactor
            if getattr(reactor, "running", False):
                reactor.stop()

        self.start().addErrback(failed)

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802 - Twisted's name
        """Hang up, unregister, stop listening: the Deferred fires once done."""
        super().stopService()
        return self.stop()

    # --------------------------------------------------------------- calls
    def _on_call(self, incoming: Any) -> None:
        if self.ring:  # 180 first (reliable, RFC 3262, when the caller supports 100rel)
            incoming.ring()
            self.ua.reactor.callLater(self.ring, self._answer_if_pending, incoming)
            return
        self._answer(incoming)

    def _answer_if_pending(self, incoming: Any) -> None:
        if incoming.pending:  # not cancelled while ringing
            self._answer(incoming)

    def _answer(self, incoming: Any) -> None:
        call = incoming.answer()
        if call.ended.called:  # declined after all (no media socket left: 503, or 500)
            return
        self.answered += 1
        if self.on_answered is not None:
            self.on_answered(call)
        reactor = self.ua.reactor
        if self.duration:
            t = reactor.callLater(self.duration, call.hangup)
            call.ended.addBoth(lambda r: (t.active() and t.cancel(), r)[1])
        if self.count and self.answered >= self.count:
            call.ended.addBoth(self.finish)
        if self.bot is not None:
            bot = self.bot

            def run_bot(_: Any) -> Any:
                return defer.maybeDeferred(bot, call).addCallback(lambda _: None)

            def bot_failed(f: Any) -> None:
                self.log.failure("bot failed on call {call_id}", f, call_id=call.call_id)
                call.hangup()

            # the bot runs once the ACK confirmed the call (RFC 3261 §13.3.1.4)
            call.confirmed.addCallback(lambda _: call).addCallback(run_bot).addErrback(bot_failed)

    def finish(self, result: Any = None) -> Any:
        """Fire :attr:`finished` (once); passes ``result`` through (usable as a callback)."""
        if not self.finished.called:
            self.finished.callback(None)
        return result


# ----------------------------------------------------------------- twist
class Options(usage.Options):
    """``twist txsipua COMMAND [OPTIONS]``: COMMAND is ``answer`` or ``register``, with the
    options of the ``txsipua`` command of the same name."""

    synopsis = "[answer|register] [options]  (the options of `txsipua answer` / `txsipua register`)"
    longdesc = ("Run txsipua as a long-lived service: `answer` answers calls (and is a registrar with "
                "--realm/--users; --account/--register registers an account, --bot MODULE:FUNCTION "
                "scripts each call); `register` keeps an account registered. On stop: calls are hung up "
                "and the account unregistered.")

    def __init__(self) -> None:
        super().__init__()
        self.namespace: argparse.Namespace | None = None

    def parseOptions(self, options: Any = None) -> None:  # noqa: N802 - Twisted's name
        """Parse with the ``txsipua`` command's own parser.

        Raises:
            usage.UsageError: a bad command line.
        """
        from txsipua.cli.main import build_parser

        argv = list(sys.argv[1:] if options is None else options)
        parser = build_parser()
        parser.prog = "twist txsipua"
        if not argv:
            raise usage.UsageError("a command is needed: answer or register")
        if argv[0] in ("-h", "--help"):
            print(self.__str__())
            print(_commands_help())
            raise SystemExit(0)
        if argv[0] not in ("answer", "register"):
            raise usage.UsageError(f"twist txsipua runs `answer` or `register`, not {argv[0]!r}")
        try:
            self.namespace = parser.parse_args(argv)
        except SystemExit as e:
            if e.code:
                raise usage.UsageError(f"bad options for {argv[0]}") from None
            raise
        if argv[0] == "register":
            self.namespace.keep = True
        self.namespace.to_log = True  # twist owns the log: the ladder goes to twisted.logger


def _commands_help() -> str:
    """The commands ``twist txsipua`` runs (answer, register), each with its one-line help."""
    return ("Commands (`twist txsipua COMMAND --help` lists a command's options):\n"
            "  answer     answer incoming calls (optionally challenging them; a registrar with --realm)\n"
            "  register   keep an account registered (unregistered on stop)")


def make_service(options: Options, reactor: Any = None) -> UserAgentService:
    """The service for ``twist txsipua``'s parsed options.

    Raises:
        UsageError: options that cannot be set up (unreadable files...).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    args = options.namespace
    assert args is not None
    if args.command == "register":
        return register_service(reactor, args)
    return answer_service(reactor, args)


def register_service(reactor: Any, args: argparse.Namespace) -> UserAgentService:
    """The service of ``register``: the account registered for ``--expires``, kept refreshed."""
    from txsipua.cli.common import bind_for, load_account, transport_options
    from txsipua.cli.trace import session_trace
    from txsipua.ua.config import Configuration
    from txsipua.ua.useragent import UserAgent

    account = load_account(args.account)
    tracer = session_trace(reactor, args)
    ua = UserAgent(reactor, Configuration(media=False), account, trace=tracer if tracer.wanted else None,
                   **transport_options(reactor, args, bind_for(args, account)))
    tracer.attach(ua)
    return UserAgentService(ua, register_expires=args.expires)


def answer_service(reactor: Any, args: argparse.Namespace) -> UserAgentService:
    """The service of ``answer``: the answering UAS (and registrar) its options describe.

    Raises:
        UsageError: ``--realm`` without ``--users``, an unreadable users file, a bad algorithm...
    """
    from txsipua.cli.answer_setup import build_answering_ua
    from txsipua.cli.trace import session_trace

    tracer = session_trace(reactor, args)
    ua = build_answering_ua(reactor, args, tracer)
    bot = load_bot(args.bot) if getattr(args, "bot", None) else None
    on_answered: Callable[[Any], object] = tracer.watch_call
    transfer_to = getattr(args, "transfer_to", None)
    if transfer_to:
        def on_answered(call: Any) -> None:
            tracer.watch_call(call)
            # once the ACK came: REFER the caller to --transfer-to (RFC 3515)
            from txsipua.cli.requests import transfer_call

            call.confirmed.addCallback(lambda c: transfer_call(reactor, c, transfer_to, args.after))
            call.confirmed.addErrback(lambda f: None)

    return UserAgentService(ua, register_expires=args.expires if args.account and args.register else None,
                            answer=True, duration=args.duration, count=args.count, bot=bot,
                            on_answered=on_answered, ring=getattr(args, "ring", 0.0))
