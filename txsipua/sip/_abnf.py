"""The pieces of the RFC 3261 §25.1 grammar the parser uses, as regular expressions.

Each pattern is a ``str`` with the ABNF it stands for quoted above it, so the
parser's rules can be read against the RFC; the modules that parse
(:mod:`txsipua.sip.parse`, :mod:`txsipua.sip.values`, :mod:`txsipua.sip.uri`)
compile what they use.  Where the parser is more lenient than the grammar
(RFC 3261 §7.5, RFC 4475 §3.1.1), the difference is stated beside the pattern.

Core rules (RFC 3261 §25.1, RFC 2234)::

    alphanum  =  ALPHA / DIGIT
    LWS  =  [*WSP CRLF] 1*WSP    ; linear whitespace (a folded line is joined to one SP first)
    SWS  =  [LWS]                ; sep whitespace
    HCOLON  =  *( SP / HTAB ) ":" SWS
    SLASH   =  SWS "/" SWS
    SEMI    =  SWS ";" SWS
"""

from __future__ import annotations

# token  =  1*(alphanum / "-" / "." / "!" / "%" / "*"
#              / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"

# Method  =  INVITEm / ACKm / OPTIONSm / BYEm / CANCELm / REGISTERm / extension-method
# extension-method  =  token
METHOD = TOKEN

# SIP-Version  =  "SIP" "/" 1*DIGIT "." 1*DIGIT
# (only SIP/2.0 is served; any other version is a 505, RFC 3261 §8.2.2.1 / §21.5.6)
SIP_VERSION = r"SIP/2\.0"

# Request-Line  =  Method SP Request-URI SP SIP-Version CRLF
# Request-URI   =  SIP-URI / SIPS-URI / absoluteURI
# Exactly one SP between the elements (RFC 4475 §3.1.2.9); the URI is checked when
# it is used (416 for a scheme we do not serve): here it is any text holding a colon
# and no SP or HTAB.
REQUEST_LINE = rf"({METHOD}) ([^ \t]*:[^ \t]*) ({SIP_VERSION})"

# Status-Line     =  SIP-Version SP Status-Code SP Reason-Phrase CRLF
# Status-Code     =  3DIGIT            ; extension-code: 100-699 (RFC 3261 §7.2, §21)
# Reason-Phrase   =  *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
# A missing ``SP Reason-Phrase`` is tolerated (RFC 4475 §3.1.1.12 empty reason).
STATUS_LINE = rf"{SIP_VERSION} ([1-6][0-9][0-9])(?: (.*))?"

# CSeq  =  "CSeq" HCOLON 1*DIGIT LWS Method
# The number is a 32-bit unsigned integer (RFC 3261 §8.1.1.5): at most ten
# significant digits here, the range is checked on the value.
CSEQ = rf"[ \t]*0*([0-9]{{1,10}})[ \t]+({METHOD})[ \t]*"

# Content-Length  =  ( "Content-Length" / "l" ) HCOLON 1*DIGIT
CONTENT_LENGTH = r"[ \t]*0*([0-9]{1,10})[ \t]*"

# scheme  =  ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"

# host          =  hostname / IPv4address / IPv6reference
# hostname      =  *( domainlabel "." ) toplabel [ "." ]
# domainlabel   =  alphanum / alphanum *( alphanum / "-" ) alphanum
# toplabel      =  ALPHA / ALPHA *( alphanum / "-" ) alphanum
# IPv4address   =  1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
# IPv6reference =  "[" IPv6address "]"
# Lenient: labels are not split (a hostname and an IPv4 address are one run of
# alphanumerics, "-" and "." starting with an alphanumeric and not ending with "-");
# an IPv6 reference is hex digits, ":" and "." in brackets.
HOST = r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?"

# port  =  1*DIGIT          (at most 65535, checked on the value)
PORT = r"[0-9]{1,5}"

# Via               =  ( "Via" / "v" ) HCOLON via-parm *(COMMA via-parm)
# via-parm          =  sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol     =  protocol-name SLASH protocol-version SLASH transport
# protocol-name     =  "SIP" / token
# protocol-version  =  token
# transport         =  "UDP" / "TCP" / "TLS" / "SCTP" / other-transport   ; other: token
# sent-by           =  host [ COLON port ]
# via-params        =  via-ttl / via-maddr / via-received / via-branch / via-extension
# Groups: protocol-name, protocol-version, transport, host, port (None, or "" for a
# colon without digits, which is tolerated), and the text after the first SEMI (the
# parameters, read by values.parse_header_params).
VIA_PARM = (
    rf"[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+"
    rf"({HOST})(?:[ \t]*:[ \t]*({PORT})?)?[ \t]*(?:;([\s\S]*))?"
)

# quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext         =  LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair    =  "\" (%x00-09 / %x0B-0C / %x0E-7F)
# Lenient: any character but DQUOTE and backslash is qdtext, and a backslash
# escapes any character.  Group: the text between the quotes, still escaped.
QUOTED_STRING = r'"((?:[^"\\]|\\[\s\S])*)"'

# name-addr     =  [ display-name ] LAQUOT addr-spec RAQUOT
# display-name  =  *(token LWS)/ quoted-string
# addr-spec     =  SIP-URI / SIPS-URI / absoluteURI
# LAQUOT = SWS "<"   RAQUOT = ">" SWS
# Groups: the quoted display name (escaped), or the unquoted one (any text up to the
# "<" but a DQUOTE, checked for token characters by the caller), then the URI text
# (up to the first ">", checked by the URI parser).
NAME_ADDR = rf'(?:{QUOTED_STRING}[ \t]*|([^<"]*?)[ \t]*)<([^>]*)>'

__all__ = [
    "CONTENT_LENGTH",
    "CSEQ",
    "HOST",
    "METHOD",
    "NAME_ADDR",
    "PORT",
    "QUOTED_STRING",
    "REQUEST_LINE",
    "SCHEME",
    "SIP_VERSION",
    "STATUS_LINE",
    "TOKEN",
    "VIA_PARM",
]
