"""What the gateway's bookkeeping costs grows with n, never with n squared: counted, not
timed. Each test counts the unit of work of one hot path (a route identity worked out, a
claim judged, a route compared) for n and for 4n objects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest
from hanshu_api import route_claims
from hanshu_api.models import parse_trigger_spec
from hanshu_gateway.catalog import Catalog, KnownTrigger
from hanshu_gateway.kube_gateway import KubeGateway
from hanshu_gateway.object_watch import ObjectWatches
from hanshu_gateway.routes import Route, RouteTable
from hanshu_gateway.target import parse_target

SIZES = (500, 2000)


@contextmanager
def counting(module: Any, name: str) -> Iterator[list[int]]:
    """Count the calls of module.name (and the items of their first argument, for
    functions that take a collection) while the block runs."""
    original = getattr(module, name)
    count = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        if args and isinstance(args[0], (list, tuple, set, dict, type({}.values()))):
            count[0] += len(args[0])
        return original(*args, **kwargs)

    setattr(module, name, counted)
    try:
        yield count
    finally:
        setattr(module, name, original)


def http_trigger(index: int, created: str = "2026-01-01T00:00:00Z", path: str = "") -> KnownTrigger:
    spec = parse_trigger_spec(
        {"functionRef": {"name": f"fn-{index}"}, "http": {"path": path or f"/fn/{index}"}}, "ns"
    )
    return KnownTrigger("ns", f"t-{index}", created, spec)


def linear(measure: Callable[[int], int], per_object: int) -> None:
    small, large = (measure(n) for n in SIZES)
    assert small <= per_object * SIZES[0], f"{small} units for {SIZES[0]} objects"
    assert large <= per_object * SIZES[1], f"{large} units for {SIZES[1]} objects"


def test_a_relist_works_out_each_route_identity_once() -> None:
    def relist(n: int) -> int:
        triggers = [http_trigger(i) for i in range(n)]
        with counting(route_claims, "route_identity") as count:
            Catalog(10, lambda ns, t: None).set_triggers(triggers)
        return count[0]

    linear(relist, per_object=2)


def bare_gateway(catalog: Any = None) -> KubeGateway:
    """The watch handlers of a KubeGateway, without its server or client."""
    gateway = KubeGateway.__new__(KubeGateway)
    gateway.catalog = catalog or Catalog(10, lambda ns, t: None)
    gateway._conflicts = []
    gateway._slice_owner, gateway._slices_of = {}, {}
    gateway._published, gateway._verifiers = {}, {}
    gateway.objects = ObjectWatches({}, _never_followed, gateway.catalog, lambda: None)
    return gateway


async def _never_followed(*_: Any) -> None:
    raise AssertionError("no kubernetes Trigger here: nothing to watch")


def trigger_object(index: int, path: str = "") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": f"t-{index}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"functionRef": {"name": f"fn-{index}"}, "http": {"path": path or f"/fn/{index}"}},
    }


def test_trigger_events_one_by_one_judge_only_their_own_routes() -> None:
    """The watch's events (a re-connect replays every object): each Trigger's event
    judges the claims on its own route, not every claim (5,000 Triggers once blocked
    the gateway's loop for minutes this way)."""

    def events(n: int) -> int:
        gateway = bare_gateway()
        with counting(route_claims, "route_owners") as count:
            for i in range(n):
                gateway.on_trigger("ADDED", trigger_object(i))
            for i in range(0, n, 2):  # half of them again, moved
                gateway.on_trigger("MODIFIED", trigger_object(i, path=f"/moved/{i}"))
            for i in range(0, n, 3):
                gateway.on_trigger("DELETED", trigger_object(i))
        assert len(gateway.catalog.routes) == n - len(range(0, n, 3))
        return count[0]

    linear(events, per_object=8)


def test_rivals_on_one_route_are_judged_among_themselves() -> None:
    catalog = Catalog(10, lambda ns, t: None)
    catalog.put_trigger(http_trigger(2, created="2026-03-01T00:00:00Z", path="/shop"))
    refused = catalog.put_trigger(http_trigger(1, created="2026-01-01T00:00:00Z", path="/shop"))
    assert [(loser.name, owner.name) for loser, owner in refused] == [("t-2", "t-1")]
    assert catalog.route_of_trigger("ns", "t-1") is not None
    assert catalog.route_of_trigger("ns", "t-2") is None
    catalog.remove_trigger(("ns", "t-1"))  # the owner goes: the next oldest takes over
    assert catalog.route_of_trigger("ns", "t-2") is not None
    assert catalog.conflicts() == []


class CountingHttp:
    """An HttpRoute that counts what is read of it: a route looked at by a match."""

    reads = 0

    def __init__(self, http: Any) -> None:
        self._http = http

    def __getattr__(self, name: str) -> Any:
        CountingHttp.reads += 1
        return getattr(self._http, name)


def test_a_request_looks_at_a_few_routes_whatever_the_table_holds() -> None:
    def requests(n: int) -> int:
        table = RouteTable(
            Route("ns", f"t-{i}", f"fn-{i}", CountingHttp(http_trigger(i).spec.http))  # type: ignore[arg-type]
            for i in range(n)
        )
        CountingHttp.reads = 0
        for i in range(0, n, 10):
            assert table.match("gw.example", parse_target(f"/fn/{i}/x"), "GET").route
        return CountingHttp.reads

    # The table once compared each request with every route (its host, its prefix).
    linear(requests, per_object=1)


def test_a_deep_path_costs_no_more_than_the_deepest_prefix() -> None:
    table = RouteTable([Route("ns", "t", "fn", http_trigger(0, path="/a/b").spec.http)])  # type: ignore[arg-type]
    lookups = [0]

    class CountingPrefixes(dict[Any, Any]):
        def get(self, key: Any, default: Any = None) -> Any:
            lookups[0] += 1
            return super().get(key, default)

    by_prefix = table._any
    by_prefix.groups = CountingPrefixes(by_prefix.groups)
    assert table.match("x", parse_target("/a/b" + "/z" * 10_000), "GET").route is not None
    assert lookups[0] <= 3


@pytest.mark.parametrize("n", SIZES)
def test_endpoint_slice_events_touch_their_own_function(n: int) -> None:
    """A slice's event sends its own Function's endpoints: all of its slices' and only
    theirs; a slice that goes leaves nothing behind."""
    sent: list[int] = []

    class Recording:
        functions: ClassVar[dict[Any, Any]] = {}

        def set_endpoints(self, key: Any, endpoints: list[Any]) -> None:
            sent.append(len(endpoints))

    gateway = bare_gateway(Recording())
    for i in range(n):
        gateway.on_endpoint_slice("ADDED", _slice(f"fn-{i}", f"10.0.{i // 250}.{i % 250}"))
    gateway.on_endpoint_slice("ADDED", _slice("fn-0", "10.9.9.9", name="fn-0-second"))
    assert sent[:n] == [1] * n
    assert sent[-1] == 2  # both of fn-0's slices
    gateway.on_endpoint_slice("DELETED", _slice("fn-0", "", name="fn-0-second"))
    assert sent[-1] == 1
    assert len(gateway._slices_of) == n


def _slice(function: str, address: str, name: str = "") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": name or f"{function}-abcde",
            "labels": {"hanshu.io/function": function},
        },
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}] if address else [],
    }


