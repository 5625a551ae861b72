"""What frames an HTTP/1.1 message (RFC 9112 sections 2.3, 3.2, 6 and 7.1), decided in one
place for every parser of ours.

llhttp (httptools) frames the bytes; these rules refuse what it lets through and a strict
parser (h11) or another proxy in front would frame otherwise, or that RFC 9112 says a
server must refuse. A message in doubt is refused, never repaired: repairing is how a front
proxy and the gateway, or the gateway and a replica, come to disagree on where a request
ends (request smuggling).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

# A reply's framing is the server's: whatever a handler's reply says about it is not sent.
SERVER_OWNED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "date"}
)
# RFC 9110 7.6.1: the fields that describe one connection, never forwarded on another.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# RFC 9110 5.6.2: a method, a header name, a transfer coding.
TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# What would end a line early, in a value written into a head.
LINE_BREAKING = re.compile(r"[\r\n\x00]")
CHUNKED = -1  # a framing: chunked transfer coding (else a Content-Length, 0 for none)

# RFC 9110 7.2: uri-host [":" port]; uri-host an IP literal in brackets or a reg-name
# (unreserved, percent-encoded and sub-delims characters; IPv4 addresses are reg-names).
_HOST = re.compile(r"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
_LENGTH_DIGITS = 18  # a Content-Length's digits: past any body limit, within an int64
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:[ \t]*;[^\r\n\x00]*)?")
_OWS = " \t"
# Only these names can change framing, and they differ in length from most others: a
# header is looked at closer only when its length is one of these (the check runs on
# every request, on both servers).
_FRAMING_NAME_LENGTHS = frozenset({len("host"), len("content-length"), len("transfer-encoding")})


class Refusal(NamedTuple):
    """Why a request is refused: the status and the JSON error's type and message.
    Every refusal of framing ends the connection after its reply."""

    status: int
    error_type: str
    message: str


class MalformedFraming(ValueError):
    """A reply (from a replica) whose framing cannot be trusted."""


def _coding_list(values: list[str]) -> list[str] | None:
    """The transfer codings of every Transfer-Encoding field, in order, lowercased; None
    when an element is not a token (a coding's parameters included: none is supported)
    or is empty: RFC 9110 5.6.1.2 lets a recipient skip empty elements, but h11 (and
    proxies like it) refuse them, and a framing header two parsers read differently is
    what smuggling is made of."""
    codings = []
    for value in values:
        for element in value.split(","):
            coding = element.strip(_OWS)
            if not coding or not TOKEN.fullmatch(coding):
                return None
            codings.append(coding.lower())
    return codings


def request_framing(version: str, headers: Sequence[tuple[str, str]]) -> int | Refusal:
    """A request's framing: CHUNKED, or its Content-Length (0 when it has neither), or
    the Refusal to answer it with. ``version`` is the parser's ("1.1"; "0.9" for a request
    line without one), ``headers`` the head's fields as sent (values untrimmed)."""
    if version != "1.1" and version != "1.0":
        if version == "0.9" or not version:
            # llhttp takes a request line without a version as HTTP/0.9 and reads headers
            # and a body after it; no proxy in front would agree on where it ends.
            return Refusal(
                400,
                "InvalidHttpVersion",
                "the request line has no HTTP version: only HTTP/1.0 and HTTP/1.1 are served",
            )
        return Refusal(
            505,
            "HttpVersionNotSupported",
            f"HTTP/{version} is not served on this port: only HTTP/1.0 and HTTP/1.1",
        )
    hosts = 0
    host = ""
    lengths: list[str] = []
    encodings: list[str] = []
    for name, value in headers:
        if len(name) not in _FRAMING_NAME_LENGTHS:
            continue
        lowered = name.lower()
        if lowered == "host":
            hosts += 1
            host = value
        elif lowered == "content-length":
            lengths.append(value)
        elif lowered == "transfer-encoding":
            encodings.append(value)
    # RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, with
    # more than one, or with an invalid one. Front proxies pick the first or the last of
    # two: a route or an access rule chosen by one would not be the gateway's.
    if hosts > 1:
        return Refusal(400, "DuplicateHost", "the request has more than one Host header")
    if hosts == 0:
        if version == "1.1":
            return Refusal(400, "MissingHost", "an HTTP/1.1 request must have a Host header")
    elif not _HOST.fullmatch(host.strip(_OWS)):
        return Refusal(400, "InvalidHost", "the Host header is not a host name with a port")
    if encodings:
        if version == "1.0":
            # RFC 9112 6.1: HTTP/1.0 has no chunked coding; a 1.0 message with it is
            # faulty, and an HTTP/1.0 proxy in front would frame it by the connection.
            return Refusal(
                400,
                "InvalidTransferEncoding",
                "an HTTP/1.0 request cannot carry Transfer-Encoding",
            )
        if lengths:
            # RFC 9112 6.3: either may be what a proxy in front framed the request by.
            return Refusal(
                400,
                "AmbiguousFraming",
                "the request has both Content-Length and Transfer-Encoding",
            )
        codings = _coding_list(encodings)
        if not codings or codings.count("chunked") > 1:
            # Not a list of codings, or chunked twice (RFC 9112 6.1: never applied twice).
            return Refusal(
                400,
                "InvalidTransferEncoding",
                "the Transfer-Encoding header is not a valid list of transfer codings",
            )
        if codings != ["chunked"]:
            if codings[-1] != "chunked":
                # RFC 9112 6.3: a request whose final coding is not chunked has no length.
                return Refusal(
                    400,
                    "InvalidTransferEncoding",
                    "chunked must be the final transfer coding of a request",
                )
            # RFC 9112 6.1: a coding the server does not understand is a 501. Dropping the
            # header (it is hop-by-hop) would hand the function still-coded bytes.
            return Refusal(
                501,
                "UnsupportedTransferEncoding",
                f"the transfer codings {', '.join(codings)!r} are not supported: "
                "only 'chunked' alone is",
            )
        return CHUNKED
    if not lengths:
        return 0
    if len(lengths) > 1:
        return Refusal(400, "InvalidContentLength", "the request has more than one Content-Length")
    length = lengths[0].strip(_OWS)
    if not (length.isascii() and length.isdigit() and len(length) <= _LENGTH_DIGITS):
        # RFC 9112 6.3: a Content-Length that is not 1*DIGIT (a sign, a list, junk) is
        # unrecoverable framing.
        return Refusal(
            400,
            "InvalidContentLength",
            f"the Content-Length {length[:40]!r} is not a number of bytes",
        )
    return int(length)


