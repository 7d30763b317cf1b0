"""The test registrar and stateless proxy (RFC 3261 §10.3, §16, §16.11), in memory."""

from __future__ import annotations

import pytest
from proxykit import (
    ALICE,
    ALICE_PHONE2,
    BOB,
    DOMAIN,
    PROXY,
    REALM,
    SECRET,
    USERS,
    authorize,
    invite,
    parse,
    register,
    response_to,
)

from txsipua.auth.challenge import parse_authorization, parse_challenges
from txsipua.server.proxy import (
    BindingExpired,
    Dropped,
    Handled,
    PresentedCredentials,
    ProxyRegistrar,
)
from txsipua.sip.message import Request, Response


def make_server() -> ProxyRegistrar:
    """A registrar for example.com, realm voip.example.net, at 192.0.2.1:5060."""
    return ProxyRegistrar(PROXY, DOMAIN, REALM, USERS, SECRET)


def exchange(
    server: ProxyRegistrar, request: Request, source: tuple[str, int] = ALICE, now: float = 0.0
) -> list[tuple[Request | Response, tuple[str, int]]]:
    """Feed ``request`` and return what the server sent, parsed, with destinations."""
    server.receive(request.to_bytes(), source, now)
    return [(parse(o.data), o.destination) for o in server.outbox()]


def only(sent: list[tuple[Request | Response, tuple[str, int]]]) -> tuple[Request | Response, tuple[str, int]]:
    """The one message sent."""
    assert len(sent) == 1, sent
    return sent[0]


def events(server: ProxyRegistrar) -> list[object]:
    """Drain the server's events."""
    out = []
    while (event := server.next_event()) is not None:
        out.append(event)
    return out


def registered(server: ProxyRegistrar, source=ALICE, user="alice", auth=("alice-auth", "alice-pw"),
               now: float = 0.0, **kw) -> Response:
    """REGISTER, answer the 401, return the final response."""
    first = register(source, user, **kw)
    challenge, _ = only(exchange(server, first, source, now))
    assert isinstance(challenge, Response) and challenge.status == 401
    final, _ = only(exchange(server, authorize(first, challenge, *auth), source, now))
    assert isinstance(final, Response)
    return final


def register_bob(server: ProxyRegistrar, now: float = 0.0) -> None:
    """Bob registers his contact sip:bob@192.0.2.20:5070."""
    assert registered(server, BOB, "bob", ("bob-auth", "bob-pw"), now,
                      call_id="bob-reg@192.0.2.20").status == 200


# ---------------------------------------------------------------- registrar


def test_register_is_challenged_with_401_in_the_realm() -> None:
    """REGISTER without credentials gets 401 with a digest challenge for the realm (§22.1)."""
    server = make_server()
    response, destination = only(exchange(server, register()))
    assert isinstance(response, Response)
    assert response.status == 401
    assert destination == ALICE
    (challenge,) = parse_challenges(response.headers.get("WWW-Authenticate") or "")
    assert challenge.realm == REALM != DOMAIN
    assert response.to.tag  # §8.2.6.2
    assert response.call_id == "reg-call-1@192.0.2.10"
    assert str(response.cseq) == "1 REGISTER"
    assert server.bindings("sip:alice@example.com", 0.0) == []


def test_register_with_credentials_binds_and_lists_the_contact() -> None:
    """The retried REGISTER is answered 200 listing the binding with its expiry (§10.3 step 8)."""
    server = make_server()
    final = registered(server, expires=600)
    assert final.status == 200
    (contact,) = final.contact
    assert str(contact.uri) == "sip:alice@192.0.2.10:5060"
    assert contact.params["expires"] == "600"
    (binding,) = server.bindings("sip:alice@example.com", 10.0)
    assert binding.expires_at == 600.0
    assert binding.remaining(10.0) == 590


def test_wrong_password_is_challenged_again() -> None:
    """Bad credentials get a fresh 401, and the event says why."""
    server = make_server()
    first = register()
    challenge, _ = only(exchange(server, first))
    events(server)
    again, _ = only(exchange(server, authorize(first, challenge, "alice-auth", "wrong")))
    assert isinstance(again, Response) and again.status == 401
    assert "WWW-Authenticate" in again.headers
    notes = [e.note for e in events(server) if isinstance(e, Handled) and e.direction == "out"]
    assert any("wrong password" in n and "alice-auth" in n for n in notes)
    assert server.bindings("sip:alice@example.com", 0.0) == []


