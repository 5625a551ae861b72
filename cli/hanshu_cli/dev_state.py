"""Where a running ``hanshu dev`` listens, in a small file, so ``hanshu invoke NAME`` finds
it with no ``--gateway`` and no kubeconfig.

Dev mode writes the file when it has started (``announce``) and removes it when it stops
(``withdraw``); a file whose process is gone (dev mode was killed) is stale and ignored.
The file is the user's, not the project's: ``hanshu invoke`` may run from any folder.
``HANSHU_DEV_STATE`` names another file (tests give each dev mode its own).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanshu_api.platform import FunctionKey

if TYPE_CHECKING:  # hanshu invoke reads the file without importing the gateway
    from hanshu_gateway.catalog import Catalog, KnownTrigger

STATE_ENV = "HANSHU_DEV_STATE"
STATE_VERSION = 1


def state_path(env: Mapping[str, str] | None = None) -> Path:
    """``$HANSHU_DEV_STATE``, else ``$XDG_STATE_HOME/hanshu/dev.json`` (the XDG base
    directory for state that outlives a process but is no user data)."""
    env = os.environ if env is None else env
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hanshu" / "dev.json"


@dataclass(frozen=True)
class DevRoute:
    """An HTTP Trigger dev mode serves (the one that owns its route)."""

    namespace: str
    trigger: str
    function: str
    path: str
    host: str = ""
    methods: tuple[str, ...] = ()

    def encode(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "trigger": self.trigger,
            "function": self.function,
            "path": self.path,
            "host": self.host,
            "methods": list(self.methods),
        }

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> DevRoute:
        return cls(
            str(raw["namespace"]),
            str(raw["trigger"]),
            str(raw["function"]),
            str(raw["path"]),
            str(raw.get("host") or ""),
            tuple(str(m) for m in raw.get("methods") or ()),
        )


@dataclass(frozen=True)
class DevState:
    pid: int
    public_url: str
    internal_url: str
    # Dev mode's gateway runs without one today (nothing leaves the machine); kept so a
    # dev mode given one can still be called on its internal port.
    internal_token: str = ""
    functions: tuple[FunctionKey, ...] = ()
    routes: tuple[DevRoute, ...] = field(default_factory=tuple)

    def serves(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.functions

    def routes_of(self, namespace: str, name: str) -> list[DevRoute]:
        return [r for r in self.routes if (r.namespace, r.function) == (namespace, name)]

    def encode(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "pid": self.pid,
            "publicUrl": self.public_url,
            "internalUrl": self.internal_url,
            "internalToken": self.internal_token,
            "functions": [{"namespace": ns, "name": name} for ns, name in self.functions],
            "routes": [route.encode() for route in self.routes],
        }

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> DevState:
        return cls(
            int(raw["pid"]),
            str(raw["publicUrl"]),
            str(raw["internalUrl"]),
            str(raw.get("internalToken") or ""),
            tuple((str(f["namespace"]), str(f["name"])) for f in raw.get("functions") or ()),
            tuple(DevRoute.parse(r) for r in raw.get("routes") or ()),
        )


def served_routes(catalog: Catalog, triggers: Iterable[KnownTrigger]) -> list[DevRoute]:
    """The HTTP Triggers that own their routes (a Trigger that lost its route to an older
    one is not served, so it is not a way to call its Function)."""
    return [
        DevRoute(
            known.namespace,
            known.name,
            known.spec.function_name,
            known.spec.http.path,
            known.spec.http.host,
            known.spec.http.methods,
        )
        for known in triggers
        if known.spec.http is not None
        and catalog.route_of_trigger(known.namespace, known.name) is not None
    ]


def write_state(state: DevState, path: Path | None = None) -> Path:
    """Write atomically (a reader never sees half a file), readable by the user only (it
    may hold the internal token)."""
    path = path or state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(state.encode(), file, indent=2)
    partial.replace(path)
    return path


def announce(
    *,
    host: str,
    port: int,
    internal_port: int,
    catalog: Catalog,
    triggers: Iterable[KnownTrigger],
    internal_token: str = "",
) -> None:
    """Dev mode has started: say where it listens and what it serves (dev mode's call)."""
    state = DevState(
        os.getpid(),
        f"http://{host}:{port}",
        f"http://{host}:{internal_port}",
        internal_token,
        tuple(sorted(catalog.functions)),
        tuple(served_routes(catalog, triggers)),
    )
    write_state(state)


def withdraw(path: Path | None = None) -> None:
    """Dev mode is stopping: remove the file if it is still this process's (a second dev
    mode started since owns it now)."""
    path = path or state_path()
    found = _read(path)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _read(path: Path) -> DevState | None:
    try:
        return DevState.parse(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, though not ours
        return True
    return True


def read_state(path: Path | None = None) -> tuple[DevState | None, str | None]:
    """(the running dev mode's state, None), or (None, why a file there is ignored), or
    (None, None) when there is no file."""
    path = path or state_path()
    if not path.exists():
        return None, None
    found = _read(path)
    if found is None:
        return None, f"ignoring {path}: it is not a hanshu dev state file"
    if not pid_alive(found.pid):
        return None, (
            f"ignoring {path}: the hanshu dev that wrote it (pid {found.pid}) is gone "
            f"(it was stopped without cleaning up; {found.public_url} is not served)"
        )
    return found, None
