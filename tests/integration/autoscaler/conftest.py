"""The autoscaler's tests: its processes against kmock (tests/support/autoscaler_cluster.py)."""

from tests.support.autoscaler_cluster import autoscalers
from tests.support.operator_cluster import cluster, kmock_options

__all__ = ["autoscalers", "cluster", "kmock_options"]
