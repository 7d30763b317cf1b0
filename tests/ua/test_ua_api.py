"""The embedder API: interfaces checked with verifyObject, Configuration, transport factories,
the event dispatch table, CallMedia's offer/answer, and the package's lazy re-exports."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
from uafakes import UDPClock, sent
from zope.interface.verify import verifyObject

import txsipua
from txsipua.core import events as ev
from txsipua.core.transaction import Timers
from txsipua.errors import LocalProtocolError, ReinviteFailed, SIPError
from txsipua.media.offer_answer import PCMA, PCMU, make_offer
from txsipua.media.sdp import SessionDescription
from txsipua.sip.message import Request, Response
from txsipua.ua.call import Call, IncomingCall
from txsipua.ua.config import Configuration
from txsipua.ua.interfaces import (
    IAudioSink,
    IAudioSource,
    ICall,
    IRegistration,
    ISIPTransportFactory,
    IUserAgent,
)
from txsipua.ua.media import CallMedia, PCMSource, WavSink, WavSource
from txsipua.ua.transports import TCPTransport, TLSTransport, UDPTransport, transport_for
from txsipua.ua.useragent import UserAgent

ROOT = Path(__file__).resolve().parents[2]


def incoming_invite(ua: UserAgent) -> IncomingCall:
    """Feed an INVITE into ``ua`` and return the IncomingCall its application saw."""
    seen: list[IncomingCall] = []
    ua.on_incoming_call = seen.append
    invite = Request("INVITE", "sip:alice@192.0.2.10", [
        ("Via", "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bKapi1"),
        ("Max-Forwards", "70"), ("From", "<sip:bob@example.com>;tag=b1"), ("To", "<sip:alice@example.com>"),
        ("Call-ID", "api1@203.0.113.7"), ("CSeq", "1 INVITE"), ("Contact", "<sip:bob@203.0.113.7>"),
    ])
    ua.protocol.datagramReceived(invite.to_bytes(), ("203.0.113.7", 5060))
    assert len(seen) == 1
    return seen[0]


# ------------------------------------------------------------- interfaces


def test_user_agent_registration_and_call_provide_their_interfaces(clock: UDPClock, ua: UserAgent) -> None:
    """verifyObject: UserAgent is an IUserAgent, Registration an IRegistration, Call an ICall."""
    assert verifyObject(IUserAgent, ua)
    assert verifyObject(IRegistration, ua.registration(60))
    incoming = incoming_invite(ua)
    assert verifyObject(ICall, incoming.call)
    incoming.reject()


def test_transports_and_audio_provide_their_interfaces(clock: UDPClock, tmp_path: Path) -> None:
    """verifyObject: each transport factory, the WAV/PCM sources and the WAV sink."""
    for factory in (UDPTransport(clock), TCPTransport(clock), TLSTransport(clock)):
        assert verifyObject(ISIPTransportFactory, factory)
    assert verifyObject(IAudioSource, PCMSource(b"\0\0"))
    assert verifyObject(IAudioSource, WavSource(tmp_path / "in.wav"))
    assert verifyObject(IAudioSink, WavSink(tmp_path / "out.wav"))


def test_wav_sink_and_source_round_trip(tmp_path: Path) -> None:
    """What a WavSink writes, a WavSource reads back unchanged (8000 Hz mono 16-bit)."""
    pcm = bytes(range(256)) * 4
    WavSink(tmp_path / "a.wav").write(pcm)
    assert WavSource(tmp_path / "a.wav").pcm() == pcm


# ---------------------------------------------------------- configuration


def test_configuration_defaults_and_validation() -> None:
    """RFC 3261 default timers, media on, PCMU then PCMA; bad values raise ValueError; evolve() changes one field."""
    config = Configuration()
    assert config.timers == Timers() and config.media and config.codecs == (PCMU, PCMA)
    assert (config.grace, config.registration_retry, config.socket_buffer) == (8.0, 30.0, None)
    for bad in ({"socket_buffer": 0}, {"grace": -1}, {"registration_retry": -0.5}, {"codecs": ()}):
        with pytest.raises(ValueError):
            Configuration(**bad)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.grace = 1.0  # type: ignore[misc]
    assert attrs.evolve(config, grace=1.0).grace == 1.0 and config.grace == 8.0


@pytest.mark.parametrize(("field", "value"), [
    ("registration_retry", 0), ("registration_retry", 0.5), ("registration_retry", float("nan")),
    ("grace", float("inf")), ("grace", "8"), ("timers", 0.5), ("timers", None),
    ("user_agent", "bot/1.0\r\nX-Injected: 1"), ("user_agent", "bot\x00"), ("user_agent", 7),
    ("rtp_host", "example.com"), ("rtp_host", "192.0.2.300"), ("rtp_host", "127.0.0.1:4000"),
    ("codecs", ("G729",)), ("codecs", (PCMU, PCMU)), ("codecs", (object(),)), ("codecs", "iLBC"),
    ("media", "yes"), ("dtmf", 1), ("socket_buffer", 1.5),
])
def test_configuration_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    """Every unusable value raises ValueError whose message names the field (review M6)."""
    with pytest.raises(ValueError, match=field):
        Configuration(**{field: value})  # type: ignore[arg-type]


def test_configuration_accepts_good_values_and_codec_names() -> None:
    """IP rtp_host (v4, v6), a retry of 1 s, grace 0 and codec names converted to Codec values."""
    config = Configuration(rtp_host="2001:db8::5", registration_retry=1, grace=0, codecs=("pcma", PCMU))
    assert config.codecs == (PCMA, PCMU) and config.rtp_host == "2001:db8::5"
    assert Configuration(codecs="PCMA").codecs == (PCMA,)
    assert Configuration(rtp_host="").media_host("192.0.2.10") == "192.0.2.10"


def test_media_host_follows_the_bind_host_unless_set() -> None:
    """The RTP host is the SIP bind host, 127.0.0.1 for a wildcard, or rtp_host when given."""
    assert Configuration().media_host("192.0.2.10") == "192.0.2.10"
    assert Configuration().media_host("0.0.0.0") == "127.0.0.1"
    assert Configuration().media_host("::") == "127.0.0.1"
    assert Configuration(rtp_host="198.51.100.9").media_host("0.0.0.0") == "198.51.100.9"


def test_configuration_reaches_the_core(clock: UDPClock) -> None:
    """user_agent and timers of the Configuration are what the core uses."""
    config = Configuration(timers=Timers(t1=0.25, t2=2.0), user_agent="probe/9", media=False)
    agent = UserAgent(clock, config, None, UDPTransport(clock, "192.0.2.20", 0))
    agent.start()
    incoming = incoming_invite(agent)
    incoming.reject(486)
    final = [m for m in sent(agent) if isinstance(m, Response) and m.status == 486][0]
    assert final.headers.get("Server") == "probe/9"
    assert agent.core.layer.timers.t1 == 0.25


# ------------------------------------------------------------- transports


def test_transport_for_maps_the_command_line_words() -> None:
    """udp/tcp/tls in any case name one factory each; anything else is a ValueError."""
    clock = UDPClock()
    assert isinstance(transport_for("udp", clock), UDPTransport)
    assert isinstance(transport_for("TCP", clock), TCPTransport)
    tls = transport_for("Tls", clock, "127.0.0.1", 5061, cert="C", ca="A")
    assert isinstance(tls, TLSTransport) and (tls.cert, tls.ca, tls.port) == ("C", "A", 5061)
    assert [f.name for f in (UDPTransport(clock), TCPTransport(clock), tls)] == ["UDP", "TCP", "TLS"]
    assert [f.reliable for f in (UDPTransport(clock), TCPTransport(clock), tls)] == [False, True, True]
    with pytest.raises(ValueError):
        transport_for("sctp", clock)


def test_udp_transport_listens_and_the_core_learns_the_port(clock: UDPClock) -> None:
    """start() fires with the bound (host, port) and Via/Contact use it."""
    agent = UserAgent(clock, Configuration(media=False), None, UDPTransport(clock, "192.0.2.30", 0))
    bound: list[Any] = []
    agent.start().addCallback(bound.append)
    assert bound == [("192.0.2.30", 40000)] and agent.local_address == ("192.0.2.30", 40000)
    assert clock.ports[0].protocol is agent.protocol


def test_a_second_start_is_a_typed_error_and_keeps_the_listener(clock: UDPClock) -> None:
    """start() twice: LocalProtocolError through the Deferred (not Twisted's bare AssertionError);
    the first listener stays in use.  After stop() the user agent starts again."""
    agent = UserAgent(clock, Configuration(media=False), None, UDPTransport(clock, "192.0.2.30", 0))
    agent.start()
    failed: list[Any] = []
    agent.start().addErrback(failed.append)
    assert len(failed) == 1 and failed[0].check(LocalProtocolError), failed
    assert "already started" in str(failed[0].value) and "192.0.2.30:40000" in str(failed[0].value)
    assert len(clock.ports) == 1 and clock.ports[0].protocol is agent.protocol
    assert agent.local_address == ("192.0.2.30", 40000)
    agent.stop()
    clock.advance(0)
    again: list[Any] = []
    agent.start().addBoth(again.append)
    assert again == [("192.0.2.30", 40001)]


def test_tls_without_certificate_names_5061_and_verifies_with_system_roots(clock: UDPClock) -> None:
    """A TLS client without cert does not listen (Via names port 5061); without ca, hosts are verified."""
    tls = TLSTransport(clock, "127.0.0.1", 0)
    agent = UserAgent(clock, Configuration(media=False), None, tls)
    bound: list[Any] = []
    agent.start().addCallback(bound.append)
    assert bound == [("127.0.0.1", 5061)]
    assert callable(tls.client_creator())
    creator = object()
    assert TLSTransport(clock, ca=creator).client_creator() is creator


def test_tls_ca_certificate_becomes_the_trust_root() -> None:
    """ca given as a Certificate: connections verify the host against that root."""
    pytest.importorskip("OpenSSL")
    from twisted.internet import ssl

    from txsipua.testing.tls import self_signed_pem

    pem, _key = self_signed_pem("127.0.0.1")
    creator = TLSTransport(UDPClock(), ca=ssl.Certificate.loadPEM(pem)).client_creator()
    assert callable(creator) and creator("127.0.0.1") is not None


def test_a_user_agent_refuses_a_non_transport(clock: UDPClock) -> None:
    """The transport must provide ISIPTransportFactory (no strings any more)."""
    with pytest.raises(TypeError):
        UserAgent(clock, None, None, "UDP")


# --------------------------------------------------------------- dispatch


def test_every_core_event_has_one_handler() -> None:
    """The dispatch table is keyed by every event class the core emits, and by nothing else."""
    assert set(UserAgent.EVENT_HANDLERS) == set(typing.get_args(ev.Event))


# ------------------------------------------------------------- CallMedia


class FakeStream:
    """Stands in for net.rtp.MediaStream: records what CallMedia asks of it."""

    def __init__(self, reactor: Any, host: str) -> None:
        self.host = host
        self.port = 49170
        self.params: Any = None
        self.stopped = 0
        self.played: list[Any] = []
        self.recording = False
        self.sinks: list[Any] = []

    def start_recording(self) -> None:
        self.recording = True

    def add_sink(self, sink: Any, any_rate: bool = False) -> Any:
        self.sinks.append(sink)
        return sink

    def add_digit_sink(self, sink: Any) -> None:
        pass

    def deliver_audio(self, pcm: bytes) -> None:
        for sink in self.sinks:
            sink.write(pcm)

    def configure(self, params: Any) -> None:
        self.params = params

    def stop(self) -> None:
        self.stopped += 1
        for sink in self.sinks:
            sink.close()

    def play(self, pcm: bytes) -> str:
        self.played.append(pcm)
        return "queued"

    def send_dtmf(self, digits: str) -> str:
        return digits

    def recorded(self) -> bytes:
        return b"\1\0\2\0" if self.recording else b""


def media(config: Configuration | None = None) -> CallMedia:
    return CallMedia(None, config or Configuration(), "192.0.2.10", session_id=7, stream_factory=FakeStream)


def test_offer_then_answer_configures_the_stream() -> None:
    """Our offer lists the configured codecs; the peer's answer sets the negotiated params on the stream."""
    ours = media(Configuration(codecs=(PCMA,), dtmf=False))
    offer = SessionDescription.parse(ours.offer())
    assert list(offer.media[0].formats) == [8]  # PCMA only, no telephone-event
    assert offer.media[0].port == 49170 and offer.session_id == 7
    theirs = media()
    answer = theirs.answer(ours.offer())
    ours.remote(answer)
    assert ours.params is not None and ours.params.codec.name == "PCMA"
    assert ours.stream.params is ours.params and theirs.stream.params is theirs.params


def test_an_unusable_offer_raises_and_closes_the_stream() -> None:
    """An offer with no common codec raises a SIPError with status 488; the stream is closed and dropped."""
    theirs = media(Configuration(codecs=(PCMA,)))
    offer = make_offer("192.0.2.20", 4000, codecs=(PCMU,), dtmf=False, session_id=1).to_bytes()
    with pytest.raises(SIPError) as info:
        theirs.answer(offer)
    assert getattr(info.value, "status", None) == 488 and theirs.stream is None


def test_hold_reoffer_and_reanswer_bump_the_version() -> None:
    """reoffer("sendonly") holds with version + 1; answering a re-offer bumps our version too."""
    ours, theirs = media(), media()
    ours.remote(theirs.answer(ours.offer()))
    held = SessionDescription.parse(ours.reoffer("sendonly"))
    assert held.media[0].direction == "sendonly" and held.session_version == 2
    reanswer = SessionDescription.parse(theirs.answer_reoffer(held.to_bytes()))
    assert reanswer.media[0].direction == "recvonly" and reanswer.session_version == 2
    with pytest.raises(LocalProtocolError):
        media().reoffer("sendonly")


def test_audio_goes_through_sources_and_sinks(tmp_path: Path) -> None:
    """play() takes an IAudioSource or PCM; record() hands the received audio to the sink, closed when media stops."""
    m = media()
    with pytest.raises(LocalProtocolError):
        m.play(b"\0\0")
    m.offer()
    m.play(PCMSource(b"\5\0"))
    m.play(b"\6\0")
    assert m.stream.played[0].read() == b"\5\0" + bytes(318)  # pulled a 20 ms frame at a time
    assert m.stream.played[1:] == [b"\6\0"]
    assert m.stream.sinks == [m.audio]  # the call's audio hub, which keeps nothing: recording is opt-in
    assert not m.audio.playing and len(m.audio.frames()) == 0
    m.record(WavSink(tmp_path / "rec.wav"))
    m.stream.deliver_audio(b"\1\0\2\0")  # the frames received go to the sink as they come
    m.stop()
    m.stop()
    assert WavSource(tmp_path / "rec.wav").pcm() == b"\1\0\2\0" and m.stream.stopped == 2


def test_a_call_without_media_has_none(clock: UDPClock, ua: UserAgent) -> None:
    """With Configuration(media=False) a Call has no CallMedia; hold() and send_dtmf() fail as Deferreds."""
    incoming = incoming_invite(ua)
    call: Call = incoming.call
    assert call.call_media is None and call.media is None and call.media_params is None
    failures: list[Any] = []
    call.hold().addErrback(failures.append)
    call.send_dtmf("1").addErrback(failures.append)
    assert [f.check(LocalProtocolError) for f in failures] == [LocalProtocolError, LocalProtocolError]
    incoming.reject()


# ---------------------------------------------------------------- package


def test_the_package_reexports_the_user_api() -> None:
    """txsipua.UserAgent & co. are the ua classes; dir() lists them; unknown names raise AttributeError."""
    assert txsipua.UserAgent is UserAgent and txsipua.Call is Call and txsipua.Configuration is Configuration
    assert set(txsipua.__all__) <= set(dir(txsipua))
    # nothing but the public names and dunders (not Any, TYPE_CHECKING, importlib, annotations)
    assert {n for n in dir(txsipua) if not n.startswith("__")} == set(txsipua.__all__) - {"__version__"}
    from txsipua.errors import DigestAuthenticationError
    assert txsipua.DigestAuthenticationError is DigestAuthenticationError
    assert issubclass(txsipua.DigestAuthenticationError, txsipua.AuthenticationError)
    for name in txsipua.__all__:
        assert getattr(txsipua, name) is not None
    with pytest.raises(AttributeError):
        txsipua.NoSuchThing  # noqa: B018


def test_importing_the_package_and_pure_layers_does_not_import_twisted() -> None:
    """With Twisted blocked, txsipua, txsipua.sip and txsipua.core import; only the user API needs Twisted."""
    code = (
        "import sys\n"
        "sys.modules['twisted'] = None\n"
        "import txsipua, txsipua.sip.message, txsipua.core.useragent, txsipua.media.sdp\n"
        "print(txsipua.__version__)\n"
        "try:\n"
        "    txsipua.UserAgent\n"
        "except ImportError:\n"
        "    print('lazy')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [txsipua.__version__, "lazy"]


def test_the_package_is_typed() -> None:
    """py.typed ships with the package (PEP 561)."""
    assert (ROOT / "txsipua" / "py.typed").is_file()
    assert "py.typed" in (ROOT / "setup.cfg").read_text()


def test_the_readme_embedding_example_passes_mypy_strict(tmp_path: Path) -> None:
    """The README "Embedding" example, as a user script, type-checks with mypy --strict against the package."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Embedding"):]
    code = section[section.index("```python\n") + len("```python\n"):]
    code = code[:code.index("```")]
    script = tmp_path / "embedding.py"
    script.write_text(code)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MYPYPATH": str(ROOT), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "c"),
                           str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------- re-INVITEs (review M3)


def _connected_call_with_media(clock: UDPClock) -> tuple[UserAgent, Call]:
    """A UA with media answering bob's INVITE (SDP offer) and getting the ACK: a confirmed call."""
    from uafakes import alice

    agent = UserAgent(clock, Configuration(), alice(), UDPTransport(clock, "192.0.2.10", 0))
    agent.start()
    seen: list[IncomingCall] = []
    agent.on_incoming_call = seen.append
    offer = make_offer("203.0.113.7", 4000, codecs=(PCMU,), dtmf=False, session_id=1).to_bytes()
    common = [("From", "<sip:bob@example.com>;tag=b1"), ("Call-ID", "hold1@203.0.113.7"),
              ("Max-Forwards", "70")]
    invite = Request("INVITE", "sip:alice@192.0.2.10", [
        ("Via", "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bKhold1"), *common, ("To", "<sip:alice@example.com>"),
        ("CSeq", "1 INVITE"), ("Contact", "<sip:bob@203.0.113.7>"), ("Content-Type", "application/sdp"),
    ], body=offer)
    agent.protocol.datagramReceived(invite.to_bytes(), ("203.0.113.7", 5060))
    call = seen[0].answer()
    ok = [m for m in sent(agent) if isinstance(m, Response) and m.status == 200][-1]
    ack = Request("ACK", "sip:alice@192.0.2.10", [
        ("Via", "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bKhold1ack"), *common,
        ("To", ok.headers.get("To") or ""), ("CSeq", "1 ACK"),
    ])
    agent.protocol.datagramReceived(ack.to_bytes(), ("203.0.113.7", 5060))
    assert call.confirmed.called
    return agent, call


def _answer_reinvite(agent: UserAgent, status: int) -> None:
    reinvite = [m for m in sent(agent) if isinstance(m, Request) and m.method == "INVITE"][-1]
    headers = [("Via", v) for v in reinvite.headers.get_all("Via")]
    headers += [(name, reinvite.headers.get(name) or "") for name in ("From", "To", "Call-ID", "CSeq")]
    body = b""
    if status == 200:
        offer = SessionDescription.parse(reinvite.body)
        answer = make_offer("203.0.113.7", 4000, codecs=(PCMU,), dtmf=False, session_id=1, session_version=2,
                            direction="recvonly" if offer.media[0].direction == "sendonly" else "sendrecv")
        body = answer.to_bytes()
        headers += [("Contact", "<sip:bob@203.0.113.7>"), ("Content-Type", "application/sdp")]
    agent.protocol.datagramReceived(Response(status, None, headers, body=body).to_bytes(), ("203.0.113.7", 5060))


def _offered_versions(agent: UserAgent) -> list[int]:
    return [SessionDescription.parse(m.body).session_version for m in sent(agent)
            if isinstance(m, Request) and m.method == "INVITE"]


def test_a_second_reoffer_while_one_is_pending_fails_at_once_and_changes_nothing(clock: UDPClock) -> None:
    """hold(); hold(): the second errs at once, the first still fires, the o= version goes up by one (RFC 3264 §8)."""
    agent, call = _connected_call_with_media(clock)
    assert call.call_media is not None and call.call_media.local is not None
    version = call.call_media.local.session_version
    first: list[Any] = []
    second: list[Any] = []
    call.hold().addBoth(first.append)
    call.hold().addBoth(second.append)
    call.resume().addBoth(second.append)
    assert first == [] and [f.check(LocalProtocolError) for f in second] == [LocalProtocolError] * 2
    assert _offered_versions(agent) == [version + 1]
    assert call.call_media.local.session_version == version  # not in force until answered
    _answer_reinvite(agent, 200)
    assert len(first) == 1 and first[0].status == 200
    assert call.call_media.local.session_version == version + 1
    assert call.call_media.local.media[0].direction == "sendonly"
    done: list[Any] = []
    call.resume().addBoth(done.append)
    assert _offered_versions(agent) == [version + 1, version + 2]
    _answer_reinvite(agent, 200)
    assert done[0].status == 200 and call.call_media.local.media[0].direction == "sendrecv"


def test_a_refused_reinvite_leaves_the_session_description_as_it_was(clock: UDPClock) -> None:
    """A 488 to our hold: hold() errs (ReinviteFailed 488, issue 9), local SDP unchanged, not held;
    the next re-offer is the old version + 1, not + 2."""
    agent, call = _connected_call_with_media(clock)
    assert call.call_media is not None and call.call_media.local is not None
    before = call.call_media.local
    done: list[Any] = []
    call.hold().addBoth(done.append)
    _answer_reinvite(agent, 488)
    assert done[0].check(ReinviteFailed) and done[0].value.status == 488
    assert call.call_media.local is before and call.call_media.pending is None and not call.held_locally
    call.hold().addBoth(done.append)
    assert _offered_versions(agent) == [before.session_version + 1, before.session_version + 1]