def reply_framing(
    content_lengths: list[str], transfer_encodings: list[str], bodyless: bool
) -> int | None:
    """A reply's framing (read by the gateway from a replica), from the values of its
    Content-Length and Transfer-Encoding fields: CHUNKED, a length, or None when its body
    ends with the connection. ``bodyless`` for a reply to HEAD, a 204 or 304, which has
    none whatever it says. Raises MalformedFraming for a framing two readers could take
    differently: the gateway then answers 502 and drops the connection."""
    if bodyless:
        return 0
    if transfer_encodings:
        if content_lengths:
            raise MalformedFraming("the reply has both Content-Length and Transfer-Encoding")
        if _coding_list(transfer_encodings) != ["chunked"]:
            raise MalformedFraming(
                f"the reply's Transfer-Encoding {transfer_encodings!r} is not chunked"
            )
        return CHUNKED
    if not content_lengths:
        return None
    if len(content_lengths) == 1:
        length = content_lengths[0]
        if length.isascii() and length.isdigit() and len(length) <= _LENGTH_DIGITS:
            return int(length)  # the common case, tested cheaply
    # RFC 9110 8.6: a list of one repeated value is that value.
    lengths = {part.strip(_OWS) for value in content_lengths for part in value.split(",")}
    if len(lengths) > 1:
        raise MalformedFraming(f"the reply has different Content-Lengths {sorted(lengths)}")
    (length,) = lengths
    if not (length.isascii() and length.isdigit() and len(length) <= _LENGTH_DIGITS):
        raise MalformedFraming(f"the reply's Content-Length {length[:40]!r} is not a number")
    return int(length)


def chunk_size(line: bytes) -> int:
    """The size in a chunk-size line (its CRLF removed): hex digits, then any extension.
    Python's int(x, 16) alone would take "0x1f", "+1f", " 1f" or "1_f", which a strict
    parser refuses: two readers of one body would cut it differently."""
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise MalformedFraming(f"bad chunk size line {line[:40]!r}")
    return int(match.group(1), 16)
