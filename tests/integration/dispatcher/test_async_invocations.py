"""Async invocation end to end: gateway -> JetStream -> dispatcher -> gateway -> replica,
on a real nats-server, real dispatcher processes and real runtime replicas."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import nats
import pytest
from hanshu_api.invocation_record import InvocationRecord
from hanshu_api.invocations import (
    InvocationHeaders,
    Origin,
    StoredPolicy,
    StoredRequest,
    idempotency_key,
    new_id,
    record_key,
    route_scope,
    subject_for,
)
from hanshu_api.jetstream import StreamSettings, ensure
from hanshu_api.models import AsyncPolicy, Destination

from tests.support.async_platform import async_function, final_status, get_json
from tests.support.dev_platform import trigger
from tests.support.helpers import eventually
from tests.support.servers import free_port, recording_endpoint

ASYNC = {"X-Hanshu-Invocation-Type": "Async"}


async def call_async(
    http: aiohttp.ClientSession, url: str, body: Any, **headers: str
) -> tuple[int, dict[str, Any], Any]:
    async with http.post(url, json=body, headers={**ASYNC, **headers}) as reply:
        return reply.status, dict(reply.headers), await reply.json()


async def test_an_async_call_is_stored_answered_202_and_runs(async_platform, http):
    platform = async_platform([async_function("work"), trigger("work", "work", path="/work")])
    status, headers, body = await call_async(http, f"{platform.url}/work/a?x=1", {"n": 1})
    assert status == 202
    invocation_id = headers["X-Hanshu-Invocation-Id"]
    assert headers["Location"] == f"/_hanshu/invocations/{invocation_id}"
    assert body["invocationId"] == invocation_id
    assert len(invocation_id) == 32  # 128 random bits

    record = await final_status(platform, invocation_id)
    assert record["state"] == "Succeeded"
    assert record["attempts"] == 1
    assert record["function"] == "work"
    assert {"enqueuedAt", "startedAt", "finishedAt"} <= set(record)
    result = json.loads(record["result"]["body"])
    assert record["result"]["statusCode"] == 200
    # The handler saw the request it was sent, and who it was as an async invocation.
    assert result == {
        "n": 1,
        "path": "/work/a",
        "id": invocation_id,
        "attempt": 1,
        "type": "Async",
    }
    # Function Compute's header name works too.
    async with http.post(
        f"{platform.url}/work", json={"n": 2}, headers={"X-Fc-Invocation-Type": "Async"}
    ) as reply:
        assert reply.status == 202
        second = reply.headers["X-Hanshu-Invocation-Id"]
    assert (await final_status(platform, second))["state"] == "Succeeded"


@pytest.mark.slow
async def test_failures_are_retried_then_failed_with_the_record_sent_on(async_platform, http):
    async with recording_endpoint() as (url, received):
        platform = async_platform(
            [
                async_function(
                    "flaky",
                    **{
                        "async": {
                            "maxRetryAttempts": 2,
                            "destinations": {
                                "onFailure": {"url": url},
                                "onSuccess": {"subject": "results.flaky"},
                            },
                        }
                    },
                ),
                trigger("flaky", "flaky", path="/flaky"),
            ]
        )
        listener = await nats.connect(platform.nats.url)
        successes = await listener.subscribe("results.flaky")
        try:
            _, headers, _ = await call_async(http, f"{platform.url}/flaky", {"fail": True, "n": 7})
            failed_id = headers["X-Hanshu-Invocation-Id"]
            record = await final_status(platform, failed_id)
            assert record["state"] == "Failed"
            assert record["attempts"] == 3  # 1 + maxRetryAttempts
            assert record["error"] == {
                "errorType": "RuntimeError",
                "errorMessage": "asked to fail: 7",
            }
            sent = await eventually(lambda: received, message="the onFailure record")
            assert len(sent) == 1
            assert sent[0]["requestContext"]["requestId"] == failed_id
            assert sent[0]["requestContext"]["condition"] == "RetriesExhausted"
            assert sent[0]["requestContext"]["approximateInvokeCount"] == 3
            assert sent[0]["requestPayload"] == {"fail": True, "n": 7}
            assert sent[0]["responsePayload"]["errorType"] == "RuntimeError"
            runs = [r for r in platform.runs() if r["id"] == failed_id]
            assert [r["attempt"] for r in runs] == [1, 2, 3]

            # A 4xx the function chose is its answer: final at once, never retried.
            _, headers, _ = await call_async(http, f"{platform.url}/flaky", {"status": 422})
            refused = await final_status(platform, headers["X-Hanshu-Invocation-Id"])
            assert (refused["state"], refused["attempts"]) == ("Failed", 1)

            _, headers, _ = await call_async(http, f"{platform.url}/flaky", {"n": 8})
            ok_id = headers["X-Hanshu-Invocation-Id"]
            assert (await final_status(platform, ok_id))["state"] == "Succeeded"
            message = await successes.next_msg(timeout=10)
            success = json.loads(message.data)
            assert success["requestContext"]["condition"] == "Success"
            assert success["responsePayload"]["n"] == 8
        finally:
            await listener.close()


async def test_an_idempotency_key_runs_the_function_once(async_platform, http):
    platform = async_platform([async_function("once"), trigger("once", "once", path="/once")])
    url = f"{platform.url}/once"
    first = await call_async(http, url, {"n": 1}, **{"Idempotency-Key": "order-42"})
    again = await call_async(http, url, {"n": 1}, **{"Idempotency-Key": "order-42"})
    other = await call_async(http, url, {"n": 1}, **{"Idempotency-Key": "order-43"})
    assert first[0] == again[0] == other[0] == 202
    first_id = first[1]["X-Hanshu-Invocation-Id"]
    assert again[1]["X-Hanshu-Invocation-Id"] == first_id
    assert (first[2]["duplicate"], again[2]["duplicate"]) == (False, True)
    assert other[1]["X-Hanshu-Invocation-Id"] != first_id
    await final_status(platform, first_id)
    await final_status(platform, other[1]["X-Hanshu-Invocation-Id"])
    starts = [r for r in platform.runs() if r["what"] == "start"]
    assert sorted(r["id"] for r in starts) == sorted([first_id, other[1]["X-Hanshu-Invocation-Id"]])


async def test_an_event_older_than_max_event_age_expires_unrun(async_platform, http):
    async with recording_endpoint() as (url, received):
        platform = async_platform(
            [
                async_function(
                    "stale",
                    **{
                        "async": {
                            "maxEventAge": "1m",
                            "destinations": {"onFailure": {"url": url}},
                        }
                    },
                ),
                trigger("stale", "stale", path="/stale"),
            ],
            dispatchers=0,
        )
        # Stored 90 s ago, while no dispatcher ran: exactly what the gateway stores,
        # written with the gateway's own functions and a clock 90 s back.
        client = await nats.connect(platform.nats.url)
        try:
            store = await ensure(client, StreamSettings())
            invocation_id = new_id()
            enqueued = time.time() - 90
            origin = Origin("default", "stale", "stale")
            await store.status.create(
                record_key(invocation_id),
                InvocationRecord.new(invocation_id, origin, "Async", enqueued).dumps(),
            )
            policy = AsyncPolicy(
                max_event_age_seconds=60,
                on_failure=Destination(url=url),
            )
            await store.js.publish(
                subject_for(("default", "stale")),
                b'{"n": 1}',
                headers=InvocationHeaders(
                    invocation_id,
                    "Async",
                    enqueued,
                    StoredPolicy.of(policy, 30),
                    StoredRequest("POST", "/stale", (("Content-Type", "application/json"),)),
                    origin,
                ).to_headers(),
            )
        finally:
            await client.close()
        platform.start_dispatcher()
        record = await final_status(platform, invocation_id)
        assert record["state"] == "Expired"
        assert record["attempts"] == 0
        assert platform.runs() == []  # never run
        sent = await eventually(lambda: received, message="the onFailure record")
        assert sent[0]["requestContext"]["condition"] == "EventAgeExceeded"


async def test_a_batch_job_of_200_events_counts_what_failed(async_platform, http):
    platform = async_platform(
        [
            async_function(
                "batch",
                concurrency=20,
                scaling={"maxReplicas": 2, "targetConcurrency": 10},
                **{"async": {"maxRetryAttempts": 0}},
            ),
            trigger("batch", "batch", path="/batch"),
        ],
        HANSHU_DISPATCH_CONCURRENCY="40",
    )
    events = [{"n": n, "fail": n % 10 == 3} for n in range(200)]
    ndjson = "\n".join(json.dumps(event) for event in events)
    async with http.post(
        f"{platform.url}/batch",
        data=ndjson,
        headers={"X-Hanshu-Invocation-Type": "Batch", "Content-Type": "application/x-ndjson"},
    ) as reply:
        assert reply.status == 202
        job = await reply.json()
    assert job["total"] == 200
    assert reply.headers["Location"] == f"/_hanshu/jobs/{job['jobId']}"

    def finished() -> dict[str, Any] | None:
        status, document = get_json(f"{platform.url}{job['status']}")
        assert status == 200, document
        return document if document["state"] == "Finished" else None

    document = await eventually(finished, timeout=90, interval=0.2, message="the job finished")
    assert document["total"] == 200
    assert (document["succeeded"], document["failed"]) == (180, 20)
    assert (document["enqueued"], document["running"]) == (0, 0)
    failed_numbers = sorted(
        int(f["error"]["errorMessage"].rsplit(" ", 1)[1]) for f in document["failedInvocations"]
    )
    assert failed_numbers == [n for n in range(200) if n % 10 == 3]
    # One member, as any invocation.
    status, member = get_json(f"{platform.url}/_hanshu/invocations/{job['jobId']}-0")
    assert (status, member["state"], member["invocationType"]) == (200, "Succeeded", "Batch")


@pytest.mark.slow
async def test_a_backlog_wakes_and_scales_the_function_then_lets_it_go(async_platform, http):
    platform = async_platform(
        [
            async_function(
                "backlog",
                concurrency=1,
                scaling={
                    "maxReplicas": 3,
                    "targetConcurrency": 1,
                    "scaleToZeroGracePeriod": "2s",
                },
            ),
            trigger("backlog", "backlog", path="/backlog"),
        ],
        # The dispatcher alone keeps only one in flight: only the backlog it reports can
        # make the autoscaler add replicas.
        HANSHU_DISPATCH_CONCURRENCY="1",
    )
    assert platform.ready_replicas("backlog") == 0
    ids = []
    for n in range(24):
        _, headers, _ = await call_async(http, f"{platform.url}/backlog", {"n": n, "seconds": 0.25})
        ids.append(headers["X-Hanshu-Invocation-Id"])
    await eventually(
        lambda: platform.ready_replicas("backlog") >= 2,
        timeout=30,
        message="more than one replica for the backlog",
    )
    for invocation_id in ids:
        assert (await final_status(platform, invocation_id, timeout=60))["state"] == "Succeeded"
    await eventually(
        lambda: platform.ready_replicas("backlog") == 0,
        timeout=30,
        message="back to zero once the backlog is done",
    )


async def test_nothing_is_lost_when_a_dispatcher_is_killed_mid_run(async_platform, http):
    platform = async_platform(
        [
            async_function("steady", concurrency=50, scaling={"maxReplicas": 2}),
            trigger("steady", "steady", path="/steady"),
        ],
        dispatchers=2,
        HANSHU_DISPATCH_CONCURRENCY="10",
    )
    ids = []
    for n in range(60):
        _, headers, _ = await call_async(http, f"{platform.url}/steady", {"n": n, "seconds": 0.2})
        ids.append(headers["X-Hanshu-Invocation-Id"])
    await eventually(lambda: len(platform.runs()) >= 10, message="work under way")
    victim = platform.dispatchers[0]
    victim.kill()  # SIGKILL: no goodbye, its invocations stay unacknowledged
    victim.wait()
    states = [(await final_status(platform, i, timeout=60))["state"] for i in ids]
    assert states == ["Succeeded"] * len(ids)
    done = [r["id"] for r in platform.runs() if r["what"] == "done"]
    assert set(done) == set(ids)  # every one ran to the end at least once
    duplicates = len(done) - len(set(done))
    # At least once: what the killed dispatcher held may have run twice; it is counted.
    metrics = await _dispatcher_metric(platform, "hanshu_dispatcher_repeated_runs_total")
    assert metrics >= duplicates


async def test_a_replica_that_dies_mid_invocation_is_retried(async_platform, http):
    platform = async_platform(
        [async_function("crashy"), trigger("crashy", "crashy", path="/crashy")]
    )
    _, headers, _ = await call_async(http, f"{platform.url}/crashy", {"crashFirst": True, "n": 5})
    record = await final_status(platform, headers["X-Hanshu-Invocation-Id"], timeout=60)
    assert (record["state"], record["attempts"]) == ("Succeeded", 2)


async def test_bad_async_calls_get_clear_errors(async_platform, http):
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "keys"},
        "stringData": {"api-key": "s3cret"},
    }
    keyed = trigger("keyed", "work", path="/keyed", auth={"apiKeySecretRef": {"name": "keys"}})
    platform = async_platform(
        [
            async_function("work"),
            trigger("work", "work", path="/work"),
            trigger("ghost", "missing", path="/ghost"),
            keyed,
            secret,
        ],
        dispatchers=0,
    )
    # A Function that does not exist: 404, never a 202 for nothing.
    status, _, body = await call_async(http, f"{platform.url}/ghost", {})
    assert (status, body["errorType"]) == (404, "FunctionNotFound")
    # A type that is none of Sync, Async, Batch.
    async with http.post(
        f"{platform.url}/work", headers={"X-Hanshu-Invocation-Type": "Later"}
    ) as reply:
        assert reply.status == 400
        assert (await reply.json())["errorType"] == "InvalidInvocationType"
    # A batch that is not a list of events.
    async with http.post(
        f"{platform.url}/work", data="[1, 2", headers={"X-Hanshu-Invocation-Type": "Batch"}
    ) as reply:
        assert reply.status == 400
        assert (await reply.json())["errorType"] == "InvalidBatch"
    # Unknown and malformed ids.
    for wanted in ("0" * 32, "not-an-id", "../../etc"):
        status, body = get_json(f"{platform.url}/_hanshu/invocations/{wanted}")
        assert (status, body["errorType"]) == (404, "NotFound")

    # A keyed route: calling needs the key, and so does reading the status.
    status, _, _ = await call_async(http, f"{platform.url}/keyed", {})
    assert status == 401
    status, headers, _ = await call_async(
        http, f"{platform.url}/keyed", {}, **{"X-API-Key": "s3cret"}
    )
    assert status == 202
    location = f"{platform.url}{headers['Location']}"
    assert get_json(location)[0] == 401
    assert get_json(location, {"X-API-Key": "wrong"})[0] == 403
    status, record = get_json(location, {"X-API-Key": "s3cret"})
    assert (status, record["state"]) == (200, "Enqueued")
    assert "authHeader" not in record

    # NATS gone: 503 with Retry-After, never a 202 for an event that was not stored.
    platform.nats.stop()
    async with http.post(f"{platform.url}/work", json={}, headers=ASYNC) as reply:
        assert reply.status == 503
        assert reply.headers["Retry-After"]
        assert (await reply.json())["errorType"] == "AsyncUnavailable"


async def test_what_was_stored_survives_a_nats_restart(async_platform, http):
    platform = async_platform(
        [async_function("durable"), trigger("durable", "durable", path="/durable")],
        dispatchers=0,
    )
    ids = []
    for n in range(5):
        _, headers, _ = await call_async(http, f"{platform.url}/durable", {"n": n})
        ids.append(headers["X-Hanshu-Invocation-Id"])
    platform.nats.stop()
    platform.nats.start()  # same port, same storage directory
    platform.start_dispatcher()
    for invocation_id in ids:
        assert (await final_status(platform, invocation_id, timeout=60))["state"] == "Succeeded"


async def test_a_dispatcher_says_when_it_has_lost_nats(async_platform):
    """What the HanshuNatsUnreachable alert reads: 1 while connected, 0 while NATS is down,
    1 again once it is back."""
    platform = async_platform([async_function("idle")], dispatchers=1)

    def connected() -> list[float]:
        return [
            value for _, value in platform.dispatcher_samples("hanshu_dispatcher_nats_connected")
        ]

    await eventually(lambda: connected() == [1.0], timeout=30, message="connected to NATS")
    platform.nats.stop()
    try:
        await eventually(lambda: connected() == [0.0], timeout=30, message="NATS lost")
    finally:
        platform.nats.start()  # same port: the client reconnects on its own
    await eventually(lambda: connected() == [1.0], timeout=30, message="NATS back")


async def _dispatcher_metric(platform: Any, name: str) -> float:
    """The sum of a counter over the dispatchers still running."""
    total = 0.0
    async with aiohttp.ClientSession() as session:
        for process, port in zip(platform.dispatchers, platform.dispatcher_ports, strict=True):
            if process.poll() is not None:
                continue
            async with session.get(f"http://127.0.0.1:{port}/metrics") as reply:
                for line in (await reply.text()).splitlines():
                    if line.startswith(name):
                        total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_destination_that_keeps_failing_is_counted_and_logged(async_platform, http):
    closed = free_port()  # nothing listens here
    platform = async_platform(
        [
            async_function(
                "orphan",
                **{
                    "async": {
                        "maxRetryAttempts": 0,
                        "destinations": {"onSuccess": {"url": f"http://127.0.0.1:{closed}/"}},
                    }
                },
            ),
            trigger("orphan", "orphan", path="/orphan"),
        ]
    )
    _, headers, _ = await call_async(http, f"{platform.url}/orphan", {"n": 1})
    invocation_id = headers["X-Hanshu-Invocation-Id"]
    assert (await final_status(platform, invocation_id))["state"] == "Succeeded"

    # By the Function whose record it is: what the HanshuDestinationsFailing alert names.
    def failed() -> list[float]:
        return [
            value
            for labels, value in platform.dispatcher_samples(
                "hanshu_dispatcher_destination_deliveries_total"
            )
            if (labels["function"], labels["kind"], labels["result"]) == ("orphan", "url", "failed")
        ]

    await eventually(
        lambda: failed() == [1.0],
        timeout=30,
        message="the failed destination counted",
    )
    logged = platform.dispatcher_logs()
    assert f"destination {{'url': 'http://127.0.0.1:{closed}/'}}" in logged
    assert invocation_id in logged  # the record, whole, in the log


async def test_a_caller_cannot_forge_the_invocation_headers(async_platform, http):
    platform = async_platform(
        [async_function("plain"), trigger("plain", "plain", path="/plain")], dispatchers=0
    )
    forged = {
        "X-Hanshu-Invocation-Id": "forged",
        "X-Hanshu-Attempt": "7",
        "X-Hanshu-Job-Id": "job",
        "X-Hanshu-Invocation-Type": "Sync",
    }
    async with http.post(f"{platform.url}/plain", json={"n": 1}, headers=forged) as reply:
        assert reply.status == 200
        seen = await reply.json()
        request_id = reply.headers["X-Request-Id"]
    # Only the dispatcher says which attempt of which invocation this is.
    assert (seen["id"], seen["attempt"], seen["type"]) == (request_id, 1, "Sync")


async def test_a_key_claimed_by_a_call_that_never_stored_its_event_still_runs(async_platform, http):
    platform = async_platform([async_function("once"), trigger("once", "once", path="/once")])
    # A gateway claimed the key, then died before storing the event (or NATS went away).
    client = await nats.connect(platform.nats.url)
    try:
        store = await ensure(client, StreamSettings())
        orphan = new_id()
        await store.idempotency.create(
            idempotency_key(route_scope("default", "once", None), "order-7"), orphan.encode()
        )
    finally:
        await client.close()
    status, headers, body = await call_async(
        http, f"{platform.url}/once", {"n": 7}, **{"Idempotency-Key": "order-7"}
    )
    # The caller's retry gets the claimed id, and this time the event is stored and runs.
    assert (status, headers["X-Hanshu-Invocation-Id"], body["duplicate"]) == (202, orphan, True)
    assert (await final_status(platform, orphan))["state"] == "Succeeded"
    again = await call_async(
        http, f"{platform.url}/once", {"n": 7}, **{"Idempotency-Key": "order-7"}
    )
    assert again[1]["X-Hanshu-Invocation-Id"] == orphan
    starts = [r for r in platform.runs() if r["what"] == "start"]
    assert [r["id"] for r in starts] == [orphan]  # once
