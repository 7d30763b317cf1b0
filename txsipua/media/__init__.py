"""Media for call bots, pure (no Twisted, no clock, no randomness).

- :mod:`txsipua.media.sdp` - session descriptions (RFC 8866, formerly RFC 4566).
- :mod:`txsipua.media.offer_answer` - the offer/answer model (RFC 3264).
- :mod:`txsipua.media.rtp` - RTP packets (RFC 3550).
- :mod:`txsipua.media.g711` - G.711 mu-law and A-law codecs (ITU-T G.711, RFC 3551 §4.5.14).
- :mod:`txsipua.media.dtmf` - telephone events (RFC 4733).
- :mod:`txsipua.media.wav` - reading and writing WAV files for prompts and recordings.

The Twisted side (sockets, pacing) lives in :mod:`txsipua.net.rtp`.
"""
