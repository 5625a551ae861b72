"""HTTP/1.1 wire rules shared by the runtime's server, the gateway's public port and the
gateway's client to replicas: what decides a message's framing, and the header and token
sets every writer and reader checks against.

It imports nothing of Hanshu's (DESIGN.md: the runtime may import only this of ours), and
nothing outside the standard library, so the runtime's image and boot stay as they are.
"""

from .dates import http_date
from .framing import (
    CHUNKED,
    HOP_BY_HOP,
    LINE_BREAKING,
    SERVER_OWNED_HEADERS,
    TOKEN,
    TOKEN_CHARS,
    MalformedFraming,
    Refusal,
    chunk_size,
    reply_framing,
    request_framing,
)
from .limits import (
    LINGER_SECONDS,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    MAX_PIPELINED,
    NO_BODY_STATUSES,
)
from .reader import HeadReader, HeadRefused, expects_continue
from .replies import framing_fields

__all__ = [
    "CHUNKED",
    "HOP_BY_HOP",
    "LINE_BREAKING",
    "LINGER_SECONDS",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "MAX_PIPELINED",
    "NO_BODY_STATUSES",
    "SERVER_OWNED_HEADERS",
    "TOKEN",
    "TOKEN_CHARS",
    "HeadReader",
    "HeadRefused",
    "MalformedFraming",
    "Refusal",
    "chunk_size",
    "expects_continue",
    "framing_fields",
    "http_date",
    "reply_framing",
    "request_framing",
]
