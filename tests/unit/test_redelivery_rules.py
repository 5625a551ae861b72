"""The rules that keep a redelivery from rerunning finished work, without a server: which
record settles a delivery, when a Running record may belong to a live attempt, and how
fast a write to NATS is tried again."""

from __future__ import annotations

import pytest
from hanshu_api.error_body import ErrorBody
from hanshu_api.invocation_record import InvocationRecord, Origin, State
from hanshu_dispatcher.outcome import wait_for_live_attempt
from hanshu_dispatcher.worker import store_retry_delay

ENQUEUED = 1_800_000_000.0


def record(invocation_id: str = "abc") -> InvocationRecord:
    return InvocationRecord.new(invocation_id, Origin("shop", "checkout"), "Async", ENQUEUED)


@pytest.mark.parametrize("state", [State.SUCCEEDED, State.FAILED, State.EXPIRED])
def test_a_final_record_of_the_same_invocation_settles_its_delivery(state: State) -> None:
    ended = record().running(1, ENQUEUED).finished(state, "Success", ENQUEUED + 1)
    assert ended.settles("abc")
    assert not ended.settles("another")  # a record under the key that is not this one's


def test_a_record_still_going_settles_nothing() -> None:
    going = record()
    assert not going.settles("abc")
    assert not going.running(1, ENQUEUED).settles("abc")
    retrying = going.retrying(1, ErrorBody("HTTP500", "boom"), ENQUEUED + 2)
    assert not retrying.settles("abc")


def test_the_age_of_a_record_survives_the_wire() -> None:
    written = record().running(1, ENQUEUED).touched(ENQUEUED + 10)
    read = InvocationRecord.parse(written.dumps())
    assert read.seconds_since_update(ENQUEUED + 12.5) == pytest.approx(2.5, abs=0.001)
    assert (
        InvocationRecord.parse({**read.encode(), "updatedAt": "soon"}).seconds_since_update(
            ENQUEUED
        )
        is None
    )


def test_a_young_running_record_is_waited_out_and_an_old_one_runs_at_once() -> None:
    # Written 1 s ago with a 30 s ack deadline: its attempt may be live for 29 s more.
    assert wait_for_live_attempt(1.0, 30.0) == 29.0
    # As old as the deadline: its dispatcher stopped heartbeating, so it died.
    assert wait_for_live_attempt(30.0, 30.0) == 0.0
    assert wait_for_live_attempt(300.0, 30.0) == 0.0
    assert wait_for_live_attempt(None, 30.0) == 0.0  # no time to go by: run


def test_writes_to_nats_are_tried_again_soon_and_never_slower_than_half_a_second() -> None:
    delays = [store_retry_delay(n) for n in range(1, 12)]
    assert delays[0] == pytest.approx(0.05)
    assert delays == sorted(delays)
    assert max(delays) == 0.5
