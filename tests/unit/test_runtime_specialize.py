"""The runtime's own reader of the specialize request stays equal to hanshu_api's (the
runtime imports nothing of ours): the same inputs are accepted alike, refused alike, with
the same message naming the field; and the names and bounds both sides use agree."""

from __future__ import annotations

import json

import pytest
from hanshu_api import warm_pool
from hanshu_api.function_spec import FILE_NAME_PATTERN
from hanshu_runtime import specialize

GOOD = {
    "namespace": "default",
    "function": "hello",
    "generation": 3,
    "env": {"HANSHU_HANDLER": "index.handler", "GREETING": "hi", "a.b-c": "x"},
    "files": {"index.py": "def handler(e, c):\n    return 1\n", "data.json": "{}"},
}


def _with(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


CASES = [
    json.dumps(GOOD).encode(),
    b"",
    b"not json",
    b"\xff\xfe",
    b"[]",
    b"null",
    _with(namespace=""),
    _with(namespace=7),
    _with(function=None),
    _with(generation=0),
    _with(generation=True),
    _with(generation=1.5),
    _with(generation="1"),
    _with(env=[]),
    _with(env={"HANSHU_HANDLER": 1}),
    _with(env={"GREETING": "hi"}),
    _with(env={"HANSHU_HANDLER": "i.h", "1BAD": "x"}),
    _with(env={"HANSHU_HANDLER": "i.h", "HAS SPACE": "x"}),
    _with(files={}),
    _with(files={"../escape.py": "x"}),
    _with(files={"dir/index.py": "x"}),
    _with(files={".hidden": "x"}),
    _with(files={"index.py": 3}),
    b"{" + b" " * (warm_pool.MAX_SPECIALIZE_BYTES + 1) + b"}",
]


def _api(raw: bytes) -> tuple[str, object]:
    try:
        parsed = warm_pool.SpecializeRequest.parse(raw)
    except warm_pool.SpecializeInvalid as invalid:
        return "refused", str(invalid)
    fields = (parsed.namespace, parsed.function, parsed.generation, parsed.env, parsed.files)
    return "accepted", fields


def _runtime(raw: bytes) -> tuple[str, object]:
    try:
        parsed = specialize.parse_specialization(raw)
    except specialize.SpecializeInvalid as invalid:
        return "refused", str(invalid)
    fields = (parsed.namespace, parsed.function, parsed.generation, parsed.env, parsed.files)
    return "accepted", fields


@pytest.mark.parametrize("raw", CASES, ids=range(len(CASES)))
def test_the_runtime_reads_the_specialize_request_as_hanshu_api_does(raw: bytes) -> None:
    assert _runtime(raw) == _api(raw)


def test_what_hanshu_api_encodes_the_runtime_reads_back() -> None:
    sent = warm_pool.SpecializeRequest(
        "ns", "fn", 2, {"HANSHU_HANDLER": "index.handler"}, {"index.py": "x = 1\n"}
    )
    read = specialize.parse_specialization(sent.encode())
    assert (read.namespace, read.function, read.generation) == ("ns", "fn", 2)
    assert (dict(read.env), dict(read.files)) == (dict(sent.env), dict(sent.files))


def test_the_names_and_bounds_agree() -> None:
    assert specialize.SPECIALIZE_PATH == warm_pool.SPECIALIZE_PATH
    assert specialize.POOL_MODE_ENV == warm_pool.POOL_MODE_ENV
    assert specialize.POOL_TOKEN_ENV == warm_pool.POOL_TOKEN_ENV
    assert specialize.MAX_SPECIALIZE_BYTES == warm_pool.MAX_SPECIALIZE_BYTES
    assert specialize._FILE_NAME.pattern == FILE_NAME_PATTERN.pattern
    assert specialize._ENV_NAME.pattern == warm_pool._ENV_NAME.pattern


def test_only_the_bearer_of_the_pool_token_passes() -> None:
    token = warm_pool.pool_token("internal", "default")
    assert specialize.bearer_matches(f"Bearer {token}", token)
    assert specialize.bearer_matches(f"bearer {token}", token)
    for header in (None, "", token, f"Basic {token}", f"Bearer {token}x", "Bearer "):
        assert not specialize.bearer_matches(header, token), header
    assert not specialize.bearer_matches("Bearer ", "")  # no token set: nobody passes


def test_the_functions_env_is_applied_and_the_pools_own_removed() -> None:
    environ = {
        "HANSHU_POOL": "1",
        "HANSHU_POOL_TOKEN": "secret",
        "HANSHU_PORT": "20001",
        "HANSHU_ADMIN_PORT": "20002",
        "PATH": "/bin",
    }
    specialize.apply_env(
        environ,
        {"HANSHU_HANDLER": "i.h", "HANSHU_PORT": "8080", "HANSHU_POOL_TOKEN": "x", "A": "1"},
    )
    assert environ == {
        "HANSHU_PORT": "20001",  # where it listens already
        "HANSHU_ADMIN_PORT": "20002",
        "PATH": "/bin",
        "HANSHU_HANDLER": "i.h",
        "A": "1",
    }