def test_unknown_auth_user_is_challenged_again() -> None:
    """Credentials of a user the registrar does not know get 401 again."""
    server = make_server()
    first = register()
    challenge, _ = only(exchange(server, first))
    again, _ = only(exchange(server, authorize(first, challenge, "mallory", "x")))
    assert isinstance(again, Response) and again.status == 401


def test_auth_user_not_owning_the_aor_gets_403() -> None:
    """alice-auth may not register sip:bob@example.com (§10.3 step 6)."""
    server = make_server()
    first = register(user="bob")
    challenge, _ = only(exchange(server, first))
    final, _ = only(exchange(server, authorize(first, challenge, "alice-auth", "alice-pw")))
    assert isinstance(final, Response) and final.status == 403
    assert server.bindings("sip:bob@example.com", 0.0) == []
    notes = [e.note for e in events(server) if isinstance(e, Handled)]
    assert any("alice-auth does not own sip:bob@example.com" in n for n in notes)


def test_aor_of_another_domain_gets_404() -> None:
    """A To outside the domain is not served here (§10.3 step 3)."""
    server = make_server()
    request = register()
    request.headers.set("To", "<sip:alice@example.org>")
    response, _ = only(exchange(server, request))
    assert isinstance(response, Response) and response.status == 404


def test_two_devices_are_listed_with_their_remaining_time() -> None:
    """Every current binding is listed in the 200 with what is left of it (§10.3 step 8)."""
    server = make_server()
    registered(server, expires=600, now=0.0)
    final = registered(server, ALICE_PHONE2, expires=3600, now=100.0,
                       call_id="phone2@192.0.2.11", branch="z9hG4bKp2")
    listed = {str(c.uri): c.params["expires"] for c in final.contact}
    assert listed == {"sip:alice@192.0.2.10:5060": "500", "sip:alice@192.0.2.11:5064": "3600"}


def test_register_without_contact_fetches_bindings() -> None:
    """A REGISTER with no Contact changes nothing and lists the bindings (§10.2.3)."""
    server = make_server()
    registered(server, expires=600)
    final = registered(server, contact="", now=60.0, branch="z9hG4bKq", cseq=5)
    assert final.status == 200
    assert [c.params["expires"] for c in final.contact] == ["540"]


def test_refresh_updates_the_expiry() -> None:
    """A refresh with a higher CSeq in the same Call-ID moves the expiry (§10.3 step 7)."""
    server = make_server()
    registered(server, expires=600)
    final = registered(server, expires=900, now=300.0, cseq=3, branch="z9hG4bKr2")
    assert [c.params["expires"] for c in final.contact] == ["900"]
    (binding,) = server.bindings("sip:alice@example.com", 300.0)
    assert binding.expires_at == 1200.0


def test_contact_expires_parameter_wins_over_expires_header() -> None:
    """The Contact's expires parameter overrides the Expires header (RFC 3261 §10.2.1, first rule)."""
    server = make_server()
    final = registered(server, expires=600, contact_params=";expires=120")
    assert [c.params["expires"] for c in final.contact] == ["120"]


def test_expires_zero_removes_the_binding() -> None:
    """Expires: 0 on a contact removes that binding only (§10.2.2)."""
    server = make_server()
    registered(server, expires=600)
    registered(server, ALICE_PHONE2, expires=600, call_id="phone2@192.0.2.11", branch="z9hG4bKp2")
    final = registered(server, expires=0, now=10.0, cseq=3, branch="z9hG4bKu")
    assert [str(c.uri) for c in final.contact] == ["sip:alice@192.0.2.11:5064"]


def test_wildcard_with_expires_zero_removes_every_binding() -> None:
    """``Contact: *`` with ``Expires: 0`` unregisters every contact (§10.2.2)."""
    server = make_server()
    registered(server, expires=600)
    registered(server, ALICE_PHONE2, expires=600, call_id="phone2@192.0.2.11", branch="z9hG4bKp2")
    final = registered(server, contact="*", expires=0, cseq=3, branch="z9hG4bKw")
    assert final.status == 200
    assert final.contact == []
    assert server.bindings("sip:alice@example.com", 0.0) == []


