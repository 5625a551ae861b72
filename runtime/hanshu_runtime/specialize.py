"""Pool mode's message: what a pool runtime is told to become, read from JSON.

The runtime imports nothing of ours, so this is its own reader of the JSON that
``hanshu_api.warm_pool.SpecializeRequest.encode`` writes; tests/unit/test_runtime_specialize.py
runs both readers on the same inputs and keeps them equal (accepted alike, refused alike,
the same message naming the field).
"""

from __future__ import annotations

import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# = hanshu_api.warm_pool's names and bounds (a unit test keeps them equal).
SPECIALIZE_PATH = "/_hanshu/specialize"
POOL_MODE_ENV = "HANSHU_POOL"
POOL_TOKEN_ENV = "HANSHU_POOL_TOKEN"  # noqa: S105 - a variable name
MAX_SPECIALIZE_BYTES = 4 * 1024 * 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# = hanshu_api.function_spec.FILE_NAME_PATTERN: a plain name, never a path.
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class SpecializeInvalid(ValueError):
    """A specialize request that cannot be used: the message names the field."""


@dataclass(frozen=True, slots=True)
class Specialization:
    namespace: str
    function: str
    generation: int
    env: Mapping[str, str]
    files: Mapping[str, str]


def parse_specialization(raw: bytes) -> Specialization:
    """The request's fields, checked as ``SpecializeRequest.parse`` checks them."""
    if len(raw) > MAX_SPECIALIZE_BYTES:
        raise SpecializeInvalid(f"the request is over {MAX_SPECIALIZE_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SpecializeInvalid("the request is not JSON") from None
    if not isinstance(body, dict):
        raise SpecializeInvalid("the request must be a JSON object")
    namespace, function = body.get("namespace"), body.get("function")
    for name, value in (("namespace", namespace), ("function", function)):
        if not isinstance(value, str) or not value:
            raise SpecializeInvalid(f"{name} must be a non-empty string")
    generation = body.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise SpecializeInvalid("generation must be a whole number >= 1")
    env = _string_map(body.get("env"), "env")
    for key in env:
        if not _ENV_NAME.match(key):
            raise SpecializeInvalid(f"env name {key!r} is not a variable name")
    if "HANSHU_HANDLER" not in env:
        raise SpecializeInvalid("env must name HANSHU_HANDLER")
    files = _string_map(body.get("files"), "files")
    if not files:
        raise SpecializeInvalid("files must hold the Function's code")
    for name in files:
        if not _FILE_NAME.match(name):
            raise SpecializeInvalid(f"file name {name!r} must be a plain name like 'index.py'")
    return Specialization(str(namespace), str(function), generation, env, files)


def _string_map(value: object, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SpecializeInvalid(f"{name} must map strings to strings")
    return value


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether ``Authorization: Bearer <token>`` names the pool token (constant time: how
    long the comparison takes says nothing of how much matched)."""
    if not authorization or not token:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def write_code(code_dir: str, files: Mapping[str, str]) -> None:
    """The Function's files in its code folder (made if missing). The names are plain
    (checked above), so nothing is written outside the folder. Raises OSError."""
    folder = Path(code_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_text(content, encoding="utf-8")


# What the pool runtime keeps of its own environment whatever the request says: where it
# already listens and where its last words go are facts of this process, not the Function's.
_KEPT = ("HANSHU_HOST", "HANSHU_PORT", "HANSHU_ADMIN_PORT", "HANSHU_TERMINATION_LOG")


def apply_env(environ: os._Environ[str] | dict[str, str], env: Mapping[str, str]) -> None:
    """The Function's environment on this process, as a replica of it starts with: the
    request's variables, this process's listening facts kept, and the pool's own
    variables gone before any user code is loaded."""
    kept = {key: environ[key] for key in _KEPT if key in environ}
    environ.update(env)
    environ.update(kept)
    environ.pop(POOL_TOKEN_ENV, None)
    environ.pop(POOL_MODE_ENV, None)
