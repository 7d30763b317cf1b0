#!/bin/sh
# From zero to a call on one machine: a registrar and answering bot, a check of the account, a call.
set -e
PORT="${PORT:-5080}"   # the tests pick a free port
txsipua answer --bind "127.0.0.1:$PORT" --realm voip.example.net --users users.htdigest --count 1 &
ANSWER=$!
sleep 1
txsipua auth-check --account alice.toml                      # one REGISTER, explained
txsipua register --account alice.toml --expires 600          # alice's AOR is now bound here
txsipua call "sip:bob@127.0.0.1:$PORT" --account alice.toml --duration 1 -v   # the ladder
wait "$ANSWER"                                                # answer exits after one call
