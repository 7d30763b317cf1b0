"""``--pcap``, ``--hep``, ``-v``/``-vv`` and ``--log-format json`` on the ``txsipua`` commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from clirun import HOST, USERS, Cli, account_file, htdigest

from txsipua.media.wav import write_wav
from txsipua.trace import hep


def _tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is not installed (.ci/run installs the Debian package tshark)")
        pytest.skip("tshark is not installed (Debian package tshark)")
    return path


def _tshark_fields(pcap: Path, *fields: str, display_filter: str = "") -> list[str]:
    argv = [_tshark(), "-n", "-r", str(pcap), "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    if display_filter:
        argv += ["-Y", display_filter]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_pcap_of_a_call_reads_in_tshark_with_no_malformed_packet(cli, tmp_path: Path, transport: str) -> None:
    """A call through ``answer`` written with ``--pcap``: tshark decodes every packet as SIP
    (REGISTER, INVITE, ACK, BYE and their responses), none malformed; with ``--pcap-rtp`` RTP too."""
    _tshark()
    users = htdigest(tmp_path / "users.htdigest")
    answerer = cli("answer", "--bind", f"{HOST}:0", "--realm", "voip.example.net", "--users", str(users),
                   "--owner", "alice-auth=alice", "--transport", transport)
    hostport = answerer.wait_for("ready ").split()[1]
    suffix = ";transport=tcp" if transport == "tcp" else ""
    acct = account_file(tmp_path / "alice.toml", f"sip:{hostport}{suffix}")
    pcap = tmp_path / "call.pcap"
    wav = tmp_path / "tone.wav"
    write_wav(wav, b"\x10\x00\xf0\xff" * 1600)  # 0.4 s at 8 kHz: 20 RTP packets
    reg = cli("register", "--account", str(acct), "--bind", f"{HOST}:0", "--transport", transport,
              "--pcap", str(tmp_path / "reg.pcap"))
    assert reg.wait() == 0, reg
    proc = cli("call", f"sip:bob@{hostport}{suffix}", "--account", str(acct), "--duration", "0.5",
               "--bind", f"{HOST}:0", "--transport", transport, "--pcap", str(pcap), "--pcap-rtp", "--play", str(wav))
    assert proc.wait() == 0, proc
    for path in (pcap, tmp_path / "reg.pcap"):
        assert _tshark_fields(path, "frame.number", display_filter="_ws.malformed || _ws.expert.severity >= error") == []
    methods = _tshark_fields(pcap, "sip.CSeq.method", "sip.Status-Code", display_filter="sip")
    assert any(m.startswith("INVITE\t401") for m in methods), methods
    assert any(m.startswith("INVITE\t200") for m in methods), methods
    assert "ACK" in [m.split("\t")[0] for m in methods if m.count("\t") == 0 or m.endswith("\t")], methods
    assert any(m.startswith("BYE") for m in methods), methods
    assert _tshark_fields(tmp_path / "reg.pcap", "sip.Method", display_filter="sip.Method") == ["REGISTER"] * 2
    if transport == "udp":
        rtp = _tshark_fields(pcap, "udp.srcport", display_filter="udp && !sip")
        assert len(rtp) >= 15, "no RTP written with --pcap-rtp"


def test_hep_reaches_a_collector(cli, answer, tmp_path: Path) -> None:
    """``--hep 127.0.0.1:PORT``: one HEP v3 datagram per SIP message, addresses, ports and Call-ID right."""
    _, registrar = answer
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind((HOST, 0))
    collector.settimeout(5)
    try:
        acct = account_file(tmp_path / "alice.toml", registrar)
        proc = cli("register", "--account", str(acct), "--bind", f"{HOST}:0",
                   "--hep", f"{HOST}:{collector.getsockname()[1]}", "--hep-id", "77")
        assert proc.wait() == 0, proc
        packets = [hep.decode(collector.recv(65535)) for _ in range(4)]
    finally:
        collector.close()
    starts = [p.payload.split(b"\r\n", 1)[0].decode() for p in packets]
    assert starts[0].startswith("REGISTER ") and starts[1] == "SIP/2.0 401 Unauthorized", starts
    assert starts[2].startswith("REGISTER ") and starts[3] == "SIP/2.0 200 OK", starts
    registrar_port = int(registrar.rsplit(":", 1)[1])
    assert packets[0].destination == (HOST, registrar_port) and packets[1].source == (HOST, registrar_port)
    assert packets[0].source == packets[1].destination
    call_ids = {p.get(17) for p in packets}
    assert len(call_ids) == 1 and None not in call_ids
    assert {p.integer(12) for p in packets} == {77} and {p.integer(2) for p in packets} == {17}


def test_v_prints_the_ladder_and_vv_the_messages(cli, answer, tmp_path: Path) -> None:
    """``-v``: one line per message with the challenge's realm and the credential's user, no
    message text; ``-vv``: the messages in full."""
    _, registrar = answer
    acct = account_file(tmp_path / "alice.toml", registrar)
    proc = cli("register", "--account", str(acct), "--bind", f"{HOST}:0", "-v")
    assert proc.wait() == 0, proc
    ladder = proc.stdout
    assert re.search(r"-> 127\.0\.0\.1:\d+ +REGISTER sip:", ladder), ladder
    assert re.search(r"<- 127\.0\.0\.1:\d+ +401 Unauthorized \(REGISTER\)", ladder), ladder
    assert "WWW-Authenticate: realm=voip.example.net MD5" in ladder
    assert "Authorization: realm=voip.example.net user=alice-auth MD5" in ladder
    assert "CSeq:" not in ladder and "response=" not in ladder
    proc = cli("register", "--account", str(acct), "--bind", f"{HOST}:0", "-vv")
    assert proc.wait() == 0, proc
    assert "CSeq: 2 REGISTER" in proc.stdout and ">>> sent to" in proc.stdout


def test_json_log_never_holds_the_password_or_the_digest_response(cli, answer, tmp_path: Path) -> None:
    """``--log-format json``: JSON lines with method, status, Call-ID and transaction key; the
    password and the digest response (read from a pcap of the same run) appear nowhere."""
    _tshark()
    _, registrar = answer
    acct = account_file(tmp_path / "alice.toml", registrar)
    pcap = tmp_path / "r.pcap"
    proc: Cli = cli("register", "--account", str(acct), "--bind", f"{HOST}:0", "--log-format", "json",
                    "--pcap", str(pcap))
    assert proc.wait() == 0, proc
    records = [json.loads(line) for line in proc.err if line.startswith("{")]
    sip = [r for r in records if "method" in r]
    assert [(r["direction"], r["method"], r.get("status")) for r in sip] == [
        ("send", "REGISTER", None), ("recv", "REGISTER", 401), ("send", "REGISTER", None), ("recv", "REGISTER", 200)]
    assert len({r["call_id"] for r in sip}) == 1
    assert all(re.fullmatch(r"z9hG4bK\w+/REGISTER", r["transaction"]) for r in sip)
    [authorization] = _tshark_fields(pcap, "sip.auth", display_filter="sip.Authorization")
    response = re.search(r'response="?([0-9a-f]{32})', authorization)
    assert response, authorization
    everything = proc.stdout + "\n" + proc.stderr
    assert response.group(1) not in everything
    assert USERS["alice-auth"] not in everything


def test_demo_writes_its_three_parties_to_one_pcap(cli, tmp_path: Path) -> None:
    """``demo --pcap``: each message once (as sent), 0 malformed, the whole challenged flow's methods."""
    _tshark()
    pcap = tmp_path / "demo.pcap"
    proc = cli("demo", "--hold", "0.2", "--pcap", str(pcap))
    assert proc.wait(30) == 0, proc
    bad = _tshark_fields(pcap, "frame.number", "_ws.expert.message", display_filter="_ws.malformed || _ws.expert.severity >= error")
    assert bad == [], bad
    methods = _tshark_fields(pcap, "sip.Method", display_filter="sip.Method")
    assert methods.count("REGISTER") == 4 and methods.count("INVITE") == 5, methods  # alice: 3; the proxy forwards the 2 it let through
    assert {"ACK", "BYE"} <= set(methods)


