"""The operator's hot paths stay linear in the number of Functions and Triggers.

Each test drives a path for n objects through a counting fake of the Kubernetes API (or
of the comparison at the heart of the path) and fails when the work grows faster than
c * n: the issue this guards against (#23) was 5,000 Triggers costing 25 million route
computations, and an operator that listed every Trigger once per deleted Function.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable, Mapping
from typing import Any

import kopf
import pytest
from hanshu_api import API_VERSION, TRIGGER_PLURAL
from hanshu_api.keyed_locks import KeyedLocks
from hanshu_api.kube import path_for
from hanshu_api.models import ApiKeyAuth, HttpRoute
from hanshu_api.platform import FunctionKey
from hanshu_api.route_claims import RouteClaim, RouteKey
from hanshu_operator import api_key_publisher, route_ownership, trigger_status, triggers
from hanshu_operator.config import OperatorConfig
from hanshu_operator.metrics import REPLICA_COUNTS
from hanshu_operator.state import OperatorState
from hanshu_operator.trigger_index import TriggerIndex

NAMESPACE = "team"


class CountingKube:
    """The Kubernetes API as a dictionary of objects by path, counting every call and
    every object a call returns (a LIST of n returns n)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.objects_read = 0

    def add(self, path: str, body: dict[str, Any]) -> None:
        self.objects[path] = body

    async def get(self, path: str) -> dict[str, Any] | None:
        self.calls["get"] += 1
        found = self.objects.get(path)
        self.objects_read += found is not None
        return found

    async def list_items(self, path: str, **_: Any) -> list[dict[str, Any]]:
        self.calls["list"] += 1
        items = [body for key, body in self.objects.items() if key.startswith(f"{path}/")]
        self.objects_read += len(items)
        return items

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.calls["patch"] += 1
        target = self.objects.setdefault(path.removesuffix("/status"), {})
        for key, value in body.items():
            target[key] = value
        return target

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.calls["create"] += 1
        return dict(body)

    async def delete(self, path: str) -> None:
        self.calls["delete"] += 1
        self.objects.pop(path, None)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def operator_with(kube: CountingKube) -> tuple[OperatorState, kopf.Memo]:
    state = OperatorState(config=OperatorConfig(), kube=kube)  # type: ignore[arg-type]
    memo = kopf.Memo()
    memo["hanshu"] = state
    return state, memo


def trigger_body(name: str, function: str, **http: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": {"functionRef": {"name": function}, "http": {"path": f"/{name}", **http}},
        # Reconciled once already: the other writers only re-judge a Trigger with a status.
        "status": {
            "conditions": [
                {
                    "type": "Valid",
                    "status": "True",
                    "reason": "Valid",
                    "message": "the spec is valid",
                    "lastTransitionTime": "2026-12-01T00:00:00Z",
                }
            ]
        },
    }


def trigger_path(name: str) -> str:
    return path_for(API_VERSION, TRIGGER_PLURAL, NAMESPACE, name)


def claim(index: int, path: str | None = None, created: str = "2026-12-01T00:00:00Z") -> RouteClaim:
    return RouteClaim.of(
        NAMESPACE, f"trg-{index}", created, HttpRoute(path=path or f"/trg-{index}")
    )


def route_index(claims: Iterable[RouteClaim]) -> dict[RouteKey, list[RouteClaim]]:
    """What kopf's index of route claims holds: route identity -> the claims on it."""
    index: dict[RouteKey, list[RouteClaim]] = collections.defaultdict(list)
    for each in claims:
        index[each.route].append(each)
    return dict(index)


