"""Dev mode's replica counts: the operator's series, from the local replicas, only while a
dev stack runs."""

from __future__ import annotations

from hanshu_cli.dev_metrics import export_replica_counts, withdraw_replica_counts
from prometheus_client import REGISTRY, generate_latest


def replica_lines() -> list[str]:
    return [
        line
        for line in generate_latest(REGISTRY).decode().splitlines()
        if line.startswith("hanshu_function_replicas{")
    ]


def test_a_running_stack_exports_desired_and_ready_per_function_and_nothing_once_stopped():
    def counts() -> dict[tuple[str, str], tuple[int, int]]:
        return {("default", "shop"): (2, 1)}

    export_replica_counts(counts)
    try:
        assert sorted(replica_lines()) == [
            'hanshu_function_replicas{function="shop",namespace="default",state="desired"} 2.0',
            'hanshu_function_replicas{function="shop",namespace="default",state="ready"} 1.0',
        ]
    finally:
        withdraw_replica_counts(counts)
    assert replica_lines() == []
