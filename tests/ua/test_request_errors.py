"""What the public request methods raise at once and what fails their Deferred, as their docstrings say.

Behaviour is not unified (``call()`` fails its Deferred where ``place_call()``
raises); each docstring names exactly which: an error raised synchronously in
its ``Raises:`` section, an error that fails the Deferred in the text before it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet import defer
from uafakes import UDPClock, alice

from txsipua.sip.uri import SipURI
from txsipua.sip.values import NameAddr
from txsipua.ua.config import Configuration
from txsipua.ua.outgoing import OutgoingRequests
from txsipua.ua.transports import UDPTransport
from txsipua.ua.useragent import UserAgent


def _agent(account: bool = True) -> UserAgent:
    clock = UDPClock()
    ua = UserAgent(clock, Configuration(media=False), alice() if account else None,
                   UDPTransport(clock, "192.0.2.10", 0))
    ua.start()
    return ua


def _outcome(fn: Callable[[], Any]) -> tuple[str, str]:
    """``("raises", ErrorName)`` or ``("fails", ErrorName)`` for the Deferred (or a Call's ``answered``)."""
    try:
        result = fn()
    except Exception as e:
        return "raises", type(e).__name__
    d = result if isinstance(result, defer.Deferred) else getattr(result, "answered", None) or result.started
    seen: list[Any] = []
    d.addBoth(seen.append)
    assert seen and hasattr(seen[0], "value"), seen
    return "fails", type(seen[0].value).__name__


def _options(ua: UserAgent, target: str) -> Any:
    uri = SipURI.parse(target)
    assert ua.account is not None
    return ua.core.new_request("OPTIONS", uri, ua.account.identity, NameAddr(uri))


BAD = "sip:bob@ex ample.com"
CASES: list[tuple[str, bool, Callable[[UserAgent], Any], tuple[str, str]]] = [
    ("options", True, lambda ua: ua.options(BAD), ("raises", "ParseError")),
    ("message", True, lambda ua: ua.message(BAD, "hi"), ("raises", "ParseError")),
    ("place_call", True, lambda ua: ua.place_call(BAD), ("raises", "ParseError")),
    ("call", True, lambda ua: ua.call(BAD), ("fails", "ParseError")),
    ("subscribe", True, lambda ua: ua.subscribe(BAD, "dialog"), ("raises", "ParseError")),
    ("place_call", True, lambda ua: ua.place_call("sip:bob@unknown.example"), ("raises", "ResolutionError")),
    ("call", True, lambda ua: ua.call("sip:bob@unknown.example"), ("fails", "ResolutionError")),
    ("options", True, lambda ua: ua.options("sip:bob@unknown.example"), ("fails", "ResolutionError")),
    ("message", True, lambda ua: ua.message("sip:bob@unknown.example", "hi"), ("fails", "ResolutionError")),
    ("subscribe", True, lambda ua: ua.subscribe("sip:bob@unknown.example", "dialog"), ("fails", "ResolutionError")),
    ("send", True, lambda ua: ua.send(_options(ua, "sip:bob@unknown.example")), ("fails", "ResolutionError")),
    ("place_call", False, lambda ua: ua.place_call("sip:bob@192.0.2.9"), ("raises", "LocalProtocolError")),
    ("call", False, lambda ua: ua.call("sip:bob@192.0.2.9"), ("fails", "LocalProtocolError")),
    ("subscribe", False, lambda ua: ua.subscribe("sip:bob@192.0.2.9", "dialog"), ("raises", "LocalProtocolError")),
    ("register", False, lambda ua: ua.register(), ("raises", "LocalProtocolError")),
    ("registration", False, lambda ua: ua.registration().start(), ("fails", "LocalProtocolError")),
]


@pytest.mark.parametrize(("method", "account", "act", "expected"), CASES,
                         ids=[f"{c[0]}-{c[3][0]}-{c[3][1]}" for c in CASES])
def test_the_docstring_says_how_each_error_comes(method: str, account: bool, act: Callable[[UserAgent], Any],
                                                 expected: tuple[str, str]) -> None:
    how, name = _outcome(lambda: act(_agent(account)))
    assert (how, name) == expected
    doc = inspect.getdoc(getattr(OutgoingRequests, method)) or ""
    before, _, raises = doc.partition("\nRaises:\n")
    if how == "raises":
        assert f"    {name}:" in f"\n{raises}", f"{method}: {name} raised at once, not in its Raises: section"
    else:
        assert name in before, f"{method}: {name} fails the Deferred, not said before Raises:"
        assert f"    {name}:" not in f"\n{raises}", f"{method}: {name} listed as raised at once"
