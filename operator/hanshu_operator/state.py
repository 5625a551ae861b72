"""What the operator keeps in memory between handler calls (kopf's memo)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import kopf
from hanshu_api.kube import KubeClient
from hanshu_api.models import Scaling
from hanshu_api.platform import FunctionKey

from .autoscaling_service import AutoscalerService
from .config import OperatorConfig
from .kube_scaler import KubeScaler


@dataclass
class OperatorState:
    config: OperatorConfig
    kube: KubeClient
    # The last start-up fault a Function's pods reported, until one of them becomes ready.
    runtime_faults: dict[tuple[str, str], str] = field(default_factory=dict)
    metrics_server: Any = None
    scaler: KubeScaler | None = None
    # Each Function's scaling spec, for the autoscaler (filled by the reconcile).
    scaling: dict[FunctionKey, Scaling] = field(default_factory=dict)
    autoscaler: AutoscalerService | None = None
    background: list[Any] = field(default_factory=list)
    _status_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def status_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self._status_locks.setdefault((namespace, name), asyncio.Lock())


def operator_state(memo: kopf.Memo) -> OperatorState:
    state: OperatorState = memo["hanshu"]
    return state
