"""What the operator keeps in memory between handler calls (kopf's memo)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import kopf
from hanshu_api.kube import KubeClient
from hanshu_api.models import Scaling
from hanshu_api.platform import FunctionKey
from hanshu_api.route_claims import RouteClaim, TriggerKey

from .autoscaling_service import AutoscalerService
from .config import OperatorConfig
from .kube_scaler import KubeScaler
from .replica_faults import PodReport
from .scheduler import Clock, SystemClock


@dataclass
class OperatorState:
    config: OperatorConfig
    kube: KubeClient
    # What each Function's pods last said, by pod name: why they cannot start, if so.
    pod_reports: dict[FunctionKey, dict[str, PodReport]] = field(default_factory=dict)
    # The last replica failure a Warning Event was posted for, per Function: (pod template
    # version, reason, signature), so that a kubelet retry posts nothing.
    warned: dict[FunctionKey, tuple[str | None, str, str]] = field(default_factory=dict)
    metrics_server: Any = None
    scaler: KubeScaler | None = None
    # Each Function's scaling spec, for the autoscaler (filled by the reconcile).
    scaling: dict[FunctionKey, Scaling] = field(default_factory=dict)
    autoscaler: AutoscalerService | None = None
    background: list[Any] = field(default_factory=list)
    _status_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    # What schedules fire by (and Trigger status reads the time from): the real clock,
    # one seam for tests that cannot wait for a wall-clock minute.
    clock: Clock = field(default_factory=SystemClock)
    # The route each HTTP Trigger claimed when last seen, so that a claim that moves or
    # goes tells its old route's rivals (the kopf index only knows the present).
    route_claims: dict[TriggerKey, RouteClaim] = field(default_factory=dict)
    _trigger_locks: dict[TriggerKey, asyncio.Lock] = field(default_factory=dict)
    _api_key_locks: dict[TriggerKey, asyncio.Lock] = field(default_factory=dict)

    def status_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self._status_locks.setdefault((namespace, name), asyncio.Lock())

    def trigger_status_lock(self, namespace: str, name: str) -> asyncio.Lock:
        """Serialises the read-modify-writes of one Trigger's status."""
        return self._trigger_locks.setdefault((namespace, name), asyncio.Lock())

    def api_keys_lock(self, namespace: str, name: str) -> asyncio.Lock:
        """Serialises reading a Trigger's key Secret and publishing its verifiers, so the
        last publish is always of the latest Secret. Taken before the status lock."""
        return self._api_key_locks.setdefault((namespace, name), asyncio.Lock())


def operator_state(memo: kopf.Memo) -> OperatorState:
    state: OperatorState = memo["hanshu"]
    return state
