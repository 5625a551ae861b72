"""The decisions of async invocation, without a server: what a reply means, how long to
wait, what a batch body holds, how names map to NATS, and the spec's async policy."""

from __future__ import annotations

import random

import pytest
from hanshu_api.error_body import ErrorBody
from hanshu_api.invocation_record import InvocationResult
from hanshu_api.invocations import (
    JobCounts,
    consumer_name,
    function_of_subject,
    invocation_type_of,
    is_invocation_id,
    job_members_filter,
    member_id,
    new_id,
    record_key,
    subject_for,
)
from hanshu_api.models import SpecInvalid, parse_function_spec
from hanshu_dispatcher.config import ConfigError, config_from_env
from hanshu_dispatcher.destinations import destination_record
from hanshu_dispatcher.outcome import Reply, Verdict, backoff, error_of, judge, next_step
from hanshu_gateway.async_intake import BadBatch, batch_events


def reply(status: int, gateway_error: str | None = None, **headers: str) -> Reply:
    return Reply(status, headers, b"", gateway_error)


@pytest.mark.parametrize(
    ("given", "verdict"),
    [
        (reply(200), Verdict.SUCCEEDED),
        (reply(302), Verdict.SUCCEEDED),
        (reply(404), Verdict.FAILED),  # the function's own answer
        (reply(422), Verdict.FAILED),
        (reply(408), Verdict.RETRY),
        (reply(429), Verdict.RETRY),  # the function asked to slow down
        (reply(500), Verdict.RETRY),
        (reply(502, "ReplicaFailed"), Verdict.RETRY),  # a replica died
        (reply(504, "FunctionTimeout"), Verdict.RETRY),
        (reply(0, "GatewayUnreachable"), Verdict.RETRY),
        (reply(429, "QueueFull"), Verdict.THROTTLED),  # never ran: no attempt used
        (reply(503, "FunctionNotReady"), Verdict.THROTTLED),
        (reply(503, "ImagePullFailed"), Verdict.THROTTLED),  # retried once it is fixed
        (reply(503), Verdict.RETRY),  # the function's own 503 is a failed attempt
    ],
)
def test_what_a_reply_means(given, verdict):
    assert judge(given) is verdict


def step(verdict, attempt=1, max_attempts=3, age=0.0, max_age=3600.0, retry_after=None):
    return next_step(
        verdict,
        attempt,
        max_attempts,
        age=age,
        max_age=max_age,
        retry_after=retry_after,
        base=2.0,
        cap=60.0,
        rng=random.Random(7),
    )


def test_retries_until_the_attempts_are_spent_then_fail():
    assert step(Verdict.RETRY, attempt=1).state is None
    assert step(Verdict.RETRY, attempt=2).state is None
    last = step(Verdict.RETRY, attempt=3)
    assert (last.state, last.condition) == ("Failed", "RetriesExhausted")
    assert step(Verdict.SUCCEEDED).condition == "Success"
    assert (step(Verdict.FAILED).state, step(Verdict.FAILED).condition) == ("Failed", "NotRetried")


def test_throttling_waits_without_using_an_attempt_and_honours_retry_after():
    throttled = step(Verdict.THROTTLED, attempt=3, retry_after=5)
    assert throttled.state is None  # even on the last attempt: it never ran
    assert throttled.uses_attempt is False
    assert throttled.delay == 5
    retried = step(Verdict.RETRY, attempt=1, retry_after=30)
    assert retried.uses_attempt is True
    assert retried.delay == 30


def test_a_retry_past_the_event_age_expires_instead():
    expired = step(Verdict.RETRY, attempt=1, age=3599.0, max_age=3600.0)
    assert (expired.state, expired.condition) == ("Expired", "EventAgeExceeded")


def test_backoff_doubles_up_to_the_cap_with_jitter():
    rng = random.Random(1)
    delays = [backoff(n, 1.0, 10.0, rng) for n in range(1, 8)]
    for n, delay in enumerate(delays, 1):
        expected = min(10.0, 2 ** (n - 1))
        assert 0.8 * expected <= delay <= 1.2 * expected


def test_errors_come_from_the_json_error_or_the_status():
    crashed = Reply(500, {}, b'{"errorType": "KeyError", "errorMessage": "x"}')
    assert error_of(crashed).as_dict() == {"errorType": "KeyError", "errorMessage": "x"}
    assert error_of(Reply(503, {}, b"busy")).error_type == "HTTP503"
    assert error_of(Reply(0, {}, b"refused", "GatewayUnreachable")).error_type == (
        "GatewayUnreachable"
    )


def test_batch_bodies_are_a_json_array_or_ndjson():
    assert batch_events(b'[{"a": 1}, 2, "x"]') == [b'{"a":1}', b"2", b'"x"']
    assert batch_events(b'{"a": 1}\n\n{"b": 2}\n') == [b'{"a": 1}', b'{"b": 2}']
    for bad, says in [
        (b"", "needs a JSON array"),
        (b"[1, 2", "the body is not JSON"),
        (b'{"a": 1}\n{oops', "line 2"),
        (b"[]", "no events"),
    ]:
        with pytest.raises(BadBatch, match=says):
            batch_events(bad)
    with pytest.raises(BadBatch, match="at most 10000"):
        batch_events(b"\n".join([b"1"] * 10_001))


