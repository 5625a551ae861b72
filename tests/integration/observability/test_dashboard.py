"""The dashboard, proven: a real Prometheus scrapes a real platform (``hanshu dev``: the
gateway, the autoscaler and the dispatcher in one process, each replica a runtime process)
while a short mixed load runs: sync calls, async calls, a cold start, a handler raising,
requests refused with 429. Then every panel of charts/hanshu/dashboards/hanshu.json and
every rule in charts/hanshu/files/alerts/ is evaluated through Prometheus' HTTP API, and
the panels' figures are checked against what the load did.

Exact figures: the counted load runs between two scrapes, ``baseline`` and ``final``, and
every window (``$__rate_interval``) is exactly the time between them, evaluated at the
final scrape. A range then starts and ends on a sample, so Prometheus extrapolates nothing:
``increase`` is the calls made, and ``rate`` is the calls made over the window."""

from __future__ import annotations

import json
import re
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest
from hanshu_api.invocations import FINAL_STATES, HTTP_GATEWAY_ERROR
from prometheus_client.parser import text_string_to_metric_families

from tests.support.dev_platform import Platform, function, trigger
from tests.support.prometheus import (
    Panel,
    Prometheus,
    Series,
    concrete,
    dashboard_panels,
    rules_in,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "charts" / "hanshu" / "dashboards" / "hanshu.json"
RULES = ROOT / "charts" / "hanshu" / "files" / "alerts"
SAMPLE_RULES = ROOT / "tests" / "support" / "sample_rules.yaml"

HANDLERS = textwrap.dedent("""
    import json
    import time

    # A slow start: a cold request waits across a scrape (1 s apart), so Prometheus sees
    # it queued, and long enough for the test to send one more meanwhile.
    time.sleep(1.5)


    def handle(event, context):
        if event.get("path", "").endswith("/fail"):
            raise RuntimeError("asked to fail")
        # An async call asks for a while, so its invocation stays in the backlog across a
        # scrape (the dispatcher's backlog gauge is set once a second).
        time.sleep(float(json.loads(event.get("body") or "{}").get("seconds", 0)))
        return {"ok": True, "type": context.invocation_type}
""")

# The counted load.
SYNC_CALLS = 6  # the first of them a cold start
FAILING_CALLS = 3
ASYNC_CALLS = 3
ASYNC_SECONDS = 1.5
MEMORY_GB = 0.5  # the Function's memory limit, 512Mi: GB-seconds are this times seconds
EVENT_CALLS = 2  # raw events, as event sources send them (POST /_hanshu/invoke/...)
LIMITED_CALLS = 5  # to a route allowing one request every 10 s: all but one refused at most

T = TypeVar("T")


def poll(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """``probe()`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last is not None and last is not False:
            return last  # type: ignore[return-value]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g}s (last seen: {last!r})")
        time.sleep(0.1)


class Reply(NamedTuple):
    code: int
    # The gateway's reason for a refusal (X-Hanshu-Gateway-Error: RateLimited, QueueFull).
    refusal: str | None = None


def call(url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> Reply:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()
            return Reply(int(reply.status))
    except urllib.error.HTTPError as refused:
        refused.read()
        return Reply(int(refused.code), refused.headers.get(HTTP_GATEWAY_ERROR))


def queued(platform: Platform, function_name: str) -> float:
    """The requests waiting for the Function's replica, as the gateway counts them now."""
    with urllib.request.urlopen(f"{platform.internal_url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "hanshu_gateway_queued"
        for sample in family.samples
        if sample.labels.get("function") == function_name
    )


def invoke_async(platform: Platform, seconds: float = 0.0) -> str:
    request = urllib.request.Request(
        f"{platform.url}/shop",
        data=json.dumps({"seconds": seconds}).encode(),
        headers={"X-Hanshu-Invocation-Type": "Async", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 202
        return str(json.load(reply)["invocationId"])


def async_finished(platform: Platform, invocation_ids: list[str]) -> bool:
    for invocation_id in invocation_ids:
        url = f"{platform.url}/_hanshu/invocations/{invocation_id}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            record = json.load(reply)
        if record["state"] not in FINAL_STATES:
            return False
        assert record["state"] == "Succeeded", record
    return True


class Load:
    """What the counted load did, as its caller saw it."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.refusals: dict[str, int] = {}
        self.async_ids: list[str] = []
        self.events = 0

    def note(self, reply: Reply) -> None:
        self.codes[str(reply.code)] = self.codes.get(str(reply.code), 0) + 1
        if reply.refusal:
            self.refusals[reply.refusal] = self.refusals.get(reply.refusal, 0) + 1


def cold_call_and_queue_full(platform: Platform, load: Load) -> None:
    """shop at zero replicas, and a queue limit of 1: one request waits for the cold start,
    and one more meanwhile is refused with 429 QueueFull."""
    with ThreadPoolExecutor(1) as background:
        cold = background.submit(call, f"{platform.url}/shop")
        poll(lambda: queued(platform, "shop") == 1, "the cold request waiting for shop")
        refused = call(f"{platform.url}/shop")
        assert refused == Reply(429, "QueueFull"), refused
        load.note(refused)
        load.note(cold.result())


def send_event(platform: Platform, load: Load) -> None:
    """An event as an event source sends it, on the gateway's internal port (billed as
    type Event; not a public request, so not in hanshu_gateway_requests_total)."""
    url = f"{platform.internal_url}/_hanshu/invoke/default/shop"
    assert call(url, {"Content-Type": "application/json"}, b'{"source": "test"}').code == 200
    load.events += 1


def run_load(platform: Platform, load: Load) -> None:
    cold_call_and_queue_full(platform, load)
    for _ in range(SYNC_CALLS - 1):
        load.note(call(f"{platform.url}/shop"))
    for _ in range(FAILING_CALLS):
        load.note(call(f"{platform.url}/shop/fail"))
    for _ in range(LIMITED_CALLS):
        load.note(call(f"{platform.url}/limited"))
    for _ in range(EVENT_CALLS):
        send_event(platform, load)
    for _ in range(ASYNC_CALLS):
        load.async_ids.append(invoke_async(platform, ASYNC_SECONDS))
        load.note(Reply(202))
    poll(lambda: async_finished(platform, load.async_ids), "the async invocations ended")


def total(series: list[Series], **labels: str) -> float:
    return sum(s.value for s in series if all(s.labels.get(k) == v for k, v in labels.items()))


def scraped_at(prometheus: Prometheus, conditions: dict[str, float]) -> float | None:
    """The time of the latest scrape in which each expression (one number) had its wanted
    value, once Prometheus has one (one target: every series comes from the same scrape)."""
    together = " and on() ".join(f"(({e}) == {wanted})" for e, wanted in conditions.items())
    if not prometheus.query(together):
        return None
    return prometheus.query("max(timestamp(hanshu_gateway_requests_total))")[0].value


def test_every_panel_and_rule_evaluates_and_the_panels_count_what_the_load_did(
    platform_factory: Any, prometheus_factory: Any
) -> None:
    scaling = {"scaleToZeroGracePeriod": "1s", "targetConcurrency": 5, "maxReplicas": 1}
    platform: Platform = platform_factory(
        [
            function(
                "shop",
                "handlers.handle",
                HANDLERS,
                scaling=scaling,
                resources={"limits": {"memory": "512Mi"}},
            ),
            trigger("shop", "shop", path="/shop"),
            trigger(
                "shop-limited",
                "shop",
                path="/limited",
                rateLimit={"requestsPerSecond": 0.1, "burst": 1},
            ),
        ],
        # One request may wait for a replica; the next is refused (429 QueueFull).
        "--queue-limit",
        "1",
    )
    # Dev mode serves every component's metrics on the gateway's internal /metrics (one
    # process, one registry): one target, so every series has the same scrape times.
    # Its job is the gateway's, named as the chart's ServiceMonitor names it (the rules'
    # component-absent alerts look for hanshu-<component>).
    prometheus: Prometheus = prometheus_factory(
        {"hanshu-gateway": [platform.internal_url.removeprefix("http://")]}
    )
    poll(prometheus.targets_up, "Prometheus' first scrape of the platform")

    # Warm-up: every series the counted load moves exists before it (a series born inside
    # a window counts from its first sample, not from zero).
    warm = Load()
    cold_call_and_queue_full(platform, warm)
    warm.note(call(f"{platform.url}/shop/fail"))
    for _ in range(2):
        warm.note(call(f"{platform.url}/limited"))
    warm.async_ids.append(invoke_async(platform))
    warm.note(Reply(202))
    send_event(platform, warm)
    poll(lambda: async_finished(platform, warm.async_ids), "the warm-up async invocation ended")
    assert warm.refusals == {"QueueFull": 1, "RateLimited": 1}, warm.refusals
    # Then the Function scales to zero, so the counted load starts with a cold start.
    poll(lambda: platform.ready_replicas("shop") == 0, "shop scaling to zero")
    warm_requests = sum(warm.codes.values())
    baseline = poll(
        lambda: scraped_at(
            prometheus,
            {
                "sum(hanshu_gateway_requests_total)": warm_requests,
                'sum(hanshu_gateway_invocations_total{type="Event"})': warm.events,
                'sum(hanshu_function_replicas{function="shop", state="ready"})': 0,
            },
        ),
        "a scrape of the warm-up's counters with shop at zero replicas",
    )

    load = Load()
    run_load(platform, load)
    final = poll(
        lambda: scraped_at(
            prometheus,
            {
                "sum(hanshu_gateway_requests_total)": warm_requests + sum(load.codes.values()),
                'sum(hanshu_gateway_invocations_total{type="Event"})': warm.events + EVENT_CALLS,
                'sum(hanshu_dispatcher_invocations_total{state="Succeeded"})': 1 + ASYNC_CALLS,
            },
        ),
        "a scrape of the load's final counters",
    )
    window_ms = round((final - baseline) * 1000)
    window = window_ms / 1000
    values = {
        "namespace": ".*",
        "function": ".*",
        "version": ".*",  # the per-version panel repeats over it (issue 28): all of them
        "__rate_interval": f"{window_ms}ms",
    }

    results: dict[tuple[str, str], list[Series]] = {}
    panels = dashboard_panels(json.loads(DASHBOARD.read_text()))
    for panel in panels:
        for legend, expression in panel.targets:
            query = concrete(expression, values)
            if not is_over_a_window(query):
                # A gauge: what the panel's graph showed over the load, its peak (a
                # gauge of nothing left to do, like the backlog, goes when emptied).
                query = f"max_over_time(({query})[{window_ms}ms:250ms])"
            found = prometheus.query(query, at=final)
            assert found, f"panel {panel.title!r} ({legend}) returned no series: {expression}"
            assert all(s.labels.get("function") for s in found), (
                f"panel {panel.title!r} ({legend}) does not group by function: {found}"
            )
            results[panel.title, legend] = found
    print_table(panels, results, window)

    def panel(title_part: str, legend_part: str = "") -> list[Series]:
        matching = [
            found
            for (title, legend), found in results.items()
            if title_part in title and legend_part in legend
        ]
        assert len(matching) == 1, f"one panel query for {title_part!r}/{legend_part!r}"
        return matching[0]

    rate_limited = load.refusals.get("RateLimited", 0)
    assert rate_limited >= LIMITED_CALLS - 1, load.refusals
    assert load.refusals.get("QueueFull") == 1, load.refusals
    # Requests by code: the rate over the window is what the caller saw, code by code.
    requests = panel("Requests per second")
    for code, count in load.codes.items():
        assert total(requests, function="shop", code=code) * window == pytest.approx(count), code
    # The per-version panel: every request here was $LATEST's (no version published).
    by_version = panel("Version $version", "req/s")
    assert total(by_version, function="shop") * window == pytest.approx(sum(load.codes.values()))
    # 429s by Trigger: the rate limit's on shop-limited, the queue's on shop.
    throttled = panel("Throttled", "via")
    assert total(throttled, trigger="shop-limited") * window == pytest.approx(rate_limited)
    assert total(throttled, trigger="shop") * window == pytest.approx(1)
    assert total(panel("Throttled", "queue full"), function="shop") * window == pytest.approx(1)
    # Invocations by type: each call that reached a replica, sync and async apart.
    invocations = panel("Invocations per second")
    sync_invoked = SYNC_CALLS + FAILING_CALLS + (LIMITED_CALLS - rate_limited)
    assert total(invocations, function="shop", type="Sync") * window == pytest.approx(sync_invoked)
    assert total(invocations, function="shop", type="Async") * window == pytest.approx(ASYNC_CALLS)
    assert total(invocations, function="shop", type="Event") * window == pytest.approx(EVENT_CALLS)
    # Errors: the handler raising, no more.
    assert total(panel("Errors per second"), function="shop") * window == pytest.approx(
        FAILING_CALLS
    )
    # The async path's outcomes, as the dispatcher recorded them.
    outcomes = panel("Async invocations")
    assert total(outcomes, function="shop", state="Succeeded") * window == pytest.approx(
        ASYNC_CALLS
    )
    # At least the one cold start the load began with (per minute, over the window).
    assert total(panel("Cold starts", "cold starts"), function="shop") * window / 60 >= 1
    assert total(panel("Cold starts", "p90"), function="shop") > 0
    assert total(panel("Latency", "p99"), function="shop") > 0
    assert total(panel("GB-seconds"), function="shop", type="Sync") > 0
    # The async calls' GB-seconds: their handler's sleep at the Function's memory, and
    # the call's own time on top (the per hour figure over the window).
    async_gb_seconds = total(panel("GB-seconds"), function="shop", type="Async") * window / 3600
    assert async_gb_seconds == pytest.approx(ASYNC_CALLS * ASYNC_SECONDS * MEMORY_GB, rel=0.25)
    assert total(panel("GB-seconds"), function="shop", type="Event") > 0
    # The gauges' peaks: shop scaled from zero to its one replica; the async calls waited.
    assert total(panel("Replicas", "desired"), function="shop") == 1
    assert total(panel("Replicas", "ready"), function="shop") == 1
    assert total(panel("Async backlog"), function="shop") >= 1
    # Each state below lasted over a scrape interval: the cold request's wait (1.5 s of
    # start-up), the async calls' 1.5 s runs.
    assert total(panel("Requests in flight", "in flight"), function="shop") >= 1
    assert total(panel("Requests in flight", "queued"), function="shop") == 1

    # Every rule shipped with the chart is valid PromQL over these series.
    rule_files = sorted(RULES.glob("*.yaml"))
    assert rule_files, f"no rule file under {RULES}: the chart ships its alert rules there"
    print("\nthe rules, evaluated at the end of the load (series: alerts that would fire):")
    for rule_file in [*rule_files, SAMPLE_RULES]:
        for rule in rules_in(rule_file):
            found = prometheus.query(rule.expression, at=final)  # QueryFailed names it
            print(f"  {rule.name:44} {len(found):3} series  ({Path(rule.source).name})")


def is_over_a_window(expression: str) -> bool:
    """Whether the expression reads a range (rate, increase), not a gauge's last value."""
    return "[" in expression


def legend_of(legend: str, labels: dict[str, str]) -> str:
    """Grafana's legend for a series: each ``{{label}}`` replaced by its value."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), legend)


def print_table(
    panels: list[Panel], results: dict[tuple[str, str], list[Series]], window: float
) -> None:
    """Panel -> value of each of its series (pytest -s shows it)."""
    print(f"\nthe dashboard after the load (window {window:.3f} s; gauges: their peak):")
    print(f"  {'panel':58} {'series':30} {'value':>10} {'count':>6}")
    for panel in panels:
        for legend, expression in panel.targets:
            for series in results[panel.title, legend]:
                shown = legend_of(legend, series.labels)
                count = ""
                if "rate(" in expression and "histogram_quantile" not in expression:
                    # A rate over the window (times 60 or 3600 for per minute or hour):
                    # the count in the window is what the load is checked against.
                    per = re.search(r"\*\s*(\d+)\s*$", expression)
                    count = f"{series.value * window / (int(per[1]) if per else 1):.4g}"
                print(f"  {panel.title[:58]:58} {shown:30} {series.value:10.4g} {count:>6}")
