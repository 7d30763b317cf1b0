"""A call bot in twenty lines: register, call, say something, hang up, unregister."""

import sys

from twisted.internet import defer, task

import txsipua


async def main(reactor, account_file, target):
    account = txsipua.Account.from_toml(account_file)
    config = txsipua.Configuration(media=False)  # no RTP: signalling only
    ua = txsipua.UserAgent(reactor, config, account, txsipua.UDPTransport(reactor, "127.0.0.1", 0))
    await ua.start()
    registration = ua.registration(600)
    await registration.start()            # 401 answered with alice-auth's credentials
    call = await ua.call(target)          # INVITE ... 200 OK, ACK
    print(f"answered: {call.call_id}")
    await task.deferLater(reactor, 1.0)   # stay up one second
    print(f"ended: {await call.hangup()}")  # BYE
    await registration.stop()             # REGISTER with Expires: 0
    await ua.stop()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:3])))
