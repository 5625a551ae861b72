"""The operator's tests: kopf against kmock (tests/support/operator_cluster.py)."""

from tests.support.operator_cluster import cluster, kmock_options, operator

__all__ = ["cluster", "kmock_options", "operator"]
