"""The ``txsipua`` commands for single requests and subscriptions, and ``call --transfer-to``.

* ``options TARGET [--account FILE]``: OPTIONS (RFC 3261 §11); prints the
  status line and what the peer allows; exit 0 on a 2xx, else 1.
* ``message TARGET TEXT --account FILE``: MESSAGE (RFC 3428) with a text/plain
  body; prints the status; exit 0 on a 2xx, else 1.
* ``subscribe mwi|dialog TARGET --account FILE [--duration S] [--expires S]``:
  SUBSCRIBE to message-summary (RFC 3842) or dialog (RFC 4235); prints one line
  per NOTIFY (its state and the document read), unsubscribes after
  ``--duration`` or on SIGINT/SIGTERM, then waits at most
  :data:`UNSUBSCRIBE_WAIT` (5 s) for the final NOTIFY; exit 0 once the
  subscription was accepted, 1 when the SUBSCRIBE failed.
* A TARGET that is not a SIP URI (nor a user of the account's domain) is a
  usage error: one line on stderr, exit 2, nothing sent.
* :func:`transfer_call` is ``call --transfer-to URI [--after S]``: a blind
  transfer (REFER, RFC 3515) of the answered call; prints its progress;
  exit 0 once the transferee reports a 2xx (the call is then hung up), else 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from txsipua.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Printer,
    bind_for,
    describe_error,
    load_account,
    non_negative_float,
    non_negative_int,
    on_stop_signals,
    parse_bind,
    transport_options,
)
from txsipua.errors import SIPError, TransferFailed

EVENTS = {"mwi": "message-summary", "dialog": "dialog"}
"""``subscribe``'s kinds and the event packages they name."""

UNSUBSCRIBE_WAIT = 5.0
"""Seconds ``subscribe`` waits, once it unsubscribed, for the final NOTIFY before
giving the subscription up and exiting (not Timer N's 32 s, RFC 6665 §4.1.2.3)."""


def _user_agent(reactor: Any, args: argparse.Namespace, account: Any) -> Any:
    from txsipua.ua.config import Configuration
    from txsipua.ua.useragent import UserAgent

    printer = Printer(args.verbose)
    bind = bind_for(args, account) if account is not None else parse_bind(args.bind)
    return UserAgent(reactor, Configuration(media=False), account, trace=printer.trace,
                     **transport_options(reactor, args, bind))


def _target(account: Any, text: str) -> Any:
    from txsipua.sip.uri import SipURI

    if ":" in text and text.split(":", 1)[0].lower() in ("sip", "sips"):
        return SipURI.parse(text)
    if account is None:
        return SipURI.parse(f"sip:{text}")
    return account.domain_uri(text)


def _usage_target(account: Any, args: argparse.Namespace) -> Any:
    """The TARGET as a URI, or ``None`` after printing why it is a usage error."""
    from txsipua.errors import ParseError

    try:
        return _target(account, args.target)
    except ParseError as e:
        print(f"txsipua {args.command}: error: TARGET {args.target!r} is not a SIP URI: {e.detail}",
              file=sys.stderr)
        return None


@defer.inlineCallbacks
def _one_request(reactor: Any, args: argparse.Namespace, send: Callable[[Any, Any], Any]) -> Any:
    account = load_account(args.account) if args.account else None
    target = _usage_target(account, args)
    if target is None:
        return EXIT_USAGE
    ua = _user_agent(reactor, args, account)
    yield ua.start()
    try:
        response = yield send(ua, target)
    except SIPError as e:
        print(describe_error(e), file=sys.stderr)
        yield ua.stop()
        return EXIT_FAILED
    print(f"{response.status} {response.reason}", flush=True)
    for name in ("Allow", "Accept", "Supported"):
        value = response.headers.get(name) if args.command == "options" else None
        if value:
            print(f"{name}: {', '.join(response.headers.get_all(name))}")
    yield ua.stop()
    return EXIT_OK if 200 <= response.status < 300 else EXIT_FAILED


def cmd_options(reactor: Any, args: argparse.Namespace) -> Any:
    """``txsipua options``."""
    return _one_request(reactor, args, lambda ua, uri: ua.options(uri))


def cmd_message(reactor: Any, args: argparse.Namespace) -> Any:
    """``txsipua message``."""
    return _one_request(reactor, args, lambda ua, uri: ua.message(uri, args.text))


def describe_notification(note: Any) -> str:
    """One line for a NOTIFY: ``notify: STATE[ (expires=N)] DOCUMENT``."""
    state = note.state
    head = f"notify: {state.state}"
    if state.reason:
        head += f" (reason={state.reason})"
    elif state.expires is not None:
        head += f" (expires={state.expires})"
    if note.error is not None:
        return f"{head} unreadable body: {note.error.detail}"
    if note.document is None:
        return head
    if isinstance(note.document, bytes):
        return f"{head} {len(note.document)} bytes"
    return f"{head} {note.document}"


@defer.inlineCallbacks
def cmd_subscribe(reactor: Any, args: argparse.Namespace) -> Any:
    """``txsipua subscribe``."""
    account = load_account(args.account)
    target = _usage_target(account, args)
    if target is None:
        return EXIT_USAGE
    ua = _user_agent(reactor, args, account)
    done: defer.Deferred[None] = defer.Deferred()

    def finish(_: Any = None) -> Any:
        if not done.called:
            done.callback(None)
        return _

    yield on_stop_signals(reactor, finish)
    yield ua.start()
    try:
        sub = ua.subscribe(target, EVENTS[args.kind], args.expires)
    except SIPError as e:
        print(describe_error(e), file=sys.stderr)
        yield ua.stop()
        return EXIT_FAILED
    sub.on_notify = lambda note: print(describe_notification(note), flush=True)
    try:
        response = yield sub.started
    except Exception as e:
        print(describe_error(e), file=sys.stderr)
        yield ua.stop()
        return EXIT_FAILED
    print(f"subscribed: {response.status} {response.reason}", flush=True)
    sub.ended.addBoth(finish)
    timer = reactor.callLater(args.duration, finish) if args.duration > 0 else None
    yield done
    if timer is not None and timer.active():
        timer.cancel()
    if sub.ended.called:
        reason = sub.ended.result
        print(f"subscription ended by the notifier ({reason})")
    else:
        reason = yield _bounded(reactor, sub.stop(), UNSUBSCRIBE_WAIT)
        if not sub.ended.called:
            sub.abandon()  # no final NOTIFY in time: given up, not waited for again by ua.stop()
        print(f"unsubscribed ({reason})")
    yield ua.stop()
    return EXIT_OK