def test_wildcard_without_expires_zero_is_a_bad_request() -> None:
    """``Contact: *`` needs ``Expires: 0`` (§10.3 step 6)."""
    server = make_server()
    final = registered(server, contact="*", expires=600)
    assert final.status == 400


def test_too_brief_interval_gets_423_with_min_expires() -> None:
    """An expiry below the minimum is refused with 423 and Min-Expires (§10.3 step 7)."""
    server = make_server()
    final = registered(server, expires=30)
    assert final.status == 423
    assert final.headers.get("Min-Expires") == "60"
    assert server.bindings("sip:alice@example.com", 0.0) == []


def test_long_interval_is_shortened() -> None:
    """The registrar may grant less than asked (§10.3 step 7): max_expires caps it."""
    server = make_server()
    final = registered(server, expires=100000)
    assert [c.params["expires"] for c in final.contact] == ["7200"]


def test_out_of_order_register_fails() -> None:
    """A lower CSeq in the same Call-ID than the binding's is refused (§10.3 step 7)."""
    server = make_server()
    registered(server, expires=600, cseq=10)
    final = registered(server, expires=600, cseq=2, branch="z9hG4bKold")
    assert final.status == 500


def test_bindings_expire_through_the_timer() -> None:
    """get_timer names the expiry; handle_timer removes the binding and reports it."""
    server = make_server()
    registered(server, expires=600)
    events(server)
    assert server.get_timer() == 32.0  # the cached answers go first (Timer J)
    server.handle_timer(32.0)
    assert server.get_timer() == 600.0
    server.handle_timer(599.9)
    assert server.bindings("sip:alice@example.com", 599.9)
    server.handle_timer(600.0)
    (expired,) = events(server)
    assert isinstance(expired, BindingExpired)
    assert expired.binding.aor == "sip:alice@example.com"
    assert server.get_timer() is None


def test_retransmitted_register_gets_the_same_answer() -> None:
    """A duplicate of a REGISTER gets the very same 401 (no second nonce)."""
    server = make_server()
    data = register().to_bytes()
    server.receive(data, ALICE, 0.0)
    server.receive(data, ALICE, 0.5)
    first, second = server.outbox()
    assert first == second


def test_require_on_register_gets_420() -> None:
    """No extension is supported: Require gets 420 with Unsupported (§8.2.2.3)."""
    server = make_server()
    response, _ = only(exchange(server, register(extra=[("Require", "gruu")])))
    assert isinstance(response, Response) and response.status == 420
    assert response.headers.get("Unsupported") == "gruu"


def test_options_to_the_server_gets_200() -> None:
    """OPTIONS addressed to the server itself is answered (§11.2)."""
    server = make_server()
    request = invite(method="OPTIONS")
    request.uri = f"sip:{DOMAIN}"
    response, _ = only(exchange(server, request))
    assert isinstance(response, Response) and response.status == 200
    assert "REGISTER" in (response.headers.get("Allow") or "")


# ---------------------------------------------------------------- proxy


def challenged_invite(server: ProxyRegistrar, **kw) -> tuple[Request, Response]:
    """Send alice's INVITE; return it and the 407."""
    request = invite(**kw)
    response, destination = only(exchange(server, request))
    assert isinstance(response, Response)
    assert destination == ALICE
    return request, response


def test_invite_is_challenged_with_407_in_the_same_realm() -> None:
    """An INVITE from a local user gets 407 with Proxy-Authenticate (§22.3)."""
    server = make_server()
    _, response = challenged_invite(server)
    assert response.status == 407
    (challenge,) = parse_challenges(response.headers.get("Proxy-Authenticate") or "", "Proxy-Authenticate")
    assert challenge.realm == REALM
    assert "WWW-Authenticate" not in response.headers


def test_ack_for_the_407_is_absorbed() -> None:
    """The ACK for our own 407 ends there (§17.2.1); it is not forwarded."""
    server = make_server()
    request, response = challenged_invite(server)
    ack = Request("ACK", request.uri_text, [
        ("Via", request.headers.get("Via") or ""), ("Max-Forwards", "70"),
        ("From", request.headers.get("From") or ""), ("To", response.headers.get("To") or ""),
        ("Call-ID", request.call_id), ("CSeq", f"{request.cseq.seq} ACK"),
    ])
    events(server)
    assert exchange(server, ack) == []
    (event,) = events(server)
    assert isinstance(event, Handled) and "absorbed" in event.note


