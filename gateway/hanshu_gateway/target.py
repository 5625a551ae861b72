"""The request target: what the gateway routes on, and what it forwards to a replica.

aiohttp gives both the target as sent (``raw_path``) and a percent-decoded path. Writing the
decoded path into the request line to a replica would let ``%0d%0a`` forge headers and have
``%252e`` decoded twice. So the path is kept as segments in both forms side by side: routing
and every check read the decoded form; the replica gets the raw form, byte for byte.

The decisions, each for a reason:

- A Trigger's prefix is matched against decoded segments and stripped by counting them:
  ``/sh%6Fp/x`` is under ``/shop`` (it is the same path once decoded) and the function
  sees ``/x``. Matching only the raw spelling would route one path two ways.
- An encoded slash (``%2F``) is data inside a segment, not a separator: ``/shop%2Fx`` is not
  under ``/shop``, and the replica is sent ``%2F``, as the caller wrote it.
- Dot segments (``.``, ``..``, also spelled ``%2e``) are resolved before routing, and the
  resolved path is what is forwarded, so a path cannot route under one prefix and reach
  the function as another. ``..`` above the root is refused, and so are dot segments
  behind an encoded slash (``..%2F``): a function that decodes and resolves them would see
  a path that was never routed.
- Control characters are refused anywhere in the target as sent (llhttp refuses most
  already) and in the decoded path. In the query they are data (a text field's line
  break): the gateway never decodes the query, so they cannot reach a request line.
- A fragment is never forwarded. An absolute-form target (``GET http://host/p``) is routed
  like its path on its host, as RFC 9112 section 3.2.2 asks of a server; ``*`` and the
  authority form (``CONNECT``) address no Function and are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

RESERVED_SEGMENT = "_hanshu"  # a replica's own paths: /_hanshu/invoke, ...

_NOT_VISIBLE_ASCII = re.compile(r"[^\x21-\x7e]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ABSOLUTE_FORM = re.compile(r"https?://[^/?#]*", re.IGNORECASE)
_DOTS = (".", "..")


class BadTarget(Exception):
    """A request target (or Host) the gateway refuses with a 400."""

    def __init__(self, message: str, error_type: str = "InvalidPath") -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True, slots=True)
class Target:
    raw: tuple[str, ...]  # the path's segments after the leading '/', as sent
    decoded: tuple[str, ...]  # the same segments, percent-decoded once
    query: str = ""  # as sent, without the '?'

    @property
    def path(self) -> str:
        """The decoded path: for routing messages, never for a request line."""
        return "/" + "/".join(self.decoded)

    @property
    def upstream(self) -> str:
        """The request line's target for a replica: the raw segments and query."""
        path = "/" + "/".join(self.raw)
        return f"{path}?{self.query}" if self.query else path

    @property
    def reserved(self) -> bool:
        """Whether a replica would take this path for one of Hanshu's own: compared fully
        decoded (``%2F`` too), without empty segments, in any case."""
        parts = [part for part in "/".join(self.decoded).split("/") if part]
        return bool(parts) and parts[0].lower() == RESERVED_SEGMENT

    def without_prefix(self, segments: int) -> Target:
        if not segments:
            return self
        return Target(self.raw[segments:] or ("",), self.decoded[segments:] or ("",), self.query)


def visible_ascii(text: str) -> bool:
    """Only printable ASCII, no spaces: safe to echo in a header or a request line."""
    return _NOT_VISIBLE_ASCII.search(text) is None


def parse_target(raw: str) -> Target:
    """The target of a request line (aiohttp's ``raw_path``), checked and split."""
    if not visible_ascii(raw):
        raise BadTarget("the request target has a control character or a non-ASCII byte")
    target = raw.partition("#")[0]
    if not target.startswith("/"):
        target = _path_of_absolute_form(target)
    path, _, query = target.partition("?")
    segments = _resolve_dots([(segment, _decode(segment)) for segment in path[1:].split("/")])
    for _, decoded in segments:
        if "/" in decoded and any(part in _DOTS for part in decoded.split("/")):
            raise BadTarget("a dot segment behind an encoded slash ('..%2F') is not allowed")
    return Target(tuple(s[0] for s in segments), tuple(s[1] for s in segments), query)


def checked_host(host: str) -> str:
    """The Host (or the absolute-form target's host), which is routed on and forwarded."""
    if not host or not visible_ascii(host):
        raise BadTarget("the Host header is not a host name", "InvalidHost")
    return host


def _path_of_absolute_form(target: str) -> str:
    absolute = _ABSOLUTE_FORM.match(target)
    if absolute is None:
        raise BadTarget(
            f"the request target must be a path starting with '/', not {target[:80]!r}",
            "InvalidTarget",
        )
    rest = target[absolute.end() :]
    return rest if rest.startswith("/") else "/" + rest


def _decode(segment: str) -> str:
    if "%" not in segment:
        return segment  # the common case; already checked to be visible ASCII
    try:
        decoded = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise BadTarget("the path is not UTF-8 once percent-decoded") from None
    if _CONTROL.search(decoded):
        raise BadTarget("the path has a control character once percent-decoded")
    return decoded


def _resolve_dots(segments: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """RFC 3986's remove_dot_segments on (raw, decoded) pairs, judged by the decoded form."""
    resolved: list[tuple[str, str]] = []
    last = len(segments) - 1
    for index, (raw, decoded) in enumerate(segments):
        if decoded not in _DOTS:
            resolved.append((raw, decoded))
            continue
        if decoded == "..":
            if not resolved:
                raise BadTarget("the path climbs above the root with '..'")
            resolved.pop()
        if index == last:
            resolved.append(("", ""))  # '/a/b/..' is '/a/', a directory
    return resolved