def test_names_map_to_nats_and_back():
    key = ("team.a", "resize.images")  # dots are legal in Kubernetes names
    subject = subject_for(key)
    assert subject == "hanshu.invoke.team_a.resize_images"
    assert function_of_subject(subject) == key
    assert function_of_subject("hanshu.invoke.too.many.tokens") is None
    assert "." not in consumer_name(key)
    job = new_id()
    assert is_invocation_id(job)
    assert is_invocation_id(member_id(job, 12))
    assert not is_invocation_id("../" + job)
    assert record_key(member_id(job, 12)) == f"inv.{job}.12"
    assert job_members_filter(job) == f"inv.{job}.*"


def test_the_invocation_type_header_has_two_names():
    assert invocation_type_of({}) == "Sync"
    assert invocation_type_of({"X-Hanshu-Invocation-Type": "async"}) == "Async"
    assert invocation_type_of({"X-Fc-Invocation-Type": "Async"}) == "Async"
    assert invocation_type_of({"X-Hanshu-Invocation-Type": "BATCH"}) == "Batch"
    assert invocation_type_of({"X-Hanshu-Invocation-Type": "later"}) is None


def test_results_keep_a_bounded_body():
    big = InvocationResult.of(200, b"x" * 100_000).encode()
    assert big["truncated"] is True
    assert len(big["body"]) == 32 * 1024
    binary = InvocationResult.of(200, b"\xff\xfe").encode()
    assert binary["isBase64Encoded"] is True


def test_job_counts_treat_members_not_yet_seen_as_enqueued():
    counts = JobCounts(5)
    counts.add({"state": "Succeeded"})
    counts.add({"state": "Failed", "invocationId": "j-1", "error": {"errorType": "E"}})
    counts.add({"state": "Running"})
    document = counts.document({"jobId": "j"})
    assert document["state"] == "Running"
    assert (document["enqueued"], document["running"]) == (2, 1)
    assert (document["succeeded"], document["failed"]) == (1, 1)
    assert document["failedInvocations"][0]["invocationId"] == "j-1"


def test_the_destination_record_is_lambdas():
    record = destination_record(
        key=("default", "resize"),
        invocation_id="abc",
        condition="RetriesExhausted",
        attempts=3,
        request_body=b'{"n": 1}',
        status=500,
        response_body=b"{}",
        error=ErrorBody("RuntimeError", "boom"),
        now=0.0,
    )
    assert record["version"] == "1.0"
    assert record["timestamp"] == "1970-01-01T00:00:00.000Z"
    assert record["requestContext"] == {
        "requestId": "abc",
        "functionArn": "arn:hanshu:function::default:function:resize:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"n": 1}
    assert record["responseContext"] == {
        "statusCode": 500,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "RuntimeError"


BASE = {"handler": "index.handler", "code": {"image": "example/fn:1"}}


def test_the_async_policy_defaults_and_bounds():
    policy = parse_function_spec(BASE).async_policy
    assert (policy.max_retry_attempts, policy.max_event_age_seconds) == (2, 6 * 3600)
    assert policy.on_success is None
    assert policy.on_failure is None
    custom = parse_function_spec(
        {
            **BASE,
            "async": {
                "maxRetryAttempts": 0,
                "maxEventAge": "90s",
                "destinations": {
                    "onSuccess": {"subject": "orders.done"},
                    "onFailure": {"function": "dead-letters"},
                },
            },
        }
    ).async_policy
    assert custom.max_retry_attempts == 0
    assert custom.max_event_age_seconds == 90
    assert custom.on_success.subject == "orders.done"  # type: ignore[union-attr]
    assert custom.on_failure.function == "dead-letters"  # type: ignore[union-attr]
    with pytest.raises(SpecInvalid) as bad:
        parse_function_spec(
            {
                **BASE,
                "async": {
                    "maxRetryAttempts": 9,
                    "maxEventAge": "7h",
                    "destinations": {
                        "onSuccess": {"url": "ftp://x", "subject": "a"},
                        "onFailure": {"subject": "orders.>"},
                    },
                },
            }
        )
    problems = " | ".join(bad.value.problems)
    assert "maxRetryAttempts must be from 0 to 8" in problems
    assert "maxEventAge must be from 1m to 6h" in problems
    assert "onSuccess must have exactly one of function, url or subject" in problems
    assert "no wildcards" in problems


def test_dispatcher_settings_name_what_is_wrong():
    env = {"HANSHU_NATS_URL": "nats://nats:4222", "HANSHU_GATEWAY_INTERNAL_URL": "http://gw:8081"}
    assert config_from_env(env).ack_wait_seconds == 30
    with pytest.raises(ConfigError, match="HANSHU_NATS_URL is required"):
        config_from_env({})
    with pytest.raises(ConfigError, match="HANSHU_NATS_URL is 'http://x'"):
        config_from_env({**env, "HANSHU_NATS_URL": "http://x"})
    with pytest.raises(ConfigError, match="HANSHU_ACK_WAIT_SECONDS"):
        config_from_env({**env, "HANSHU_ACK_WAIT_SECONDS": "0"})


def test_only_sns_subscribe_urls_are_fetched():
    from hanshu_gateway.object_notifications import confirmable

    assert confirmable("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription")
    assert confirmable("https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription")
    assert not confirmable("http://sns.us-east-1.amazonaws.com/")  # not https
    assert not confirmable("https://evil.example/sns.us-east-1.amazonaws.com")
    assert not confirmable("https://sns.us-east-1.amazonaws.com.evil.example/")
    assert not confirmable("http://169.254.169.254/latest/meta-data/")
    assert confirmable("http://127.0.0.1:4566/", ("127.0.0.1",))
