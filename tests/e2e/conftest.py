"""The end-to-end tests: a real cluster at KUBECONFIG (tests/support/real_cluster.py)."""

from tests.support.real_cluster import cluster, gateway_url

__all__ = ["cluster", "gateway_url"]
