"""The gateway's event loop: uvloop (libuv under asyncio's API) when it is installed.

Most of the gateway's time on the warm path is the event loop's: two sockets read and two
written per request. uvloop does that part in C; ``bench/gateway_bench.py`` prints the
figures it moved. ``HANSHU_EVENT_LOOP=asyncio`` runs the standard loop instead (to compare,
or to rule the loop out when chasing a problem).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], env: Mapping[str, str] = os.environ) -> T:
    if env.get("HANSHU_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass  # not in this install (the gateway extra brings it): the standard loop
        else:
            return uvloop.run(main)
    return asyncio.run(main)
