"""The gateway's tests: the dev platform (tests/support/dev_platform.py)."""

from tests.support.dev_platform import platform_factory

__all__ = ["platform_factory"]