def _bounded(reactor: Any, d: defer.Deferred[Any], seconds: float) -> defer.Deferred[Any]:
    """``d``, or ``"no answer"`` after ``seconds``."""
    out: defer.Deferred[Any] = defer.Deferred()

    def give_up() -> None:
        if not out.called:
            out.callback("no answer")

    timer = reactor.callLater(seconds, give_up)

    def relay(result: Any) -> None:
        if timer.active():
            timer.cancel()
        if not out.called:
            out.callback(result if isinstance(result, str) else "error")

    d.addBoth(relay)
    return out


@defer.inlineCallbacks
def transfer_call(reactor: Any, call: Any, target: str, after: float) -> Any:
    """Blind-transfer ``call`` to ``target`` after ``after`` seconds; the exit status.

    Prints ``transfer: <kind> <status> <reason>`` for each report and
    ``transferred to TARGET`` on success.
    """
    if after > 0:
        waited: defer.Deferred[Any] = defer.Deferred()

        def due() -> None:
            if not waited.called:
                waited.callback(None)

        timer = reactor.callLater(after, due)

        def early(reason: Any) -> Any:
            if not waited.called:
                timer.cancel()
                waited.callback(None)
            return reason

        call.ended.addBoth(early)
        yield waited
    if call.ended.called:
        print("transfer failed: the call ended first", file=sys.stderr)
        return EXIT_FAILED
    try:
        transfer = call.transfer(target)
    except SIPError as e:
        print(f"transfer failed: {describe_error(e)}", file=sys.stderr)
        return EXIT_FAILED
    transfer.on_progress = lambda r: print(  # no status 0: a failure without a final status has none
        " ".join(part for part in ("transfer:", r.kind, str(r.status or ""), r.reason) if part), flush=True)
    try:
        yield transfer.done
    except TransferFailed as e:
        print(describe_error(e), file=sys.stderr)  # "transfer failed: 486 Busy Here"
        if not call.ended.called:
            yield call.hangup()
        return EXIT_FAILED
    except Exception as e:
        print(f"transfer failed: {describe_error(e)}", file=sys.stderr)
        if not call.ended.called:
            yield call.hangup()
        return EXIT_FAILED
    print(f"transferred to {target}", flush=True)
    if not call.ended.called:
        yield call.ended
    return EXIT_OK


def add_request_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``options``, ``message`` and ``subscribe`` to the parser's subcommands."""
    o = sub.add_parser("options", help="send OPTIONS and print the status (exit 0 on 2xx)",
                       description="OPTIONS to TARGET (RFC 3261 §11): print the status line and the Allow, "
                                   "Accept and Supported the peer lists. Exit 0 on a 2xx, 1 otherwise.")
    o.add_argument("target", metavar="TARGET", help="SIP URI")
    o.add_argument("--account", metavar="FILE", help="account file (TOML; default: no identity, no credentials)")
    common(o)
    o.set_defaults(func=cmd_options)

    m = sub.add_parser("message", help="send a text MESSAGE (RFC 3428) and print the status",
                       description="MESSAGE with TEXT as text/plain to TARGET; print the status. "
                                   "Exit 0 on a 2xx, 1 otherwise.")
    m.add_argument("target", metavar="TARGET", help="SIP URI or a user of the account's domain")
    m.add_argument("text", metavar="TEXT", help="the message")
    m.add_argument("--account", required=True, metavar="FILE", help="account file (TOML)")
    common(m)
    m.set_defaults(func=cmd_message)

    s = sub.add_parser("subscribe", help="subscribe to MWI or a dialog (BLF) and print each NOTIFY",
                       description="SUBSCRIBE to message-summary (mwi, RFC 3842) or dialog (RFC 4235) at TARGET; "
                                   "print one line per NOTIFY; unsubscribe after --duration seconds or on "
                                   "SIGINT/SIGTERM, then wait at most 5 s for the final NOTIFY. "
                                   "Exit 0 once accepted, 1 if the SUBSCRIBE failed, 2 for a bad TARGET.")
    s.add_argument("kind", choices=sorted(EVENTS), help="mwi (message-summary) or dialog")
    s.add_argument("target", metavar="TARGET", help="SIP URI or a user of the account's domain")
    s.add_argument("--account", required=True, metavar="FILE", help="account file (TOML)")
    s.add_argument("--duration", type=non_negative_float, default=0.0, metavar="SECONDS",
                   help="unsubscribe after this long (default 0: until SIGINT/SIGTERM or the notifier ends it)")
    s.add_argument("--expires", type=non_negative_int, default=3600, metavar="SECONDS",
                   help="expiry to ask for (default 3600; refreshed before it runs out)")
    common(s)
    s.set_defaults(func=cmd_subscribe)


__all__ = ["EVENTS", "UNSUBSCRIBE_WAIT", "add_request_commands", "cmd_message", "cmd_options", "cmd_subscribe",
           "describe_notification", "transfer_call"]