def test_answer_json_log_is_json_only(cli, tmp_path: Path) -> None:
    """``answer --log-format json``: its warnings (a 403 for an AOR the auth user does not own, with
    the fix) reach stderr as JSON lines, and nothing on stderr is anything else."""
    users = htdigest(tmp_path / "users.htdigest")
    answerer = cli("answer", "--bind", f"{HOST}:0", "--realm", "voip.example.net", "--users", str(users),
                   "--log-format", "json")
    registrar = "sip:" + answerer.wait_for("ready ").split()[1]
    acct = account_file(tmp_path / "alice.toml", registrar)
    proc = cli("register", "--account", str(acct), "--bind", f"{HOST}:0")
    assert proc.wait() == 1, proc
    answerer.signal(signal.SIGTERM)
    assert answerer.wait() == 0, answerer
    records = [json.loads(line) for line in answerer.err if line.strip()]
    warnings = [r for r in records if r["level"] == "warn" and "may not register" in r["text"]]
    assert warnings and "fifth field" in warnings[0]["text"], records
    sip = [r for r in records if r.get("method") == "REGISTER"]
    assert [r.get("status") for r in sip if r["direction"] == "send"] == [401, 403], sip


def test_json_log_turns_plain_failure_lines_into_json(cli, answer, tmp_path: Path) -> None:
    """``--log-format json``: "authentication failed: ..." and "cannot read account file ..." (a
    usage error found after parsing) reach stderr as JSON objects too; nothing else is on stderr."""
    _, registrar = answer
    acct = account_file(tmp_path / "alice.toml", registrar, password="wrong-secret")
    proc: Cli = cli("register", "--account", str(acct), "--bind", f"{HOST}:0", "--log-format", "json")
    assert proc.wait() == 1, proc
    records = [json.loads(line) for line in proc.err if line.strip()]
    assert all(isinstance(r, dict) for r in records), proc
    assert any(r["text"].startswith("authentication failed: ") for r in records), records
    assert "wrong-secret" not in proc.stderr
    missing = cli("register", "--account", str(tmp_path / "nope.toml"), "--log-format", "json")
    assert missing.wait() == 2, missing
    records = [json.loads(line) for line in missing.err if line.strip()]
    assert [r["level"] for r in records] == ["error"], records
    assert "cannot read account file" in records[0]["text"], records


def test_trace_option_errors_name_the_option(cli, tmp_path: Path) -> None:
    """``--hep HOST:99999`` is a usage error naming ``--hep``; ``--pcap-rtp`` without ``--pcap`` too."""
    acct = account_file(tmp_path / "alice.toml", f"sip:{HOST}:9")
    proc = cli("register", "--account", str(acct), "--hep", f"{HOST}:99999")
    assert proc.wait() == 2, proc
    assert "--hep" in proc.stderr and "--bind" not in proc.stderr, proc
    proc = cli("register", "--account", str(acct), "--pcap-rtp")
    assert proc.wait() == 2, proc
    assert "--pcap-rtp needs --pcap" in proc.stderr, proc


def test_demo_into_a_pipe_closed_early_exits_quietly() -> None:
    """``txsipua demo -v | head -3``: the reader goes away; the demo ends without a traceback."""
    import sys

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "txsipua.cli.main", "demo", "-v", "--hold", "0.2"],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stdout is not None
    head = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()  # what `head -3` does once it has its lines
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"demo still running after its reader left: {err}") from None
    assert head[0].startswith("proxy/registrar "), head
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
