"""The dashboard's and the alert rules' tests: a real Prometheus (tests/support/prometheus.py)
scraping the dev platform (tests/support/dev_platform.py)."""

from tests.support.dev_platform import platform_factory
from tests.support.prometheus import prometheus_factory

__all__ = ["platform_factory", "prometheus_factory"]