@pytest.mark.parametrize("count", [500, 2000])
def test_judging_every_trigger_compares_only_the_claims_on_its_own_route(
    count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n Triggers, most on routes of their own, ten on one contested route: judging each
    of them looks at the claims of its route only, c * n in all, never n * n."""
    compared = 0
    real_route_owners = trigger_status.route_owners

    def counting_route_owners(claims: Iterable[RouteClaim]) -> Any:
        nonlocal compared
        claims = list(claims)
        compared += len(claims)
        return real_route_owners(claims)

    monkeypatch.setattr(trigger_status, "route_owners", counting_route_owners)
    contested = [claim(i, "/shared", f"2026-12-01T00:00:{i:02d}Z") for i in range(10)]
    claims = contested + [claim(i) for i in range(10, count)]
    routes = route_index(claims)

    owners = [trigger_status.route_owner(each, routes) for each in claims]

    assert compared <= 2 * count
    # And the verdicts are still right: the oldest on /shared owns it, nobody else loses.
    assert owners[0] is None
    assert all(owner == contested[0] for owner in owners[1:10])
    assert all(owner is None for owner in owners[10:])


@pytest.mark.parametrize("count", [500, 2000])
def test_a_moved_claim_rejudges_only_the_rivals_of_its_two_routes(count: int) -> None:
    claims = [claim(i) for i in range(count)]
    routes = route_index(claims)
    moved = claims[0]
    # trg-0 moves onto trg-1's route: only trg-1 (its new rival) is re-judged.
    to = RouteClaim.of(NAMESPACE, moved.name, moved.created, HttpRoute(path="/trg-1"))
    routes = route_index([to, *claims[1:]])

    rivals = route_ownership.rivals_to_recheck(moved.key, (moved, to), routes)

    assert [rival.name for rival in rivals] == ["trg-1"]


@pytest.mark.parametrize("count", [300, 1200])
async def test_deleting_functions_reads_only_their_own_triggers(count: int) -> None:
    """Deleting n Functions (each called by one Trigger) re-judges n Triggers: the
    Triggers come from the index, so the API reads are c * n, not a LIST of every
    Trigger per deleted Function (n * n objects read)."""
    kube = CountingKube()
    state, memo = operator_with(kube)
    for i in range(count):
        kube.add(trigger_path(f"trg-{i}"), trigger_body(f"trg-{i}", f"fn-{i}"))
        body = kube.objects[trigger_path(f"trg-{i}")]
        state.triggers.observe(NAMESPACE, f"trg-{i}", body["metadata"], body["spec"])

    for i in range(count):
        await triggers.unbind_triggers_of_deleted_function(
            type="DELETED", name=f"fn-{i}", namespace=NAMESPACE, memo=memo
        )

    assert kube.calls["list"] == 0
    assert kube.objects_read <= 2 * count
    assert kube.total <= 4 * count
    unbound = [
        next(
            c
            for c in kube.objects[trigger_path(f"trg-{i}")]["status"]["conditions"]
            if c["type"] == "FunctionBound"
        )
        for i in range(count)
    ]
    assert {c["reason"] for c in unbound} == {"FunctionNotFound"}
    assert state.locks_in_use() == 0


async def test_a_deleted_function_leaves_nothing_behind_in_the_operator() -> None:
    kube = CountingKube()
    state, memo = operator_with(kube)
    key: FunctionKey = (NAMESPACE, "fn-0")
    state.warned[key] = (None, "CrashLoop", "x")
    REPLICA_COUNTS.set(key, 1, 1)

    await triggers.unbind_triggers_of_deleted_function(
        type="DELETED", name="fn-0", namespace=NAMESPACE, memo=memo
    )

    assert key not in state.warned
    assert REPLICA_COUNTS.get(key) is None


@pytest.mark.parametrize("count", [300, 1200])
async def test_secret_events_republish_only_the_triggers_that_use_each_secret(
    count: int,
) -> None:
    """n Triggers with a key Secret each: an event for each Secret re-publishes one
    Trigger, c * n API calls in all; a Secret nobody uses costs no call at all."""
    kube = CountingKube()
    state, memo = operator_with(kube)
    for i in range(count):
        body = trigger_body(
            f"trg-{i}",
            f"fn-{i}",
            auth={"apiKeySecretRef": {"name": f"keys-{i}", "key": "api-key"}},
        )
        kube.add(trigger_path(f"trg-{i}"), body)
        kube.add(
            path_for("v1", "secrets", NAMESPACE, f"keys-{i}"),
            {"metadata": {"name": f"keys-{i}"}, "data": {"api-key": "a2V5LTE="}},
        )
        state.triggers.observe(NAMESPACE, f"trg-{i}", body["metadata"], body["spec"])
    assert state.triggers.key_refs[(NAMESPACE, "keys-7")] == [
        ("trg-7", ApiKeyAuth(secret_name="keys-7", secret_key="api-key"))
    ]

    for i in range(count):
        await api_key_publisher.republish_keys_of_changed_secret(
            namespace=NAMESPACE, name=f"keys-{i}", memo=memo
        )
        await api_key_publisher.republish_keys_of_changed_secret(
            namespace=NAMESPACE, name=f"unrelated-{i}", memo=memo
        )

    published = kube.calls["create"] + kube.calls["patch"]
    assert published >= count  # every Trigger's verifiers, and its status
    assert kube.calls["list"] == 0
    assert kube.total <= 8 * count
    assert state.locks_in_use() == 0


async def test_keyed_locks_serialise_one_key_and_keep_nothing_once_released() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    order: list[str] = []

    async def hold(key: str, label: str, release: asyncio.Event) -> None:
        async with locks.held(key):
            order.append(f"{label} in")
            await release.wait()
            order.append(f"{label} out")

    first, second = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(hold("fn", "a", first))
    b = asyncio.create_task(hold("fn", "b", second))
    other = asyncio.create_task(hold("other", "c", second))
    await asyncio.sleep(0)
    assert order == ["a in", "c in"]  # b waits for a; another key does not
    assert len(locks) == 2
    first.set()
    second.set()
    await asyncio.gather(a, b, other)
    assert order.index("a out") < order.index("b in")
    assert len(locks) == 0


def test_the_trigger_index_files_a_trigger_under_its_route_secret_and_function() -> None:
    index = TriggerIndex()
    meta = {"creationTimestamp": "2026-12-01T00:00:00Z"}
    keyed = {
        "functionRef": {"name": "fn-a"},
        "http": {"path": "/a", "auth": {"apiKeySecretRef": {"name": "keys", "key": "k"}}},
    }
    index.observe(NAMESPACE, "trg", meta, keyed)
    route = claim(0, "/a").route
    assert [c.name for c in index.routes[route]] == ["trg"]
    assert [name for name, _auth in index.key_refs[(NAMESPACE, "keys")]] == ["trg"]
    assert list(index.callers[(NAMESPACE, "fn-a")]) == ["trg"]

    # Moved to another path and Function, without keys: filed only under the new ones.
    index.observe(NAMESPACE, "trg", meta, {"functionRef": {"name": "fn-b"}, "http": {"path": "/b"}})
    assert route not in index.routes
    assert (NAMESPACE, "keys") not in index.key_refs
    assert (NAMESPACE, "fn-a") not in index.callers
    assert list(index.callers[(NAMESPACE, "fn-b")]) == ["trg"]

    index.forget(NAMESPACE, "trg")
    assert (len(index), len(index.routes), len(index.key_refs), len(index.callers)) == (0, 0, 0, 0)


@pytest.mark.parametrize("count", [500, 2000])
async def test_trigger_events_that_move_no_claim_cost_no_api_call(count: int) -> None:
    """The watch of n Triggers (listing, then a status write each): filing them costs no
    API call; one claim that moves re-judges its one new rival, nobody else."""
    kube = CountingKube()
    state, memo = operator_with(kube)
    bodies = [trigger_body(f"trg-{i}", f"fn-{i}") for i in range(count)]
    for body in bodies:
        kube.add(trigger_path(body["metadata"]["name"]), body)
    for event in (None, "MODIFIED"):
        for body in bodies:
            meta = body["metadata"]
            await route_ownership.file_trigger(
                type=event,
                namespace=NAMESPACE,
                name=meta["name"],
                meta=meta,
                spec=body["spec"],
                memo=memo,
            )
    assert kube.total == 0
    assert len(state.triggers) == count

    moved = bodies[0]
    moved["spec"]["http"]["path"] = "/trg-1"
    await route_ownership.file_trigger(
        type="MODIFIED",
        namespace=NAMESPACE,
        name="trg-0",
        meta=moved["metadata"],
        spec=moved["spec"],
        memo=memo,
    )
    assert kube.calls["get"] == 1  # trg-1, its only rival, re-judged


@pytest.mark.slow
async def test_what_the_operator_keeps_for_5000_functions_and_triggers_is_small() -> None:
    """The operator's own per-object state (kopf's aside) for 5,000 Functions with HTTP
    Triggers: a few MiB, so the chart's limit is kopf's and Python's to use. (The
    autoscaler's samples, 33 MiB before #23, are its own process's now:
    tests/unit/test_autoscaler_scale.py.)"""
    import tracemalloc

    count = 5000
    kube = CountingKube()
    tracemalloc.start()
    try:
        state, _memo = operator_with(kube)
        for i in range(count):
            key = (NAMESPACE, f"fn-{i}")
            REPLICA_COUNTS.set(key, 0, 0)
            body = trigger_body(f"trg-{i}", f"fn-{i}")
            state.triggers.observe(NAMESPACE, f"trg-{i}", body["metadata"], body["spec"])
            del body
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        for i in range(count):
            REPLICA_COUNTS.forget((NAMESPACE, f"fn-{i}"))
    assert held < 12 * 2**20, f"{held / 2**20:.1f} MiB for {count} Functions and Triggers"


async def test_kopf_watchers_wait_while_a_kinds_waiting_room_is_full() -> None:
    """With the backpressure installed, a kopf scheduler limited to 2 workers takes at
    most 2 more objects waiting; the next spawn (the watcher, reading its stream) waits
    until a worker ends, and then everything still runs, in order."""
    from hanshu_operator import kopf_backpressure
    from kopf._cogs.aiokits.aiotasks import Scheduler

    assert kopf_backpressure.install()
    scheduler = Scheduler(limit=2)
    release = asyncio.Event()
    done: list[int] = []

    async def work(index: int) -> None:
        await release.wait()
        done.append(index)

    spawned = 0

    async def watcher() -> None:
        nonlocal spawned
        for index in range(10):
            await scheduler.spawn(work(index))
            spawned += 1

    reading = asyncio.create_task(watcher())
    for _ in range(20):
        await asyncio.sleep(0)
    assert spawned == 4  # 2 running, 2 waiting; the 5th waits for room
    release.set()
    await asyncio.wait_for(reading, 5)
    await asyncio.wait_for(scheduler.wait(), 5)
    await scheduler.close()
    assert sorted(done) == list(range(10))
