"""Call a WSGI app (Flask, Django, ...) with a faithful PEP 3333 environ built from a request."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from hanshu_wire import SERVER_OWNED_HEADERS

from .http_events import HttpRequest, server_address
from .replies import HttpReply

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _native(text: str) -> str:
    """PEP 3333's "native string": the UTF-8 bytes as latin-1 characters (the app decodes)."""
    return text.encode("utf-8").decode("latin-1")


def build_environ(request: HttpRequest, server_name: str, server_port: int) -> dict[str, Any]:
    # The caller's host, not the replica's address (the gateway passes the Host on).
    server_name, server_port = server_address(
        request.host, request.scheme, (server_name, server_port)
    )
    # What was on the request line, still encoded (gunicorn and Werkzeug's server set both).
    raw_uri = f"{request.path}?{request.raw_query}" if request.raw_query else request.path
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        # The stripped mount point: url_for and redirects put it back in front.
        "SCRIPT_NAME": _native(request.prefix),
        # PEP 3333: PATH_INFO is the percent-decoded path (decoded once) as latin-1 chars.
        "PATH_INFO": unquote_to_bytes(request.path).decode("latin-1"),
        "QUERY_STRING": request.raw_query,
        "RAW_URI": raw_uri,
        "REQUEST_URI": raw_uri,
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": request.protocol,
        "REMOTE_ADDR": request.client_ip,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme,
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    for name, value in request.headers:
        if "_" in name:
            # CGI maps '-' and '_' to one key: X_Hanshu_Invocation_Id would pose as (or be
            # joined to) the X-Hanshu-Invocation-Id the platform sets. Dropped, as gunicorn
            # and nginx do; ASGI apps and event handlers still get them as sent.
            continue
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            environ[key] = value
            continue
        key = "HTTP_" + key
        if key in environ:
            separator = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = environ[key] + separator + value
        else:
            environ[key] = value
    if request.body and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(request.body))
    return environ


def call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> HttpReply:
    """Runs in a handler thread: the app may block."""
    reply = HttpReply(500)
    written: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and reply.status != 500 and written:
            raise exc_info[1].with_traceback(exc_info[2])
        reply.status = int(status.split(" ", 1)[0])
        reply.headers = [(k, v) for k, v in headers if k.lower() not in SERVER_OWNED_HEADERS]
        return written.append

    iterable = app(environ, start_response)
    try:
        for chunk in iterable:
            if chunk:
                written.append(bytes(chunk))
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    reply.body = b"".join(written)
    return reply
