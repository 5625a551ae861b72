"""Dispatcher metrics: what happened to every async invocation, and what is left to do;
the schedule fires and how late they were."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OUTCOMES = Counter(
    "hanshu_dispatcher_invocations",
    "Async invocations that reached a final state, by function, type and state.",
    ["namespace", "function", "type", "state"],
)
ATTEMPTS = Counter(
    "hanshu_dispatcher_attempts",
    "Attempts made (each a call of the function), by function and how it went.",
    ["namespace", "function", "verdict"],
)
DUPLICATES = Counter(
    "hanshu_dispatcher_duplicate_deliveries",
    "Deliveries of an invocation that had already ended (at-least-once redelivery).",
    ["namespace", "function"],
)
REDELIVERIES_SKIPPED = Counter(
    "hanshu_dispatcher_redeliveries_skipped",
    "Deliveries acknowledged without running because the invocation's status record was "
    "already final (an acknowledgement lost to a NATS restart, a dispatcher that stopped "
    "after its outcome was stored).",
    ["namespace", "function"],
)
REDELIVERIES_DEFERRED = Counter(
    "hanshu_dispatcher_redeliveries_deferred",
    "Deliveries put back for a while because the invocation's attempt may still be running "
    "in another dispatcher (its Running record is younger than the ack deadline).",
    ["namespace", "function"],
)
UNSTORED_OUTCOMES = Counter(
    "hanshu_dispatcher_unstored_outcomes",
    "Attempts whose final record could not be stored (NATS unreachable for too long, or a "
    "later delivery took the invocation over): left unacknowledged, so they run again.",
    ["namespace", "function"],
)
UNACKNOWLEDGED = Counter(
    "hanshu_dispatcher_unacknowledged",
    "Invocations whose final record was stored but whose acknowledgement never reached "
    "NATS: their redelivery is skipped.",
    ["namespace", "function"],
)
REPEATED_RUNS = Counter(
    "hanshu_dispatcher_repeated_runs",
    "Attempts started for an invocation whose previous attempt may still have run to its end "
    "(its dispatcher or replica died mid-run): the function may have run twice.",
    ["namespace", "function"],
)
DESTINATIONS = Counter(
    "hanshu_dispatcher_destination_deliveries",
    "Outcome records sent to destinations, by the Function whose record it is, the "
    "destination's kind (function, url, subject) and result (delivered, failed).",
    ["namespace", "function", "kind", "result"],
)
STREAM_LAG = Gauge(
    "hanshu_dispatcher_stream_lag",
    "Records in a stream Trigger's source not yet taken by its Function, as this dispatcher "
    "last read it (one dispatcher reads each Trigger).",
    ["namespace", "trigger", "function"],
)
NATS_CONNECTED = Gauge(
    "hanshu_dispatcher_nats_connected",
    "1 while this dispatcher is connected to NATS, 0 while it is not (async invocations, "
    "schedules and stream Triggers wait).",
)
BACKLOG = Gauge(
    "hanshu_dispatcher_backlog",
    "Invocations stored and not yet finished, per function.",
    ["namespace", "function"],
)
MALFORMED = Counter(
    "hanshu_dispatcher_malformed_messages",
    "Stored messages without the headers of an invocation (removed).",
)
SCHEDULE_FIRES = Counter(
    "hanshu_dispatcher_schedule_fires",
    "Ticks this dispatcher fired, by Trigger and result: stored (the first of the tick), "
    "duplicate (another dispatcher stored it first) or failed (not stored after retries).",
    ["namespace", "trigger", "result"],
)
SCHEDULE_DELAY = Histogram(
    "hanshu_dispatcher_schedule_fire_delay_seconds",
    "From a tick to its fire stored by the gateway, for the fires this dispatcher stored.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0),
)
