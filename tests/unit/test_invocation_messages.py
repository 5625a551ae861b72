"""An async invocation's two messages: the NATS headers the gateway stores it with (read by
the dispatcher) and the status record the dispatcher writes (served by the gateway). What
one side encodes the other parses back; a malformed one is refused naming what is wrong."""

from __future__ import annotations

import json

import pytest
from hanshu_api.error_body import ErrorBody
from hanshu_api.invocation_record import (
    DestinationState,
    InvocationRecord,
    InvocationResult,
    Origin,
    RecordInvalid,
    State,
)
from hanshu_api.invocations import (
    H_ENQUEUED,
    H_ORIGIN,
    H_POLICY,
    H_REQUEST,
    HeadersInvalid,
    InvocationHeaders,
    StoredPolicy,
    StoredRequest,
    message_headers,
    public_record,
)
from hanshu_api.models import AsyncPolicy, Destination

ORIGIN = Origin("shop", "checkout", "checkout-http", "Authorization")
POLICY = AsyncPolicy(
    max_retry_attempts=2,
    max_event_age_seconds=600,
    on_failure=Destination(function="dead-letters"),
)


def stored(job_id: str | None = None) -> InvocationHeaders:
    return InvocationHeaders(
        invocation_id="a" * 32,
        invocation_type="Async",
        enqueued_at=1767000000.25,
        policy=StoredPolicy.of(POLICY, 30.0),
        request=StoredRequest("POST", "/orders?x=1", (("Content-Type", "application/json"),)),
        origin=ORIGIN,
        job_id=job_id,
    )


# -- the headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", [None, "b" * 32])
def test_the_headers_survive_the_wire(job_id: str | None) -> None:
    headers = stored(job_id)
    assert InvocationHeaders.from_headers(headers.to_headers()) == headers


def test_the_gateway_s_writer_and_the_type_write_the_same_headers() -> None:
    headers = stored("b" * 32)
    by_the_gateway = message_headers(
        headers.invocation_id,
        "Async",
        headers.enqueued_at,
        StoredPolicy.of(POLICY, 30.0).dumps(),
        headers.request,
        ORIGIN,
        "b" * 32,
    )
    assert by_the_gateway == headers.to_headers()


@pytest.mark.parametrize(
    ("header", "value", "named"),
    [
        (H_ORIGIN, None, H_ORIGIN),
        (H_ORIGIN, "not json", H_ORIGIN),
        (H_ORIGIN, '{"namespace": "a"}', H_ORIGIN),
        (H_ENQUEUED, "yesterday", H_ENQUEUED),
        (H_POLICY, '{"maxAttempts": 1}', H_POLICY),
        (H_REQUEST, "[]", H_REQUEST),
    ],
)
def test_a_message_that_is_not_an_invocation_is_refused_naming_the_header(
    header: str, value: str | None, named: str
) -> None:
    headers = stored().to_headers()
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    with pytest.raises(HeadersInvalid, match=named):
        InvocationHeaders.from_headers(headers)


# -- the record --------------------------------------------------------------------------------


def test_a_new_record_is_what_the_gateway_stored_before() -> None:
    record = InvocationRecord.new("a" * 32, ORIGIN, "Async", 0.0, "b" * 32)
    assert record.encode() == {
        "invocationId": "a" * 32,
        "namespace": "shop",
        "function": "checkout",
        "trigger": "checkout-http",
        "authHeader": "Authorization",
        "invocationType": "Async",
        "state": "Enqueued",
        "attempts": 0,
        "enqueuedAt": "1970-01-01T00:00:00.000Z",
        "updatedAt": "1970-01-01T00:00:00.000Z",
        "jobId": "b" * 32,
    }


