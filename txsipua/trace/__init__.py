"""Traces people open: pcap files (Wireshark, sngrep, tshark) and HEP v3 (Homer), pure.

:mod:`txsipua.trace.pcap` frames SIP and RTP payloads as IPv4/IPv6 + UDP/TCP
packets in a pcap file; :mod:`txsipua.trace.hep` encodes (and decodes) HEP v3
packets.  Neither reads the clock nor opens a socket: the time of each packet
is an argument, the bytes go to a file-like object or are returned.  The
``--pcap``/``--hep`` options of the ``txsipua`` command
(:mod:`txsipua.cli.trace`) feed them from the transports' trace callbacks.
"""
