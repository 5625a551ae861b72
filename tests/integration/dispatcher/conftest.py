"""The dispatcher's tests: the dev platform with NATS and dispatcher processes
(tests/support/async_platform.py)."""

from tests.support.async_platform import async_platform
from tests.support.dev_platform import platform_factory

__all__ = ["async_platform", "platform_factory"]
