"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the ``traceparent`` and
``tracestate`` headers, read and written.

A caller's ``traceparent`` is taken only when it parses; one that does not is replaced by
a new trace, never trusted and never an error (the spec: "vendors MUST ignore the
traceparent when the parent-id is invalid" and start anew). A ``tracestate`` travels only
with the ``traceparent`` it belongs to.

Pure: the gateway (public and async intake), the JetStream message headers
(invocations.InvocationHeaders) and the dispatcher use it. The runtime imports nothing of
ours and keeps a small reader of its own (hanshu_runtime/tracing.py); a unit test keeps the
two agreeing on every case.
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

SUPPORTED_VERSION = "00"
SAMPLED = 0x01
_VERSION_00_LENGTH = 55  # 2 + 1 + 32 + 1 + 16 + 1 + 2
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16
# Lowercase hex only (the spec's HEXDIGLC): an uppercase id is malformed.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# The header every hop of ours writes: read without the groups, on every request.
_VERSION_00 = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_FLAGS = {f"{flags:02x}": flags for flags in range(256)}

# tracestate: at most 32 list members, each key=value, 512 characters kept in all.
MAX_TRACESTATE_MEMBERS = 32
MAX_TRACESTATE_LENGTH = 512
_KEY = r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(rf"{_KEY}={_VALUE}")


class TraceParent(NamedTuple):
    """One span's place in a trace, as the next hop is told it. A NamedTuple, as the
    gateway's ProxiedCall: one or two are made per request, and a frozen dataclass takes
    about three times as long to make (bench/gateway_hotpath.py)."""

    trace_id: str  # 32 lowercase hex digits, not all zero
    parent_id: str  # 16 lowercase hex digits, not all zero: the span that made the call
    flags: int = SAMPLED

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def header(self) -> str:
        """Always version 00 (the only one defined): a later version's extra fields are
        dropped and its flags kept to the ones version 00 defines."""
        return f"{SUPPORTED_VERSION}-{self.trace_id}-{self.parent_id}-{self.flags & SAMPLED:02x}"

    def child(self, span_id: str | None = None) -> TraceParent:
        """The same trace, ``span_id`` (a new one when None) as the next hop's parent."""
        return TraceParent(self.trace_id, span_id or new_span_id(), self.flags)


# Ids are random, not secret (OpenTelemetry's SDK makes its own with the same generator):
# a trace id grants nothing, and os.urandom's system call would cost every request.


def new_trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def new_trace() -> TraceParent:
    """A trace started here (sampled: whoever exports spans records it)."""
    return TraceParent(new_trace_id(), new_span_id(), SAMPLED)


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The ``traceparent`` header's value, or None when it is absent or malformed.

    Per the spec's "Versioning of traceparent": version ``ff`` is invalid; version 00 is
    exactly 55 characters; a higher version is parsed as 00 for its first 55 characters and
    may carry more fields after a ``-``. All-zero ids and uppercase hex are invalid.
    """
    if not value:
        return None
    if len(value) == _VERSION_00_LENGTH and _VERSION_00.fullmatch(value):
        # Version 00, as sent by every hop of ours and most tracers: no groups to build.
        trace_id, parent_id = value[3:35], value[36:52]
        if trace_id == _INVALID_TRACE_ID or parent_id == _INVALID_SPAN_ID:
            return None
        return tuple.__new__(TraceParent, (trace_id, parent_id, _FLAGS[value[53:]]))
    value = value.strip(" \t")
    if len(value) < _VERSION_00_LENGTH:
        return None
    matched = _TRACEPARENT.fullmatch(value, 0, _VERSION_00_LENGTH)
    if matched is None:
        return None
    version, trace_id, parent_id, flags = matched.groups()
    if version == "ff":
        return None
    if version == SUPPORTED_VERSION:
        if len(value) != _VERSION_00_LENGTH:
            return None
    elif len(value) > _VERSION_00_LENGTH and value[_VERSION_00_LENGTH] != "-":
        return None
    if trace_id == _INVALID_TRACE_ID or parent_id == _INVALID_SPAN_ID:
        return None
    return TraceParent(trace_id, parent_id, int(flags, 16))


def parse_tracestate(value: str | None) -> str | None:
    """The ``tracestate`` header normalised (empty members dropped), or None when it is
    absent, empty or malformed: a list that cannot be read is dropped whole, as the spec
    allows, rather than passed on half understood."""
    if not value:
        return None
    members = [member.strip(" \t") for member in value.split(",")]
    members = [member for member in members if member]
    if not members or len(members) > MAX_TRACESTATE_MEMBERS:
        return None
    keys: set[str] = set()
    for member in members:
        if _MEMBER.fullmatch(member) is None:
            return None
        key = member.split("=", 1)[0]
        if key in keys:
            return None  # a key appears once, says the spec
        keys.add(key)
    joined = ",".join(members)
    if len(joined) > MAX_TRACESTATE_LENGTH:
        return None
    return joined


class TraceContext(NamedTuple):
    """The trace a request belongs to: its ``traceparent`` and (only with it) its
    ``tracestate``. ``started`` says the gateway began it (none usable came in)."""

    parent: TraceParent
    state: str | None = None
    started: bool = False

    @property
    def trace_id(self) -> str:
        return self.parent.trace_id

    def headers(self) -> list[tuple[str, str]]:
        pairs = [(TRACEPARENT, self.parent.header())]
        if self.state:
            pairs.append((TRACESTATE, self.state))
        return pairs

    def with_parent(self, span_id: str) -> TraceContext:
        """The same trace and state, ``span_id`` as the next hop's parent."""
        return TraceContext(self.parent.child(span_id), self.state, self.started)


_make = tuple.__new__  # a NamedTuple made without its Python-level __new__: per request


def incoming(traceparent: str | None, tracestate: str | None) -> TraceContext:
    """A request's trace: the caller's when its ``traceparent`` parses, else a new one
    (and the caller's ``tracestate`` is dropped with the ``traceparent`` it came with).

    Runs on every request the gateway takes, traced or not: written for few calls."""
    parent = parse_traceparent(traceparent) if traceparent else None
    if parent is None:
        ids = f"{random.getrandbits(192):048x}"
        trace_id, span_id = ids[:32], ids[32:]
        if trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
            trace_id, span_id = new_trace_id(), new_span_id()
        return _make(TraceContext, (_make(TraceParent, (trace_id, span_id, SAMPLED)), None, True))
    state = parse_tracestate(tracestate) if tracestate else None
    return _make(TraceContext, (parent, state, False))


def stored(traceparent: str | None, tracestate: str | None) -> TraceContext | None:
    """A trace written by the platform itself (a stored invocation's headers): None when
    absent or malformed, so an old message still runs, in a trace of its own."""
    parent = parse_traceparent(traceparent)
    if parent is None:
        return None
    return TraceContext(parent, parse_tracestate(tracestate))


__all__ = [
    "SAMPLED",
    "TRACEPARENT",
    "TRACESTATE",
    "TraceContext",
    "TraceParent",
    "incoming",
    "new_span_id",
    "new_trace",
    "new_trace_id",
    "parse_traceparent",
    "parse_tracestate",
    "stored",
]
