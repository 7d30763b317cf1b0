"""SIPp's own ``[authentication]``, digest-uri left to SIPp, against ``txsipua answer`` (issue 12).

SIPp 3.6 without ``-auth_uri`` answers a challenge to ``INVITE sip:bob@HOST:PORT`` with
``uri="sip:HOST:PORT"``: no user part.  Kamailio, Asterisk and FreeSWITCH accept it, and so
does ``txsipua answer`` by default (a SIP URI of the Request-URI's host and port, RFC 3261
§22.4 read as they do); ``--strict-digest-uri`` restores the strict rule and answers 400.
The scenario is ``client_call_auth.xml`` (an INVITE, the 401, the INVITE with SIPp's
``[authentication]``, the call, BYE) and ``uac_register.xml`` for REGISTER.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from clients import AnswerServer, HtdigestUser, start_answer, write_users
from peers import Sipp

if TYPE_CHECKING:  # only annotations: at run time the fixtures come from conftest.py itself
    from conftest import TxsipuaCli

pytestmark = pytest.mark.interop

REALM = "txsipua.example.net"
USER = "alice"
AUTH_USER = "alice-auth"
PASSWORD = "alice-secret-7"
CALLEE = "bob"


@pytest.fixture
def answer(tmp_path: Path, txsipua_cli: TxsipuaCli) -> Callable[..., AnswerServer]:
    """``answer(*extra)``: a running ``txsipua answer --realm --users`` (MD5), stopped at teardown."""

    def factory(*extra: str) -> AnswerServer:
        users = write_users(tmp_path / "users.htdigest", [HtdigestUser(AUTH_USER, REALM, PASSWORD)], ("MD5",))
        return start_answer(txsipua_cli.start, realm=REALM, users=users, owners={AUTH_USER: USER},
                            extra=extra)

    return factory


def _call(sipp_factory: Callable[..., Sipp], server: AnswerServer) -> Sipp:
    """SIPp calls ``sip:bob@HOST:PORT`` and answers the 401 with its default digest-uri."""
    return sipp_factory(
        "client_call_auth.xml", remote=(server.host, server.port), auth=(AUTH_USER, PASSWORD),
        timeout=10, extra=["-key", "caller", USER, "-key", "callee", CALLEE],
    )


def test_sipp_default_digest_uri_call_is_accepted(
    answer: Callable[..., AnswerServer], sipp_factory: Callable[..., Sipp]
) -> None:
    """The INVITE with ``uri="sip:HOST:PORT"`` is answered 200, the call is ACKed and hung up."""
    server = answer()
    sipp = _call(sipp_factory, server)
    rc = sipp.wait(15)
    assert rc == 0, sipp.report() + "\n--- server\n" + server.ladder()
    invites = server.exchanges("INVITE")
    assert [(x.authenticated, x.final_status) for x in invites] == [(False, 401), (True, 200)], server.ladder()
    accepted = invites[1].request
    uri = accepted.digest_param("uri")
    assert uri == f"sip:{server.host}:{server.port}", accepted.text  # SIPp's default: no user part
    assert accepted.start_line.split(" ")[1] == f"sip:{CALLEE}@{server.host}:{server.port}"
    assert [x.final_status for x in server.exchanges("BYE")] == [200], server.ladder()


def test_sipp_default_digest_uri_register_is_accepted(
    answer: Callable[..., AnswerServer], sipp_factory: Callable[..., Sipp]
) -> None:
    """SIPp's REGISTER of ``sip:HOST:PORT`` with its default digest-uri is accepted (200) too.

    (For REGISTER that default equals the Request-URI; the lenient rule matters for the INVITE.)
    """
    server = answer()
    sipp = sipp_factory(
        "uac_register.xml", remote=(server.host, server.port), auth=(AUTH_USER, PASSWORD), timeout=10,
        extra=["-s", USER, "-key", "domain", f"{server.host}:{server.port}", "-key", "expires", "120"],
    )
    rc = sipp.wait(15)
    assert rc == 0, sipp.report() + "\n--- server\n" + server.ladder()
    registers = server.exchanges("REGISTER")
    assert [(x.authenticated, x.final_status) for x in registers] == [(False, 401), (True, 200)], server.ladder()
    assert registers[1].request.digest_param("uri") == f"sip:{server.host}:{server.port}"


def test_strict_digest_uri_refuses_sipp_default(
    answer: Callable[..., AnswerServer], sipp_factory: Callable[..., Sipp]
) -> None:
    """With ``--strict-digest-uri`` the same INVITE gets 400 (RFC 3261 §22.4), never a 2xx."""
    server = answer("--strict-digest-uri")
    sipp = _call(sipp_factory, server)
    rc = sipp.wait(15)
    assert rc != 0, sipp.report()
    invites = server.exchanges("INVITE")
    assert [(x.authenticated, x.final_status) for x in invites] == [(False, 401), (True, 400)], server.ladder()
