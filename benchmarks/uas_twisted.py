#!/usr/bin/env python3
"""Minimal answering UAS on Twisted's own twisted.protocols.sip (reference peer).

    python uas_twisted.py [--host 127.0.0.1] [--port 25070]

Answers INVITE with 100, 180, 200+SDP; retransmits the 200 (500 ms doubling
to 4 s, RFC 3261 13.3.1.4) until the ACK; answers a retransmitted INVITE with
the last response; answers BYE (and anything else) with 200.  Uses the sip
module's parser (Base.datagramReceived), responseFromRequest and
deliverResponse (Via routing + toString).  Loopback only; stops on SIGTERM.

The peer row of ``callrate.py`` (a responder with no transaction layer); the
project's copy of the reference in shared/bench, unchanged in behaviour.
"""
import argparse
import itertools

from twisted.internet import reactor
from twisted.protocols import sip

SDP = ("v=0\r\no=bot 4712 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
       "m=audio 26000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class Bot(sip.Base):
    def __init__(self, host, port):
        super().__init__()
        self.contact = f"<sip:bot@{host}:{port}>"
        self.sdp = SDP.format(ip=host)
        self.calls = {}          # Call-ID -> [last response, retransmit DelayedCall|None, interval]
        self.tags = itertools.count(1)
        self.answered = self.byes = self.retrans = 0

    def _send(self, code, req, tag=None, body=""):
        r = self.responseFromRequest(code, req)
        if tag:
            r.headers["to"] = [r.headers["to"][0] + ";tag=" + tag]
            r.addHeader("contact", self.contact)
        if body:
            r.addHeader("content-type", "application/sdp")
            r.body = body
        r.addHeader("content-length", str(len(body)))
        self.deliverResponse(r)
        return r

    def handle_request(self, m, addr):
        cid = m.headers["call-id"][0]
        if m.method == "INVITE":
            c = self.calls.get(cid)
            if c is not None:                      # retransmitted INVITE
                self.deliverResponse(c[0])
                return
            tag = f"b{next(self.tags)}"
            self._send(100, m)
            self._send(180, m, tag)
            ok = self._send(200, m, tag, self.sdp)
            self.calls[cid] = [ok, reactor.callLater(0.5, self._retransmit, cid), 0.5]
            self.answered += 1
        elif m.method == "ACK":
            c = self.calls.get(cid)
            if c is not None and c[1] is not None:
                c[1].cancel()
                c[1] = None
        elif m.method == "BYE":
            c = self.calls.pop(cid, None)
            if c is not None and c[1] is not None:
                c[1].cancel()
            self._send(200, m)
            self.byes += 1
        else:
            self._send(200, m)

    def _retransmit(self, cid):
        c = self.calls.get(cid)
        if c is None:
            return
        c[2] *= 2
        if c[2] > 32:                              # 64*T1 without ACK: give up
            c[1] = None
            return
        self.retrans += 1
        self.deliverResponse(c[0])
        c[1] = reactor.callLater(min(c[2], 4.0), self._retransmit, cid)

    def handle_response(self, m, addr):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=25070)
    a = ap.parse_args()
    assert a.host.startswith("127.") or a.host == "::1", "loopback only"
    bot = Bot(a.host, a.port)
    reactor.listenUDP(a.port, bot, interface=a.host)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: print(
        f"answered={bot.answered} byes={bot.byes} retransmitted_200={bot.retrans} "
        f"open_calls={len(bot.calls)}", flush=True))
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
