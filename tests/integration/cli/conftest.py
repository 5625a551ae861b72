"""The hanshu command's tests: kmock with Hanshu's resources (tests/support/cli_cluster.py)."""

from tests.support.cli_cluster import cluster, kmock_options, kubeconfig

__all__ = ["cluster", "kmock_options", "kubeconfig"]