def authenticated_invite(server: ProxyRegistrar, extra=None) -> tuple[Request, Request, tuple[str, int]]:
    """Bob registered; alice's INVITE is challenged and retried. Returns (sent, forwarded, destination)."""
    register_bob(server)
    request, response = challenged_invite(server, extra=extra)
    retry = authorize(request, response, "alice-auth", "alice-pw")
    forwarded, destination = only(exchange(server, retry))
    assert isinstance(forwarded, Request)
    return retry, forwarded, destination


def test_authenticated_invite_is_forwarded_to_the_binding() -> None:
    """Request-URI, Max-Forwards, Record-Route and Via as §16.6 asks."""
    server = make_server()
    retry, forwarded, destination = authenticated_invite(server)
    assert destination == BOB
    assert forwarded.method == "INVITE"
    assert forwarded.uri_text == "sip:bob@192.0.2.20:5070"
    assert forwarded.max_forwards == 69
    assert forwarded.headers.get_all("Record-Route") == ["<sip:192.0.2.1:5060;lr>"]
    top, second = forwarded.via
    assert (top.host, top.port) == PROXY
    assert top.branch and top.branch.startswith("z9hG4bK")
    assert top.branch != retry.top_via.branch
    assert second.branch == retry.top_via.branch
    assert second.received == ALICE[0] and second.rport == ALICE[1]  # §18.2.1, RFC 3581
    assert forwarded.body == retry.body
    assert forwarded.headers.get("To") == retry.headers.get("To")
    assert "Proxy-Authorization" not in forwarded.headers


def test_only_our_realms_proxy_credentials_are_removed() -> None:
    """Proxy-Authorization for another realm travels on (§22.3)."""
    server = make_server()
    other = ('Digest username="alice-far", realm="far.example.org", nonce="n", '
             'uri="sip:bob@example.com", response="00000000000000000000000000000000"')
    _, forwarded, _ = authenticated_invite(server, extra=[("Proxy-Authorization", other)])
    values = forwarded.headers.get_all("Proxy-Authorization")
    assert [parse_authorization(v).realm for v in values] == ["far.example.org"]


def test_events_name_the_presented_credentials() -> None:
    """The ladder sees which (realm, username) came on each request."""
    server = make_server()
    authenticated_invite(server)
    received = [e for e in events(server) if isinstance(e, Handled) and e.direction == "in"
                and e.summary.startswith("INVITE")]
    assert [e.credentials for e in received] == [
        (),
        (PresentedCredentials("Proxy-Authorization", REALM, "alice-auth"),),
    ]
    assert str(received[1].credentials[0]) == "Proxy-Authorization: alice-auth@voip.example.net"


def test_responses_are_routed_back_by_via() -> None:
    """A response pops our Via and goes to the received/rport of the next (§16.11, §18.2.2)."""
    server = make_server()
    retry, forwarded, _ = authenticated_invite(server)
    for status in (180, 200):
        back, destination = only(exchange(server, response_to(forwarded, status), BOB))
        assert isinstance(back, Response) and back.status == status
        assert destination == ALICE
        assert [v.branch for v in back.via] == [retry.top_via.branch]
        assert back.headers.get_all("Record-Route") == ["<sip:192.0.2.1:5060;lr>"]


def test_response_not_for_us_is_dropped() -> None:
    """A response whose top Via is someone else's is dropped and counted."""
    server = make_server()
    response = response_to(invite(), 200)
    assert exchange(server, response, BOB) == []
    assert server.dropped == 1
    assert any(isinstance(e, Dropped) for e in events(server))


def test_cancel_follows_the_invite_with_the_same_branch() -> None:
    """CANCEL is forwarded unchallenged, with the branch the INVITE left with (§16.11, §9.1)."""
    server = make_server()
    retry, forwarded, _ = authenticated_invite(server)
    cancel = Request("CANCEL", retry.uri_text, [
        ("Via", retry.headers.get("Via") or ""), ("Max-Forwards", "70"),
        ("From", retry.headers.get("From") or ""), ("To", retry.headers.get("To") or ""),
        ("Call-ID", retry.call_id), ("CSeq", f"{retry.cseq.seq} CANCEL"),
    ])
    sent, destination = only(exchange(server, cancel))
    assert isinstance(sent, Request) and sent.method == "CANCEL"
    assert destination == BOB
    assert sent.uri_text == forwarded.uri_text
    assert sent.top_via.branch == forwarded.top_via.branch
    assert "Record-Route" not in sent.headers