def test_a_record_through_its_life_survives_the_wire() -> None:
    record = InvocationRecord.new("a" * 32, ORIGIN, "Async", 0.0)
    running = record.running(1, 1.0)
    assert running.state is State.RUNNING
    assert running.started_at == "1970-01-01T00:00:01.000Z"
    assert running.running(2, 5.0).started_at == running.started_at  # of the first attempt
    retrying = running.retrying(1, ErrorBody("HTTP500", "boom"), 3.0)
    assert retrying.encode()["lastError"] == {"errorType": "HTTP500", "errorMessage": "boom"}
    assert retrying.encode()["nextAttemptAt"] == "1970-01-01T00:00:03.000Z"
    failed = (
        retrying.running(2, 4.0)
        .finished(
            State.FAILED,
            "RetriesExhausted",
            5.0,
            result=InvocationResult.of(500, b"\xff"),
            error=ErrorBody("HTTP500", "boom"),
        )
        .with_destination(DestinationState.PENDING)
        .touched(6.0)
    )
    wire = json.loads(failed.dumps())
    assert "nextAttemptAt" not in wire
    assert wire["state"] == "Failed"
    assert wire["condition"] == "RetriesExhausted"
    assert wire["result"] == {
        "statusCode": 500,
        "truncated": False,
        "body": "/w==",
        "isBase64Encoded": True,
    }
    assert wire["destination"] == "Pending"
    assert InvocationRecord.parse(failed.dumps()) == failed
    assert failed.result is not None
    assert failed.result.payload() == b"\xff"


def test_the_caller_never_sees_who_may_read_the_status() -> None:
    record = InvocationRecord.new("a" * 32, ORIGIN, "Async", 0.0)
    assert "authHeader" not in record.public()
    assert record.public() == public_record(record.encode())


def test_keys_of_a_newer_writer_are_kept() -> None:
    wire = {**InvocationRecord.new("a" * 32, ORIGIN, "Async", 0.0).encode(), "priority": 3}
    assert InvocationRecord.parse(wire).running(1, 1.0).encode()["priority"] == 3


def test_a_result_is_bounded_as_before() -> None:
    big = InvocationResult.of(200, b"x" * 100_000)
    assert big.truncated
    assert len(big.body) == 32 * 1024


def test_the_states_are_the_strings_on_the_wire() -> None:
    assert State.FAILED == "Failed"
    assert [state.final for state in State] == [False, False, False, True, True, True]


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b"not json", "not JSON"),
        (b"[]", "must be a JSON object"),
        ({"namespace": "a", "function": "b", "enqueuedAt": "t"}, "invocationId"),
        (
            {
                "invocationId": "i",
                "namespace": "a",
                "function": "b",
                "enqueuedAt": "t",
                "state": "Lost",
            },
            "state must be one of",
        ),
        (
            {
                "invocationId": "i",
                "namespace": "a",
                "function": "b",
                "enqueuedAt": "t",
                "attempts": -1,
            },
            "attempts",
        ),
        (
            {
                "invocationId": "i",
                "namespace": "a",
                "function": "b",
                "enqueuedAt": "t",
                "error": "x",
            },
            "error must be an error body",
        ),
        (
            {
                "invocationId": "i",
                "namespace": "a",
                "function": "b",
                "enqueuedAt": "t",
                "result": {},
            },
            "result must have",
        ),
    ],
)
def test_a_malformed_record_names_its_field(raw: object, named: str) -> None:
    with pytest.raises(RecordInvalid, match=named):
        InvocationRecord.parse(raw)  # type: ignore[arg-type]


def test_a_last_attempt_without_a_reply_writes_a_null_result() -> None:
    running = InvocationRecord.new("a" * 32, ORIGIN, "Async", 0.0).running(1, 1.0)
    unreachable = running.finished(
        State.FAILED,
        "RetriesExhausted",
        2.0,
        no_reply=True,
        error=ErrorBody("GatewayUnreachable", "connection refused"),
    )
    assert "result" in unreachable.encode()
    assert unreachable.encode()["result"] is None
    assert InvocationRecord.parse(unreachable.dumps()) == unreachable
    # Ended with no attempt at all (too old): no result key.
    expired = running.finished(State.EXPIRED, "EventAgeExceeded", 2.0, error=ErrorBody("E"))
    assert "result" not in expired.encode()
