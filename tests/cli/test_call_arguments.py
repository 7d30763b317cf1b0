"""``txsipua call``'s per-call options are checked before the INVITE; an error once up hangs up.

README.md's contract: exit 2 for usage errors, 1 when the SIP work failed.  A
``--dtmf`` that is not DTMF digits, a ``--play`` file that cannot be read as
WAV, a ``--record`` file that cannot be created or a ``--transfer-to`` that is
not a SIP URI is a usage error found before anything is sent: exit 2, one line
naming the option, no INVITE.  An error that only shows once the call is up
(here the ``--play`` file removed after the check) ends the call the SIP way,
BYE, before exit 1.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from clirun import HOST, Cli, RingingCallee, account_file

from txsipua.media.wav import write_wav
from txsipua.sip.message import Request, Response

Start = Callable[..., Cli]


def test_bad_per_call_options_are_usage_errors_before_the_invite(cli: Start, tmp_path: Path) -> None:
    """Each bad option: exit 2, one stderr line naming it, nothing on stdout, no INVITE at the callee."""
    callee = RingingCallee()
    try:
        acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:9")
        target = f"sip:bob@{HOST}:{callee.address[1]}"
        not_wav = tmp_path / "notes.txt"
        not_wav.write_text("not a WAV file\n")
        cases = {
            "--dtmf": ["--dtmf", "12x"],
            "--play": ["--play", str(tmp_path / "nonexistent.wav")],
            "--play ": ["--play", str(not_wav)],
            "--record": ["--record", str(tmp_path / "no-such-dir" / "heard.wav")],
            "--record ": ["--record", str(tmp_path)],
            "--transfer-to": ["--transfer-to", "sip:carol@ex ample.com"],
        }
        procs = {name: cli("call", target, "--account", str(acct), *extra, "--bind", f"{HOST}:0")
                 for name, extra in cases.items()}
        for name, proc in procs.items():
            assert proc.wait() == 2, proc
            assert len(proc.err) == 1 and proc.err[0].startswith(f"txsipua: {name.strip()}: "), proc
            assert proc.out == [], proc
        assert "'x'" in procs["--dtmf"].err[0]
        assert "nonexistent.wav" in procs["--play"].err[0]
        assert "notes.txt" in procs["--play "].err[0]
        callee.sock.settimeout(0.3)
        try:
            data = callee.sock.recv(65535)
        except TimeoutError:
            data = b""
        assert data == b"", data[:80]
    finally:
        callee.close()


def _answer_with_sdp(callee: RingingCallee, invite: Request, source: tuple[str, int], rtp_port: int) -> None:
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
           f"m=audio {rtp_port} RTP/AVP 0 101\r\n"
           "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n").encode()
    headers = [("Via", v) for v in invite.headers.get_all("Via")]
    headers += [("From", invite.headers.get("From") or ""),
                ("To", f"{invite.headers.get('To')};tag={callee.to_tag}"),
                ("Call-ID", invite.call_id), ("CSeq", invite.headers.get("CSeq") or ""),
                ("Contact", f"<sip:bob@{HOST}:{callee.address[1]}>"),
                ("Content-Type", "application/sdp")]
    callee.sock.sendto(Response(200, None, headers, sdp).to_bytes(), source)


def test_an_error_once_the_call_is_up_hangs_it_up(cli: Start, tmp_path: Path) -> None:
    """The --play file is removed between the check and the answer: BYE, then exit 1 naming the file."""
    callee = RingingCallee()
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where the call's RTP goes
    rtp.bind((HOST, 0))
    try:
        acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:9")
        wav = tmp_path / "prompt.wav"
        write_wav(wav, b"\x10\x00\xf0\xff" * 800)
        proc = cli("call", f"sip:bob@{HOST}:{callee.address[1]}", "--account", str(acct),
                   "--play", str(wav), "--duration", "30", "--bind", f"{HOST}:0")
        invite, source = callee.recv_request("INVITE")
        wav.unlink()  # checked before the INVITE; gone by the answer
        _answer_with_sdp(callee, invite, source, rtp.getsockname()[1])
        ack, _ = callee.recv_request("ACK")
        assert ack.cseq.seq == invite.cseq.seq
        bye, bsource = callee.recv_request("BYE", timeout=10.0)
        assert bye.call_id == invite.call_id
        callee.respond(bye, 200, bsource, tag=False)
        assert proc.wait() == 1, proc
        assert any(line.startswith("answered; Call-ID ") for line in proc.out), proc
        assert len(proc.err) == 1 and "prompt.wav" in proc.err[0], proc
        assert "Traceback" not in proc.stderr, proc
    finally:
        callee.close()
        rtp.close()