def test_ack_for_a_forwarded_failure_gets_the_invite_branch() -> None:
    """The ACK for bob's 486 (same branch as the INVITE) leaves with the forwarded INVITE's branch."""
    server = make_server()
    retry, forwarded, _ = authenticated_invite(server)
    busy = response_to(forwarded, 486)
    back, _ = only(exchange(server, busy, BOB))
    ack = Request("ACK", retry.uri_text, [
        ("Via", retry.headers.get("Via") or ""), ("Max-Forwards", "70"),
        ("From", retry.headers.get("From") or ""), ("To", back.headers.get("To") or ""),
        ("Call-ID", retry.call_id), ("CSeq", f"{retry.cseq.seq} ACK"),
    ])
    sent, destination = only(exchange(server, ack))
    assert isinstance(sent, Request) and sent.method == "ACK"
    assert destination == BOB
    assert sent.top_via.branch == forwarded.top_via.branch


def in_dialog(method: str, source, target_uri: str, from_: str, to: str, branch: str) -> Request:
    """A request inside the call, routed through the proxy's Record-Route."""
    return Request(method, target_uri, [
        ("Via", f"SIP/2.0/UDP {source[0]}:{source[1]};branch={branch}"),
        ("Max-Forwards", "70"), ("Route", "<sip:192.0.2.1:5060;lr>"),
        ("From", from_), ("To", to), ("Call-ID", "call-1@192.0.2.10"),
        ("CSeq", f"{2 if method == 'ACK' else 7} {method}"),
    ])


def test_in_dialog_requests_follow_the_record_route() -> None:
    """ACK for 2xx and BYE carry Route naming us: stripped, sent to the Request-URI (§16.4)."""
    server = make_server()
    authenticated_invite(server)
    alice = '"Alice" <sip:alice@example.com>;tag=a-tag-1'
    bob = "<sip:bob@example.com>;tag=b-tag-1"
    ack = in_dialog("ACK", ALICE, "sip:bob@192.0.2.20:5070", alice, bob, "z9hG4bKack2")
    sent, destination = only(exchange(server, ack))
    assert isinstance(sent, Request) and sent.method == "ACK"
    assert destination == BOB
    assert "Route" not in sent.headers
    assert "Record-Route" not in sent.headers
    bye = in_dialog("BYE", BOB, "sip:alice@192.0.2.10:5060", bob, alice, "z9hG4bKbye1")
    sent, destination = only(exchange(server, bye, BOB))
    assert isinstance(sent, Request) and sent.method == "BYE"
    assert destination == ALICE
    assert sent.uri_text == "sip:alice@192.0.2.10:5060"
    assert sent.max_forwards == 69
    assert (sent.top_via.host, sent.top_via.port) == PROXY


def test_next_route_is_followed() -> None:
    """With a further Route after ours, the request goes there, Request-URI unchanged (§16.6 step 6)."""
    server = make_server()
    request = in_dialog("BYE", BOB, "sip:alice@example.com", "<sip:bob@example.com>;tag=b",
                        "<sip:alice@example.com>;tag=a", "z9hG4bKnr")
    request.headers.add("Route", "<sip:198.51.100.7:5080;lr>")
    sent, destination = only(exchange(server, request, BOB))
    assert destination == ("198.51.100.7", 5080)
    assert isinstance(sent, Request) and sent.uri_text == "sip:alice@example.com"
    assert sent.headers.get_all("Route") == ["<sip:198.51.100.7:5080;lr>"]


@pytest.mark.parametrize(
    ("target", "status"),
    [("carol", 404), ("bob", 480)],
    ids=["unknown user", "user not registered"],
)
def test_unreachable_targets(target: str, status: int) -> None:
    """An unknown user gets 404; a known user without a binding gets 480 (§16.5, §21.4.18)."""
    server = make_server()
    request, response = challenged_invite(server, target=target)
    final, _ = only(exchange(server, authorize(request, response, "alice-auth", "alice-pw")))
    assert isinstance(final, Response) and final.status == status


