#!/bin/sh
# From zero to a call on one machine: a registrar and answering bot, a check of the account, a call.
set -e
PORT="${PORT:-5080}"   # another port: put it in alice.toml's registrar too (the tests pick a free one)
# no --count: it stays up for the call bot of step 4 (stop it afterwards: kill PID)
txsipua answer --bind "127.0.0.1:$PORT" --realm voip.example.net --users users.htdigest &
ANSWER=$!
sleep 1
txsipua auth-check --account alice.toml                      # one REGISTER, explained
txsipua register --account alice.toml --expires 600          # alice's AOR is now bound here
txsipua call "sip:bob@127.0.0.1:$PORT" --account alice.toml --duration 1 -v   # the ladder
echo "txsipua answer (pid $ANSWER) stays up on 127.0.0.1:$PORT for step 4; then: kill $ANSWER"