def test_a_stats_report_carries_what_runs_not_what_is_deployed() -> None:
    """Every second the gateway reports to the autoscaler: 10,000 idle Functions at zero
    would make each report (and its reading) the size of the cluster's catalog."""
    from hanshu_api.models import parse_function_spec
    from hanshu_api.platform import Endpoint

    catalog = Catalog(10, lambda ns, t: None)
    spec = parse_function_spec({"handler": "index.handler", "code": {"image": "x"}})
    for i in range(1000):
        catalog.set_function(("ns", f"fn-{i}"), spec)
    catalog.set_endpoints(("ns", "fn-1"), [Endpoint("10.0.0.1", 8080)])
    catalog.functions[("ns", "fn-2")].stats.in_flight = 1  # waiting for a replica
    catalog.functions[("ns", "fn-3")].stats.arrivals = 1  # served since the last report
    assert sorted(key[1] for key, _ in catalog.all_stats()) == ["fn-1", "fn-2", "fn-3"]


def test_a_trigger_that_moves_from_a_route_to_a_bucket_keeps_its_bucket() -> None:
    catalog = Catalog(10, lambda ns, t: None)
    catalog.put_trigger(http_trigger(1))
    bucket = parse_trigger_spec(
        {"functionRef": {"name": "fn-1"}, "objectStorage": {"bucket": "photos"}}, "ns"
    )
    catalog.put_trigger(KnownTrigger("ns", "t-1", "2026-01-01T00:00:00Z", bucket))
    assert catalog.route_of_trigger("ns", "t-1") is None
    assert ("ns", "t-1") in catalog.object_triggers


def test_loads_share_one_pause_of_the_collector_and_restore_it() -> None:
    import gc

    from hanshu_api.loop_lag import collector_paused

    assert gc.isenabled()
    with collector_paused():
        with collector_paused():  # a second watch's list, at the same time
            assert not gc.isenabled()
        assert not gc.isenabled()  # the first one is still loading
    assert gc.isenabled()
    gc.disable()  # a process that runs without the collector keeps it off
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
