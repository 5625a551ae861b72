"""Leader election by a Lease, on a simulated clock against an in-memory API that checks
resourceVersions as the API server does (a stale write is a 409)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from hanshu_api.kube import ApiError
from hanshu_autoscaler.config import ConfigError, config_from_env
from hanshu_autoscaler.lease import LeaseElector, url_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class LeaseApi:
    """One namespace's Leases, with the API server's optimistic concurrency."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise OSError("connection refused")

    async def get(self, path: str) -> dict[str, Any] | None:
        self._check()
        found = self.objects.get(path)
        return copy.deepcopy(found) if found else None

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        full = f"{path}/{body['metadata']['name']}"
        if full in self.objects:
            raise ApiError(409, "AlreadyExists", full)
        return self._store(full, dict(body))

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        current = self.objects[path]
        sent = (body.get("metadata") or {}).get("resourceVersion")
        if sent is not None and sent != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        merged = {**current, "spec": {**current["spec"], **body.get("spec", {})}}
        return self._store(path, merged)

    def _store(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.objects[path] = body
        return body


def elector(api: LeaseApi, me: str, clock: Clock, elected: list[str]) -> LeaseElector:
    return LeaseElector(
        api,  # type: ignore[arg-type]
        "hanshu-system",
        "hanshu-autoscaler",
        me,
        duration_seconds=4,
        renew_seconds=1,
        on_elected=lambda: elected.append(me),
        clock=clock,
    )


A, B = "a@http://10.0.0.1:8090", "b@http://10.0.0.2:8090"


async def test_one_leads_the_other_stands_by_and_knows_where_to_send_reports() -> None:
    api, clock, elected = LeaseApi(), Clock(), []
    a, b = elector(api, A, clock, elected), elector(api, B, clock, elected)
    await a.step()
    await b.step()
    assert (a.is_leader(), b.is_leader()) == (True, False)
    assert b.leader_url() == "http://10.0.0.1:8090"
    assert a.leader_url() is None  # the leader takes reports itself
    assert elected == [A]


async def test_the_standby_takes_over_after_a_lease_duration_without_renewal() -> None:
    api, clock, elected = LeaseApi(), Clock(), []
    a, b = elector(api, A, clock, elected), elector(api, B, clock, elected)
    await a.step()
    for _ in range(3):  # a renews every second; b sees every renewal
        clock.now += 1
        await a.step()
        await b.step()
    assert not b.is_leader()
    # a dies: b has seen the same record for less than the duration, then for all of it.
    for _ in range(3):
        clock.now += 1
        await b.step()
        assert not b.is_leader()
    clock.now += 1
    await b.step()
    assert b.is_leader()
    assert elected == [A, B]
    spec = next(iter(api.objects.values()))["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == (B, 1)


async def test_a_leader_that_cannot_renew_stops_before_a_standby_may_start() -> None:
    api, clock = LeaseApi(), Clock()
    a = elector(api, A, clock, [])
    await a.step()
    api.down = True
    clock.now += 2.9
    assert a.is_leader()
    clock.now += 0.2  # duration - renew interval: a standby can start only at 4
    assert not a.is_leader()


async def test_a_released_lease_is_taken_at_the_next_look() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = elector(api, A, clock, []), elector(api, B, clock, [])
    await a.step()
    await b.step()
    await a.release()
    assert not a.is_leader()
    await b.step()
    assert b.is_leader()


async def test_of_two_standbys_racing_for_an_expired_lease_one_wins() -> None:
    api, clock = LeaseApi(), Clock()
    c = elector(api, "c@http://10.0.0.3:8090", clock, [])
    await c.step()
    a, b = elector(api, A, clock, []), elector(api, B, clock, [])
    await a.step()
    await b.step()
    clock.now += 5
    lease = await api.get(a.path)
    assert lease is not None
    await a._write(lease, 1)
    await b._write(lease, 1)  # read the same version: a 409, and b stays standby
    assert (a.is_leader(), b.is_leader()) == (True, False)


def test_the_holder_identity_names_where_reports_go() -> None:
    assert url_of("pod-1@http://10.1.2.3:8090") == "http://10.1.2.3:8090"
    assert url_of("") is None
    assert url_of("no-url") is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"HANSHU_AUTOSCALER_PORT": "x"}, "HANSHU_AUTOSCALER_PORT"),
        ({"HANSHU_PANIC_THRESHOLD": "0.5"}, "HANSHU_PANIC_THRESHOLD"),
        ({"HANSHU_STABLE_WINDOW_SECONDS": "0"}, "HANSHU_STABLE_WINDOW_SECONDS"),
        ({"HANSHU_LEASE_DURATION_SECONDS": "0"}, "HANSHU_LEASE_DURATION_SECONDS"),
        (
            {"HANSHU_LEASE_DURATION_SECONDS": "2", "HANSHU_LEASE_RENEW_SECONDS": "2"},
            "HANSHU_LEASE_RENEW_SECONDS",
        ),
        ({"HANSHU_LOG_LEVEL": "loud"}, "HANSHU_LOG_LEVEL"),
    ],
)
def test_a_bad_setting_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config_from_env(env)
    assert refused.value.variable == variable


def test_the_identity_is_the_pod_and_its_address() -> None:
    config = config_from_env(
        {"HANSHU_POD_NAME": "as-0", "HANSHU_POD_IP": "fd00::5", "HANSHU_AUTOSCALER_PORT": "9000"}
    )
    assert config.identity == "as-0@http://[fd00::5]:9000"
    assert url_of(config.identity) == "http://[fd00::5]:9000"
