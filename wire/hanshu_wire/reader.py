"""The request head as httptools (llhttp) reports it, for both servers' connections: the
target, the header fields, the limits on both, trailers kept out of the headers, and the
framing decision. A fix to how a head is read lands here once."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from .framing import Refusal, request_framing
from .limits import HEADER_FIELD_LIMIT, MAX_HEADERS, REQUEST_LINE_LIMIT

# The lengths of the names that frame a request (Host, Content-Length, Transfer-Encoding)
# or ask for 100 Continue (Expect): such fields are also kept apart as they are read, so
# the framing decision looks at one or two fields, not at every header again.
_NOTED_LENGTHS = frozenset({4, 6, 14, 17})

if TYPE_CHECKING:
    import httptools


class HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a request refused already (httptools
    raises it on as an HttpParserCallbackError, an HttpParserError)."""


class HeadReader:
    """The httptools callbacks up to the end of a head, as a base of a server connection.

    The connection sets ``_parser`` (an ``httptools.HttpRequestParser`` fed by itself) and
    answers two calls: ``head_refused`` (answer with the refusal in turn, then close: the
    parser stops at once) and ``head_complete`` (the head read, with its framing from
    ``request_framing``: ``_target`` and ``_fields`` hold it). ``message_begins`` lets it
    reset its own state per message. Body and end of message stay the connection's.
    """

    _parser: httptools.HttpRequestParser
    _target: bytes = b""
    _fields: list[tuple[str, str]]
    _noted: list[tuple[str, str]]  # the fields whose names may frame the request
    _trailers = 0
    _head_done = False  # the head is complete: header fields now are a chunked body's trailers

    def head_refused(self, refusal: Refusal) -> None:
        raise NotImplementedError

    def head_complete(self, framing: int) -> None:
        raise NotImplementedError

    def message_begins(self) -> None:
        """A request begins (its first byte is read)."""

    def _stop(self, refusal: Refusal) -> NoReturn:
        self.head_refused(refusal)
        raise HeadRefused

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._target = b""
        self._fields = []
        self._noted = []
        self._trailers = 0
        self._head_done = False
        self.message_begins()

    def on_url(self, url: bytes) -> None:
        self._target += url
        if len(self._target) > REQUEST_LINE_LIMIT:
            limit = REQUEST_LINE_LIMIT
            self._stop(Refusal(414, "TargetTooLong", f"the request line is over {limit} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)
        if size > HEADER_FIELD_LIMIT or len(value) > HEADER_FIELD_LIMIT:
            limit = HEADER_FIELD_LIMIT
            self._stop(Refusal(431, "HeadersTooLarge", f"a header is over {limit} bytes"))
        if self._head_done:
            # A chunked body's trailer: never made a header (it may say anything, a
            # Content-Length or an X-Hanshu-Invocation-Id), only counted.
            self._trailers += 1
            if self._trailers > MAX_HEADERS:
                self._stop(Refusal(431, "HeadersTooLarge", "the request has too many trailers"))
            return
        fields = self._fields
        if len(fields) >= MAX_HEADERS:
            self._stop(Refusal(431, "HeadersTooLarge", "the request has too many headers"))
        # Not UTF-8: kept as surrogates, which nothing echoes and the hop writes back as sent.
        field = (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
        fields.append(field)
        if size in _NOTED_LENGTHS:
            self._noted.append(field)

    def on_headers_complete(self) -> None:
        self._head_done = True
        framing = request_framing(self._parser.get_http_version(), self._noted)
        if isinstance(framing, Refusal):
            self._stop(framing)
        self.head_complete(framing)


def expects_continue(fields: list[tuple[str, str]], version: str) -> bool:
    """Whether the client waits for ``100 Continue`` before sending its body (RFC 9110
    10.1.1; an HTTP/1.0 client never does). ``fields``: a HeadReader's ``_noted``, or all
    of a head's."""
    if version != "1.1":
        return False
    for name, value in fields:
        if len(name) == 6 and name.lower() == "expect":
            return value.strip().lower() == "100-continue"
    return False
