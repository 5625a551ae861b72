"""What a Function's status says, decided by pure functions of what the operator observed.

Knative's model: dependent conditions (ConfigurationValid, CodeReady, DeploymentReady), a
Ready that summarises them, and Active, which says whether replicas run (a Function scaled
to zero is Ready: the next request wakes it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hanshu_api.models import SpecInvalid, parse_function_spec
from hanshu_api.pool_settings import WarmPoolSettings
from hanshu_api.warm_pool import pool_eligibility

from .conditions import FALSE, TRUE, UNKNOWN, Condition, find, summarize
from .replica_faults import StartFailure
from .version_plan import ALIASES_VALID, VERSION_CONDITIONS


def deployment_conditions(
    deployment: Mapping[str, Any] | None, failure: StartFailure | None
) -> tuple[Condition, Condition]:
    """(DeploymentReady, Active) from the Deployment and why its replicas cannot start
    (``replica_faults.replica_failure``: its pods' faults, its own progress deadline)."""
    if deployment is None:
        return (
            Condition(
                "DeploymentReady",
                UNKNOWN,
                "DeploymentPending",
                "waiting for the Deployment to be created",
            ),
            Condition("Active", FALSE, "NoDeployment", "no Deployment yet"),
        )
    desired = int((deployment.get("spec") or {}).get("replicas") or 0)
    status = deployment.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    active = (
        Condition("Active", TRUE, "Serving", f"{ready} replica(s) ready")
        if ready > 0
        else Condition(
            "Active",
            FALSE,
            "ScaledToZero" if desired == 0 else "NoReadyReplicas",
            "no replica is running; the next request starts one"
            if desired == 0
            else f"0 of {desired} replica(s) ready",
        )
    )
    if failure is not None:
        return (Condition("DeploymentReady", FALSE, failure.reason, failure.message), active)
    if desired == 0:
        return (
            Condition(
                "DeploymentReady",
                TRUE,
                "ScaledToZero",
                "no replicas while idle; the first request starts one",
            ),
            active,
        )
    if ready > 0:
        return (
            Condition(
                "DeploymentReady", TRUE, "Available", f"{ready} of {desired} replica(s) ready"
            ),
            active,
        )
    return (
        Condition(
            "DeploymentReady",
            UNKNOWN,
            "Starting",
            f"0 of {desired} replica(s) ready; waiting for the first to start",
        ),
        active,
    )


def previous_dependent(conditions: Iterable[Mapping[str, Any]] | None, kind: str) -> Condition:
    found = find(conditions, kind)
    if found is None:
        return Condition(kind, UNKNOWN, "NotReconciled", "the operator has not checked this yet")
    return Condition(
        kind, str(found.get("status")), str(found.get("reason", "")), str(found.get("message", ""))
    )


def pool_condition(
    spec: Mapping[str, Any] | None,
    namespace: str,
    pools: WarmPoolSettings,
    default_resources: Mapping[str, Any],
) -> Condition:
    """PoolEligible: whether a cold request for this Function is served by its namespace's
    warm pool, and if not why (``pool_eligibility``, the gateway's own rule). Never part
    of Ready: a Function the pool cannot serve is served by starting its own pods."""
    try:
        parsed = parse_function_spec(spec or {})
    except SpecInvalid:
        return Condition(
            "PoolEligible", FALSE, "InvalidSpec", "not judged while the spec is invalid"
        )
    verdict = pool_eligibility(parsed, pools.shape(namespace), default_resources)
    return Condition(
        "PoolEligible", TRUE if verdict.eligible else FALSE, verdict.reason, verdict.message
    )


def function_conditions(
    configuration: Condition,
    code: Condition,
    deployment_ready: Condition,
    active: Condition,
    *extra: Condition,
) -> list[Condition]:
    """Ready summarises the first three and AliasesValid (an alias on a missing version:
    its callers get 503s); ``active`` and the other ``extra`` conditions (PoolEligible,
    CanaryHealthy: a rolled back canary still serves, on the old version) say more and
    change nothing in it."""
    gating = [c for c in extra if c.type == ALIASES_VALID]
    ready = summarize(
        [configuration, code, deployment_ready, *gating], "Ready", "the Function is ready to serve"
    )
    return [ready, configuration, code, deployment_ready, active, *extra]


def version_conditions(
    previous: Iterable[Mapping[str, Any]] | None,
    given: Mapping[str, Condition | None],
) -> list[Condition]:
    """The versions' conditions to write: the given ones (None removes one), the others as
    they were (a Deployment event does not recompute them)."""
    kept: list[Condition] = []
    for kind in VERSION_CONDITIONS:
        if kind in given:
            condition = given[kind]
            if condition is not None:
                kept.append(condition)
        elif find(previous, kind) is not None:
            kept.append(previous_dependent(previous, kind))
    return kept


def replica_counts(deployment: Mapping[str, Any] | None) -> dict[str, int]:
    if deployment is None:
        return {"replicas": 0, "readyReplicas": 0, "desiredReplicas": 0}
    status = deployment.get("status") or {}
    return {
        "replicas": int(status.get("replicas") or 0),
        "readyReplicas": int(status.get("readyReplicas") or 0),
        "desiredReplicas": int((deployment.get("spec") or {}).get("replicas") or 0),
    }