def test_expired_binding_gets_480() -> None:
    """Once bob's binding has run out, calls to him get 480."""
    server = make_server()
    register_bob(server)
    request = invite()
    response, _ = only(exchange(server, request, now=4000.0))
    final, _ = only(exchange(server, authorize(request, response, "alice-auth", "alice-pw"), now=4000.0))
    assert isinstance(final, Response) and final.status == 480


def test_max_forwards_zero_gets_483() -> None:
    """A request that ran out of hops is refused (§16.3 step 3)."""
    server = make_server()
    response, _ = only(exchange(server, invite(max_forwards=0)))
    assert isinstance(response, Response) and response.status == 483


def test_sending_as_someone_else_gets_403() -> None:
    """bob-auth may not send an INVITE From sip:alice@example.com."""
    server = make_server()
    register_bob(server)
    request, response = challenged_invite(server)
    final, _ = only(exchange(server, authorize(request, response, "bob-auth", "bob-pw")))
    assert isinstance(final, Response) and final.status == 403


def test_foreign_caller_may_reach_a_local_user_without_auth() -> None:
    """A request from another domain to one of ours is forwarded unchallenged (inbound call)."""
    server = make_server()
    register_bob(server)
    request = invite()
    request.headers.set("From", "<sip:carol@example.org>;tag=c1")
    sent, destination = only(exchange(server, request))
    assert isinstance(sent, Request) and destination == BOB


def test_foreign_caller_may_not_relay() -> None:
    """A request from another domain to another domain is refused (no open relay)."""
    server = make_server()
    request = invite()
    request.headers.set("From", "<sip:carol@example.org>;tag=c1")
    request.uri = "sip:dave@198.51.100.9"
    response, _ = only(exchange(server, request))
    assert isinstance(response, Response) and response.status == 403


# ---------------------------------------------------------------- bad input


def test_malformed_request_gets_400() -> None:
    """A request with a bad Content-Length but usable Via, From, To, Call-ID, CSeq gets 400."""
    server = make_server()
    data = register().to_bytes().replace(b"Content-Length: 0", b"Content-Length: 99")
    server.receive(data, ALICE, 0.0)
    (out,) = server.outbox()
    response = parse(out.data)
    assert isinstance(response, Response) and response.status == 400
    assert "Content-Length" in response.reason
    assert response.to.tag
    assert out.destination == ALICE
    assert server.malformed == 1


@pytest.mark.parametrize(
    "data",
    [b"", b"\r\n\r\n", b"hello", b"SIP/2.0 200 OK\r\n\r\n", b"\xff\xfe" * 50,
     b"INVITE sip:bob@example.com SIP/2.0\r\nVia: nonsense\r\n\r\n",
     register().to_bytes().replace(b"CSeq: 1 REGISTER", b"CSeq: one REGISTER")],
)
def test_garbage_is_dropped_and_counted(data: bytes) -> None:
    """What cannot be answered is dropped, counted and reported; nothing raises."""
    server = make_server()
    server.receive(data, ALICE, 0.0)
    assert server.outbox() == []
    assert server.dropped == 1
    assert server.internal_errors == 0
    assert isinstance(server.next_event(), Dropped)


def test_bad_header_inside_a_parsed_request_gets_400() -> None:
    """A non-numeric Expires is a 400 for that REGISTER, not a crash."""
    server = make_server()
    final = registered(server, expires=None, extra=[("Expires", "soon")])
    assert final.status == 400
    assert server.internal_errors == 0


def test_retransmitted_authenticated_invite_is_forwarded_again() -> None:
    """The same INVITE again (same branch, same credentials) is no nonce-count replay."""
    server = make_server()
    register_bob(server)
    request, response = challenged_invite(server)
    retry = authorize(request, response, "alice-auth", "alice-pw")
    first, _ = only(exchange(server, retry, now=0.0))
    again, destination = only(exchange(server, retry, now=0.5))
    assert isinstance(again, Request) and destination == BOB
    assert again.to_bytes() == first.to_bytes()


def test_replayed_credentials_on_a_new_request_are_challenged() -> None:
    """The same nonce count on a different transaction is a replay (RFC 7616 §5.9): 407 again."""
    server = make_server()
    register_bob(server)
    request, response = challenged_invite(server)
    only(exchange(server, authorize(request, response, "alice-auth", "alice-pw")))
    replay = authorize(request, response, "alice-auth", "alice-pw", branch="z9hG4bKother")
    final, _ = only(exchange(server, replay))
    assert isinstance(final, Response) and final.status == 407
