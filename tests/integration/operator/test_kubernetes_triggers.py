"""Kubernetes object Triggers under the operator: Ready when the chart lets the gateway
watch the kind, Ready=False naming the chart value when it does not."""

from __future__ import annotations

import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster, run_operator
from tests.support.operator_objects import TRG, hello, trigger


def watching(name: str, api_version: str, kind: str) -> dict[str, object]:
    return trigger(name, kubernetes={"apiVersion": api_version, "kind": kind})


async def test_a_listed_kind_is_ready_and_another_is_refused_naming_the_chart_value(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HANSHU_WATCHABLE_KINDS", "v1/ConfigMap=configmaps")
    async with run_operator(cluster) as operator:
        await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
        await operator.create(API_VERSION, TRIGGER_PLURAL, watching("maps", "v1", "ConfigMap"))
        await operator.create(
            API_VERSION, TRIGGER_PLURAL, watching("deploys", "apps/v1", "Deployment")
        )

        def ready(name: str) -> dict | None:
            found = operator.condition(TRG, name)
            return found if found and found["status"] == "True" else None

        def refused(name: str) -> dict | None:
            found = operator.condition(TRG, name, "Served")
            return found if found and found["reason"] == "KindNotWatchable" else None

        await eventually(lambda: ready("maps"), message="the ConfigMap Trigger Ready")
        assert operator.object(TRG, "maps")["status"]["type"] == "kubernetes"

        served = await eventually(lambda: refused("deploys"), message="Deployment refused")
        assert "gateway.watchableKinds" in served["message"]  # type: ignore[index]
        assert "Deployment (apps/v1)" in served["message"]  # type: ignore[index]
        summary = operator.condition(TRG, "deploys")
        assert summary is not None
        assert (summary["status"], summary["reason"]) == ("False", "KindNotWatchable")
