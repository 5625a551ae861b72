"""Bounds both servers hold a caller to. Kept together so the runtime behind the gateway
never refuses what the gateway let through (a replica's 431 for a head the gateway
accepted would reach a caller as the function's own answer)."""

from __future__ import annotations

# The request line and headers together, however they are split (aiohttp's and nginx's
# limits are of this order): a head that never ends must not grow without bound.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 128  # header fields in a head, and trailer fields after a chunked body
# Complete requests waiting on one connection behind the one being answered: a client
# that pipelines must not make a server hold many requests, or bodies, at once.
MAX_PIPELINED = 16
# How long a connection closed after an error reply still reads (and drops) what the
# client sends, so that a client busy sending gets to read the reply, not a reset.
LINGER_SECONDS = 5.0
# Replies that never have a body, whatever a handler's says.
NO_BODY_STATUSES = frozenset({204, 304})
REQUEST_LINE_LIMIT = 8190  # aiohttp's default: 414 past it
HEADER_FIELD_LIMIT = 16 * 1024  # one header's name or value: 431 past it
