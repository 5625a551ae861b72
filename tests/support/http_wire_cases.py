"""Raw HTTP/1.1 requests whose framing is in doubt, shared by the wire tests of the gateway's
public port and of the runtime's server (both must refuse each alike)."""

from __future__ import annotations

# RFC 9112's musts that llhttp lets through (or refuses only after serving part): each
# raw request, the status and the errorType the caller gets. A request for /smuggled
# follows each one on the connection; it must never be served.
REFUSED_FRAMING = [
    # 6.1: a coding we do not understand is a 501 (the replica would get coded bytes).
    (b"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", 501, "UnsupportedTransferEncoding"),
    (b"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n"
     b"0\r\n\r\n", 501, "UnsupportedTransferEncoding"),
    # 6.3: chunked not the final coding of a request: no length can be known.
    (b"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabc",
     400, "InvalidTransferEncoding"),
    (b"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n",
     400, "InvalidTransferEncoding"),
    (b"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
     400, None),
    (b"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n",
     400, "InvalidTransferEncoding"),
    # 6.1: HTTP/1.0 has no chunked coding; kept alive, what follows the body was served.
    (b"POST /te HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n0\r\n\r\n", 400, "InvalidTransferEncoding"),
    # 2.3: only HTTP/1.0 and 1.1; llhttp reads a line without a version as HTTP/0.9.
    (b"GET /nine\r\n\r\n", 400, "InvalidHttpVersion"),
    (b"POST http://a/nine\r\nHost: a\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc",
     400, "InvalidHttpVersion"),
    (b"GET /two HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HttpVersionNotSupported"),
    # 3.2: exactly one valid Host in HTTP/1.1.
    (b"GET /hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "DuplicateHost"),
    (b"GET /hosts HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n", 400, "DuplicateHost"),
    (b"GET /hosts HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "InvalidHost"),
    (b"GET /hosts HTTP/1.1\r\nHost: a/b@c\r\n\r\n", 400, "InvalidHost"),
    (b"GET /hosts HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", 400, "MissingHost"),
    # 6.3: both framings, or a Content-Length that is not one number.
    (b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400, None),
    (b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400, None),
    (b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabc", 400, None),
    (b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
     400, None),
    # 5.1, 5.2, 2.2: whitespace before the colon, obs-fold, bare CR, control characters.
    (b"GET /h HTTP/1.1\r\nHost : a\r\n\r\n", 400, None),
    (b"GET /h HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, None),
    (b"GET /h HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, None),
    (b"GET /h HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, None),
    (b"GET /h HTTP/1.1\r\nHost: a\r\nX: a\x1bb\r\n\r\n", 400, None),
    # 7.1: a chunk size is hex digits only.
    (b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
     400, None),
    (b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
     400, None),
    (b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"10000000000000003\r\nabc\r\n0\r\n\r\n", 400, None),
    (b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
     400, None),
    # 7.1.2: a trailer may not carry framing.
    (b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
     b"Content-Length: 40\r\n\r\n", 400, None),
]  # fmt: skip
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
