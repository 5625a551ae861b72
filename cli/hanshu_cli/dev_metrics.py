"""Dev mode's ``hanshu_function_replicas``: in a cluster the operator exports each
Function's desired and ready replicas; dev mode has no operator, so the stack exports the
same series from its local replicas, and the dashboard's replicas panel works against
``hanshu dev`` as it does against a cluster (served on the gateway's internal /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from hanshu_api.platform import FunctionKey
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ReplicaCounts = Callable[[], Mapping[FunctionKey, tuple[int, int]]]
# The operator's name and labels (operator/hanshu_operator/metrics.py), so one query
# reads both.
NAME = "hanshu_function_replicas"


class _LocalReplicaCounts(Collector):
    """Reads each running stack's (desired, ready) per Function when scraped. One collector
    for the process, registered once: two stacks in one process (tests, benches) do not
    register the same name twice."""

    def __init__(self) -> None:
        self.sources: list[ReplicaCounts] = []

    def describe(self) -> list[GaugeMetricFamily]:
        # No names claimed in the registry: the operator's collector has the same name, and
        # a process that imports both (the test suite) must still be able to import both.
        # They never serve together: the family appears only while a dev stack runs.
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self.sources:
            return
        family = GaugeMetricFamily(
            NAME,
            "Replicas of each Function: desired (what the autoscaler or minReplicas asked "
            "for) and ready (serving).",
            labels=["namespace", "function", "state"],
        )
        for counts in list(self.sources):
            for (namespace, name), (desired, ready) in counts().items():
                family.add_metric([namespace, name, "desired"], desired)
                family.add_metric([namespace, name, "ready"], ready)
        yield family


_COLLECTOR = _LocalReplicaCounts()
REGISTRY.register(_COLLECTOR)


def export_replica_counts(counts: ReplicaCounts) -> None:
    _COLLECTOR.sources.append(counts)


def withdraw_replica_counts(counts: ReplicaCounts) -> None:
    if counts in _COLLECTOR.sources:
        _COLLECTOR.sources.remove(counts)
