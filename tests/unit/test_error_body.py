"""The error body: what the gateway writes is what the dispatcher, the stream consumers and
the CLI read back; a body that is not one parses to None, never to a crash."""

from __future__ import annotations

import json

import pytest
from hanshu_api.error_body import MAX_RECORDED_MESSAGE_CHARS, ErrorBody, reply_error


def test_the_gateway_body_is_byte_for_byte_what_it_wrote_by_hand() -> None:
    # The dict the gateway's error() built: the three fields, then details that are not one.
    by_hand = {"errorType": "PayloadTooLarge", "errorMessage": "too big", "requestId": "r1"}
    by_hand["limit"] = 10
    body = ErrorBody("PayloadTooLarge", "too big", "r1", {"limit": 10, "errorType": "overwritten?"})
    assert body.encode() == json.dumps(by_hand).encode()


def test_an_error_body_survives_the_wire() -> None:
    body = ErrorBody("HandlerNotFound", "no handler", "abc", {"field": "spec.handler"})
    assert ErrorBody.parse(body.encode()) == body
    assert ErrorBody.parse(body.encode().decode()) == body
    assert ErrorBody.parse(body.as_dict()) == body


def test_without_a_request_id_the_body_has_two_keys() -> None:
    assert ErrorBody("E", "m").as_dict() == {"errorType": "E", "errorMessage": "m"}


@pytest.mark.parametrize(
    "foreign",
    [
        b"<html>502 Bad Gateway</html>",
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'"errorType"',
        b'{"message": "an app\'s own error"}',
        b"[" * 100_000 + b"]" * 100_000,  # deeper than anyone should walk
        {"errorMessage": "no type"},
    ],
)
def test_a_body_that_is_not_an_error_body_parses_to_none(foreign: bytes | dict[str, str]) -> None:
    assert ErrorBody.parse(foreign) is None


def test_a_reply_is_described_by_its_body_else_its_status() -> None:
    long = "x" * (MAX_RECORDED_MESSAGE_CHARS + 50)
    carried = ErrorBody("KeyError", long, "req-1", {"extra": 1}).encode()
    assert reply_error(500, carried, not_delivered="NoReply") == ErrorBody(
        "KeyError", "x" * MAX_RECORDED_MESSAGE_CHARS
    )
    assert reply_error(503, b"busy", not_delivered="NoReply").as_dict() == {
        "errorType": "HTTP503",
        "errorMessage": "the function answered 503",
    }
    assert reply_error(0, b"connection refused", not_delivered="NotDelivered") == ErrorBody(
        "NotDelivered", "connection refused"
    )
