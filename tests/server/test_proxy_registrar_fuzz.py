"""Whatever arrives, the registrar/proxy neither raises nor sends unparsable bytes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxykit import (
    ALICE,
    BOB,
    DOMAIN,
    PROXY,
    REALM,
    SECRET,
    USERS,
    authorize,
    invite,
    register,
    response_to,
)

from txsipua.server.proxy import ProxyRegistrar
from txsipua.sip.message import Response, parse_message


def _seeds() -> list[bytes]:
    server = ProxyRegistrar(PROXY, DOMAIN, REALM, USERS, SECRET)
    reg = register()
    server.receive(reg.to_bytes(), ALICE, 0.0)
    challenge = parse_message(server.outbox()[0].data)
    assert isinstance(challenge, Response)
    inv = invite()
    forwarded = invite()
    forwarded.headers.prepend("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-txp-1")
    return [
        reg.to_bytes(),
        authorize(reg, challenge, "alice-auth", "alice-pw").to_bytes(),
        inv.to_bytes(),
        register(contact="*", expires=0).to_bytes(),
        response_to(forwarded, 180).to_bytes(),
        invite(method="CANCEL").to_bytes(),
    ]


SEEDS = _seeds()
SIPPY = st.text(alphabet=st.sampled_from(list("<>;:=,@\"* \t\\/sipSIP.0123456789abz-_%\r\n\x00é")),
                max_size=40)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with a few lines or bytes spoiled."""
    data = draw(st.sampled_from(SEEDS))
    lines = data.split(b"\r\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["value", "delete", "duplicate", "bytes"]))
        if kind == "value":
            name = lines[i].split(b":", 1)[0]
            lines[i] = name + b": " + draw(SIPPY).encode()
        elif kind == "delete":
            del lines[i]
            if not lines:
                lines = [b""]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        else:
            lines[i] = draw(st.binary(max_size=30))
    return b"\r\n".join(lines)


def _check(server: ProxyRegistrar, data: bytes, source: tuple[str, int], now: float) -> None:
    server.receive(data, source, now)
    for out in server.outbox():
        parse_message(out.data)  # everything sent is valid SIP
        assert isinstance(out.destination[1], int)
    while server.next_event() is not None:
        pass
    assert server.internal_errors == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=4), st.sampled_from([ALICE, BOB]))
def test_mutated_messages_never_crash(datas: list[bytes], source: tuple[str, int]) -> None:
    """Spoiled headers get 400s or are dropped; the server never fails internally."""
    server = ProxyRegistrar(PROXY, DOMAIN, REALM, USERS, SECRET)
    for i, data in enumerate(datas):
        _check(server, data, source, float(i))
    server.handle_timer(10_000.0)
    assert server.get_timer() is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    """Arbitrary datagrams are dropped and counted."""
    server = ProxyRegistrar(PROXY, DOMAIN, REALM, USERS, SECRET)
    _check(server, data, ALICE, 0.0)
