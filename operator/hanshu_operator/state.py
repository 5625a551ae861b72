"""What the operator keeps in memory between handler calls (kopf's memo).

Cost: per Trigger, what ``trigger_index`` files it under; per pod of a Function, a
short report; per failing Function, the last warning. Everything keyed by an object
goes when it does (``forget_function``, the pod and Trigger watches). Locks exist only
while a write is in progress (``keyed_locks``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import kopf
from hanshu_api.keyed_locks import KeyedLocks
from hanshu_api.kube import KubeClient
from hanshu_api.loop_lag import LoopLag
from hanshu_api.platform import FunctionKey
from hanshu_api.route_claims import TriggerKey

from .clock import Clock, SystemClock
from .config import OperatorConfig
from .metrics import REPLICA_COUNTS
from .replica_faults import PodReport
from .trigger_index import TriggerIndex

# Handlers talking to the API server at once (``bounded`` says why).
RECONCILES_AT_ONCE = 32

Held = contextlib.AbstractAsyncContextManager[None]  # a lock held for an `async with`


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
    # What runs beside the handlers until cleanup (the schedule catalog's NATS follower).
    background: list[Any] = field(default_factory=list)
    # How late the event loop runs what is due (hanshu_event_loop_lag_seconds, /healthz).
    loop_lag: LoopLag | None = None
    _status_locks: KeyedLocks[FunctionKey] = field(default_factory=KeyedLocks)
    # What schedules fire by (and Trigger status reads the time from): the real clock,
    # one seam for tests that cannot wait for a wall-clock minute.
    clock: Clock = field(default_factory=SystemClock)
    # Every Trigger's route claim, key Secret and Function (``trigger_index``).
    triggers: TriggerIndex = field(default_factory=TriggerIndex)
    _trigger_locks: KeyedLocks[TriggerKey] = field(default_factory=KeyedLocks)
    # Handlers that may talk to the API server now (``bounded``); made in the loop.
    reconcile_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(RECONCILES_AT_ONCE)
    )
    _api_key_locks: KeyedLocks[TriggerKey] = field(default_factory=KeyedLocks)

    def status_lock(self, namespace: str, name: str) -> Held:
        """Serialises the read-modify-writes of one Function's status."""
        return self._status_locks.held((namespace, name))

    def trigger_status_lock(self, namespace: str, name: str) -> Held:
        """Serialises the read-modify-writes of one Trigger's status."""
        return self._trigger_locks.held((namespace, name))

    def api_keys_lock(self, namespace: str, name: str) -> Held:
        """Serialises reading a Trigger's key Secret and publishing its verifiers, so the
        last publish is always of the latest Secret. Taken before the status lock."""
        return self._api_key_locks.held((namespace, name))

    def locks_in_use(self) -> int:
        return len(self._status_locks) + len(self._trigger_locks) + len(self._api_key_locks)

    def forget_function(self, key: FunctionKey) -> None:
        """A Function was deleted: drop everything kept for it. (Its pods' reports go with
        the pods' own DELETED events, its replica count with its Deployment's.)"""
        self.warned.pop(key, None)
        REPLICA_COUNTS.forget(key)


def operator_state(memo: kopf.Memo) -> OperatorState:
    state: OperatorState = memo["hanshu"]
    return state
