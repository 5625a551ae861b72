"""The end of a reply's head: its framing, which is the server's alone (a handler's own
Content-Length, Transfer-Encoding or Connection is never written, SERVER_OWNED_HEADERS)."""

from __future__ import annotations

from .dates import http_date


def framing_fields(length: int | str | None, *, keep_alive: bool, http10: bool) -> str:
    """Content-Length (None: a 204 or 304, which has none), Date, and Connection: ``close``
    when the connection ends after this reply, ``keep-alive`` to an HTTP/1.0 client that
    keeps it (HTTP/1.0 closes unless told otherwise); then the blank line."""
    date = http_date()
    fields = (
        f"Date: {date}\r\n" if length is None else f"Content-Length: {length}\r\nDate: {date}\r\n"
    )
    if not keep_alive:
        return fields + "Connection: close\r\n\r\n"
    if http10:
        return fields + "Connection: keep-alive\r\n\r\n"
    return fields + "\r\n"
