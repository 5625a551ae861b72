"""``import aiohttp`` without its HTTP client until something uses it.

The runtime serves with ``aiohttp.web`` and never uses aiohttp's client. But the package's
``__init__`` imports the client eagerly, and the client's connector builds two TLS contexts
at import (reading the system's CA bundle): measured with ``python -X importtime``, about
half of the whole runtime's import time, all of it before the first answer of a cold start.

So ``python -m hanshu_runtime`` puts the ``aiohttp`` package in place without running its
``__init__``: submodules (``aiohttp.web`` and what it needs) import as usual, and the first
use of any other name (``aiohttp.ClientSession``, ``from aiohttp import ClientTimeout``,
from user code too) runs the real ``__init__`` then, once, into the same module. Nothing of
aiohttp changes; only when its client's start-up cost is paid.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import types
from typing import Any


def install() -> None:
    """Before anything imports aiohttp (a no-op if something already has)."""
    if "aiohttp" in sys.modules:
        return
    spec = importlib.util.find_spec("aiohttp")
    if spec is None or spec.origin is None or not spec.submodule_search_locations:
        return
    origin = spec.origin
    folder = next(iter(spec.submodule_search_locations))
    with open(origin, encoding="utf-8") as init:
        source = init.read()
    version = re.search(r'^__version__ = "([^"]+)"', source, re.MULTILINE)
    if version is None:
        return  # not the aiohttp this was written for: import it the usual way
    package = types.ModuleType("aiohttp")
    package.__file__ = origin
    package.__path__ = [folder]
    package.__spec__ = spec
    package.__package__ = "aiohttp"
    package.__loader__ = spec.loader
    # aiohttp.http reads it for the Server header: no reason to run the rest for it.
    package.__version__ = version.group(1)  # type: ignore[attr-defined]

    def complete(name: str) -> Any:
        # A submodule's name, asked while importing it ("from aiohttp import web"): the
        # import system imports the submodule when the package has no such attribute.
        if name.startswith("__") or os.path.exists(os.path.join(folder, f"{name}.py")):
            raise AttributeError(name)
        del package.__getattr__
        exec(compile(source, origin, "exec"), package.__dict__)  # noqa: S102
        return getattr(package, name)

    package.__getattr__ = complete  # type: ignore[method-assign]
    sys.modules["aiohttp"] = package
