"""W3C traceparent / tracestate: the components' reader (hanshu_api.trace_context) against
the spec's cases, and the runtime's own reader (hanshu_runtime.tracing) agreeing on each."""

from __future__ import annotations

import pytest
from hanshu_api import trace_context
from hanshu_api.invocations import (
    InvocationHeaders,
    Origin,
    StoredPolicy,
    StoredRequest,
)
from hanshu_api.trace_context import (
    TraceContext,
    TraceParent,
    incoming,
    parse_traceparent,
    parse_tracestate,
)
from hanshu_runtime import tracing as runtime_tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"

# (header value, what it reads as: (trace id, parent id, flags) or None for malformed)
CASES: list[tuple[str | None, tuple[str, str, int] | None]] = [
    (VALID, (TRACE, SPAN, 1)),
    (f"00-{TRACE}-{SPAN}-00", (TRACE, SPAN, 0)),
    (f"  {VALID}\t", (TRACE, SPAN, 1)),  # optional whitespace around a header value
    # a later version: read as 00 for its first 55 characters; more fields after a '-'
    (f"01-{TRACE}-{SPAN}-01", (TRACE, SPAN, 1)),
    (f"cc-{TRACE}-{SPAN}-01-what-the-future-holds", (TRACE, SPAN, 1)),
    (f"cc-{TRACE}-{SPAN}-09", (TRACE, SPAN, 9)),  # unknown flags read; not passed on
    (f"cc-{TRACE}-{SPAN}-01.extra", None),  # more without the '-' that starts a field
    (f"00-{TRACE}-{SPAN}-01-extra", None),  # version 00 has exactly four fields
    (f"ff-{TRACE}-{SPAN}-01", None),  # version ff is forbidden
    (f"00-{'0' * 32}-{SPAN}-01", None),  # all-zero trace id
    (f"00-{TRACE}-{'0' * 16}-01", None),  # all-zero parent id
    (f"00-{TRACE.upper()}-{SPAN}-01", None),  # uppercase hex
    (f"00-{TRACE}-{SPAN.upper()}-01", None),
    (f"0A-{TRACE}-{SPAN}-01", None),
    (f"00-{TRACE}-{SPAN}-0A", None),
    (f"00-{TRACE[:-1]}-{SPAN}-01", None),  # wrong lengths
    (f"00-{TRACE}0-{SPAN}-01", None),
    (f"00-{TRACE}-{SPAN[:-1]}-01", None),
    (f"00-{TRACE}-{SPAN}-1", None),
    (f"0-{TRACE}-{SPAN}-01", None),
    (f"00_{TRACE}_{SPAN}_01", None),  # wrong separators
    (f"00-{TRACE[:-1]}g-{SPAN}-01", None),  # not hex
    ("", None),
    (None, None),
    ("garbage", None),
]


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_traceparent_reads_per_the_w3c_rules(
    value: str | None, expected: tuple[str, str, int] | None
) -> None:
    parsed = parse_traceparent(value)
    if expected is None:
        assert parsed is None
    else:
        assert parsed == TraceParent(*expected)


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_the_runtime_reader_agrees(value: str | None, expected: object) -> None:
    assert runtime_tracing.parse_traceparent(value) == expected


def test_a_later_version_goes_on_as_version_00_with_only_the_sampled_flag() -> None:
    parsed = parse_traceparent(f"cc-{TRACE}-{SPAN}-09-more")
    assert parsed is not None
    assert parsed.header() == VALID
    assert runtime_tracing.format_traceparent(TRACE, SPAN, 9) == VALID


def test_a_missing_or_malformed_traceparent_starts_a_new_trace_and_drops_tracestate() -> None:
    for bad in (None, "", f"00-{'0' * 32}-{SPAN}-01", VALID.upper()):
        trace = incoming(bad, "congo=t61rcWkgMzE")
        assert trace.started
        assert trace.state is None
        assert parse_traceparent(trace.parent.header()) == trace.parent
        assert trace.parent.sampled
    assert incoming(None, None).trace_id != incoming(None, None).trace_id


def test_a_valid_traceparent_is_kept_with_its_state() -> None:
    trace = incoming(VALID, "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")
    assert not trace.started
    assert trace.trace_id == TRACE
    assert trace.headers() == [
        ("traceparent", VALID),
        ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    ]
    child = trace.with_parent("b7ad6b7169203331")
    assert child.parent.header() == f"00-{TRACE}-b7ad6b7169203331-01"
    assert child.state == trace.state


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("congo=t61rcWkgMzE", "congo=t61rcWkgMzE"),
        ("rojo=1,,congo=2", "rojo=1,congo=2"),  # empty members are allowed and dropped
        ("tenant@vendor=x", "tenant@vendor=x"),  # multi-tenant keys
        ("", None),
        (",", None),
        ("Rojo=1", None),  # keys are lowercase
        ("rojo=1,rojo=2", None),  # a key appears once
        ("rojo", None),  # no value
        ("rojo=a=b", None),  # '=' is not allowed in a value
        ("rojo=trailing ", "rojo=trailing"),  # optional whitespace around members
        (",".join(f"k{i}=v" for i in range(33)), None),  # over 32 members
        ("k=" + "v" * 256, "k=" + "v" * 256),  # 256 characters: the most a value has
        ("k=" + "v" * 257, None),
    ],
)
def test_tracestate_is_kept_only_when_well_formed(value: str, expected: str | None) -> None:
    assert parse_tracestate(value) == expected


def test_new_ids_are_never_all_zero_and_have_their_lengths() -> None:
    for _ in range(100):
        trace = trace_context.new_trace()
        assert len(trace.trace_id) == 32
        assert set(trace.trace_id) != {"0"}
        assert len(trace.parent_id) == 16
        assert set(trace.parent_id) != {"0"}
        assert runtime_tracing.parse_traceparent(runtime_tracing.new_traceparent()) is not None


def _headers(trace: TraceContext | None) -> InvocationHeaders:
    return InvocationHeaders(
        "a" * 32,
        "Async",
        1.5,
        StoredPolicy(3, 60.0, 10.0, None, None),
        StoredRequest("POST", "/x", (("Content-Type", "application/json"),)),
        Origin("ns", "fn"),
        trace=trace,
    )


def test_a_stored_invocation_carries_its_trace_in_its_message_headers() -> None:
    trace = incoming(VALID, "congo=t61rcWkgMzE")
    headers = _headers(trace).to_headers()
    assert headers["traceparent"] == VALID
    assert headers["tracestate"] == "congo=t61rcWkgMzE"
    assert InvocationHeaders.from_headers(headers).trace == TraceContext(
        trace.parent, "congo=t61rcWkgMzE"
    )


def test_a_stored_invocation_without_a_usable_trace_still_parses() -> None:
    headers = _headers(None).to_headers()
    assert "traceparent" not in headers
    assert InvocationHeaders.from_headers(headers).trace is None
    headers["traceparent"] = "00-not-a-trace"
    assert InvocationHeaders.from_headers(headers).trace is None
