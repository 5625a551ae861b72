"""The gateway's per-request meters, as /metrics shows them (Prometheus' text format)."""

from __future__ import annotations

from hanshu_gateway import metrics
from hanshu_gateway.stats import FunctionStats
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


def _samples(name: str, **labels: str) -> dict[str, float]:
    """The samples of one family for one label set, by sample name (+ le for buckets)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(generate_latest().decode()):
        if family.name != name:
            continue
        for sample in family.samples:
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                le = sample.labels.get("le")
                found[sample.name + (f"[{le}]" if le else "")] = sample.value
    return found


def test_latency_buckets_are_cumulative_and_a_bound_belongs_to_its_bucket() -> None:
    meters = metrics.FunctionMeters("metrics-test", "latency", FunctionStats())
    for seconds in (0.0005, 0.001, 0.003, 100.0):
        meters.latency.observe(seconds)
    found = _samples(
        "hanshu_gateway_request_duration_seconds", namespace="metrics-test", function="latency"
    )
    bucket = "hanshu_gateway_request_duration_seconds_bucket"
    assert found[f"{bucket}[0.001]"] == 2  # 0.001 itself is "le 0.001"
    assert found[f"{bucket}[0.0025]"] == 2
    assert found[f"{bucket}[0.005]"] == 3
    assert found[f"{bucket}[60.0]"] == 3
    assert found[f"{bucket}[+Inf]"] == 4
    assert found["hanshu_gateway_request_duration_seconds_count"] == 4
    assert abs(found["hanshu_gateway_request_duration_seconds_sum"] - 100.0045) < 1e-9
    created = (
        'hanshu_gateway_request_duration_seconds_created{function="latency",'
        'namespace="metrics-test"}'
    )
    assert created in generate_latest().decode()


def test_a_function_created_again_keeps_counting() -> None:
    first = metrics.FunctionMeters("metrics-test", "again", FunctionStats())
    first.latency.observe(0.01)
    first.bill("Sync", 0.25, 200)
    second = metrics.FunctionMeters("metrics-test", "again", FunctionStats())
    second.latency.observe(0.01)
    second.bill("Sync", 0.25, 200)
    second.bill("Async", 1.0, 500)
    latency = _samples(
        "hanshu_gateway_request_duration_seconds", namespace="metrics-test", function="again"
    )
    assert latency["hanshu_gateway_request_duration_seconds_count"] == 2
    sync = _samples(
        "hanshu_gateway_gb_seconds", namespace="metrics-test", function="again", type="Sync"
    )
    assert sync["hanshu_gateway_gb_seconds_total"] == 0.5
    calls = _samples(
        "hanshu_gateway_invocations",
        namespace="metrics-test",
        function="again",
        type="Async",
        code="500",
    )
    assert calls["hanshu_gateway_invocations_total"] == 1


def test_requests_are_counted_by_trigger_and_code() -> None:
    for code in (200, 200, 404):
        metrics.count_request("metrics-test", "counted", "public", code)
    ok = _samples("hanshu_gateway_requests", function="counted", trigger="public", code="200")
    assert ok["hanshu_gateway_requests_total"] == 2
    missing = _samples("hanshu_gateway_requests", function="counted", code="404")
    assert missing["hanshu_gateway_requests_total"] == 1


def test_an_idle_function_adds_no_latency_series_until_its_first_request() -> None:
    meters = metrics.FunctionMeters("metrics-test", "idle", FunctionStats())
    idle = _samples(
        "hanshu_gateway_request_duration_seconds", namespace="metrics-test", function="idle"
    )
    assert idle == {}  # 10,000 idle Functions would be 170,000 samples of zeros
    meters.latency.observe(0.02)
    served = _samples(
        "hanshu_gateway_request_duration_seconds", namespace="metrics-test", function="idle"
    )
    assert served["hanshu_gateway_request_duration_seconds_count"] == 1


def test_the_memory_limit_is_read_from_the_cgroup_and_none_when_unlimited(tmp_path) -> None:
    assert metrics.parse_memory_limit("536870912\n") == 512 * 1024 * 1024
    assert metrics.parse_memory_limit("max\n") is None  # cgroup v2 without a limit
    assert metrics.parse_memory_limit("9223372036854771712\n") is None  # v1 without one
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    v1.write_text("268435456\n")
    # v2's file first; a machine with only v1's reads v1's.
    assert metrics.cgroup_memory_limit((str(v2), str(v1))) == 256 * 1024 * 1024
    v2.write_text("max\n")
    assert metrics.cgroup_memory_limit((str(v2), str(v1))) is None
    assert metrics.cgroup_memory_limit((str(tmp_path / "absent"),)) is None


def test_the_memory_limit_shows_as_scraped_and_follows_a_resize(tmp_path) -> None:
    limit_file = tmp_path / "memory.max"
    limit_file.write_text("536870912\n")
    collector = metrics.MemoryLimit((str(limit_file),))
    (family,) = collector.collect()
    assert family.name == "hanshu_gateway_memory_limit_bytes"
    assert [sample.value for sample in family.samples] == [536870912]
    limit_file.write_text("1073741824\n")  # resized in place
    (family,) = collector.collect()
    assert [sample.value for sample in family.samples] == [1073741824]
    limit_file.write_text("max\n")
    (family,) = collector.collect()
    assert family.samples == []
