"""Start-up faults: exit non-zero with one line naming the fault and the fix, also written to
the termination log so Kubernetes shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

CODE = Path(__file__).parent / "runtime_code"
STDLIB_CODE = Path(__file__).parent / "runtime_stdlib"

CASES = [
    ("no_such_module.handler", {}, CODE, "Runtime.ImportModuleError", "no file no_such_module.py"),
    ("broken_syntax.handler", {}, CODE, "Runtime.UserCodeSyntaxError", "broken_syntax.py:1"),
    ("raises_on_import.handler", {}, CODE, "Runtime.ImportModuleError", "KeyError"),
    (
        "needs_missing_dep.handler",
        {},
        CODE,
        "Runtime.ImportModuleError",
        "'hanshu_no_such_dependency', which is not installed",
    ),
    (
        "handlers.no_such_function",
        {},
        CODE,
        "Runtime.HandlerNotFound",
        "has no attribute 'no_such_function'",
    ),
    ("not_callable.handler", {}, CODE, "Runtime.HandlerNotCallable", "is a int"),
    ("json.handler", {}, STDLIB_CODE, "Runtime.BuiltInModuleConflict", "built-in module 'json'"),
    ("no-dots-here", {}, CODE, "Runtime.MalformedHandlerName", "module.function"),
    (
        "init_fails.handler",
        {"HANSHU_INITIALIZER": "init_fails.initialize"},
        CODE,
        "Runtime.InitializerError",
        "RuntimeError: database unreachable",
    ),
    (
        "handlers.echo",
        {"HANSHU_HANDLER_TYPE": "cgi"},
        CODE,
        "Runtime.ConfigError",
        "one of: event, wsgi, asgi",
    ),
    (
        "handlers.echo",
        {"HANSHU_TIMEOUT": "soon"},
        CODE,
        "Runtime.ConfigError",
        "HANSHU_TIMEOUT='soon' is not a number",
    ),
]


@pytest.mark.parametrize(
    ("handler", "env", "code", "fault", "fragment"),
    CASES,
    ids=[case[3] + ":" + case[0] for case in CASES],
)
def test_startup_fault_exits_with_one_clear_line(
    runtime_factory, handler, env, code, fault, fragment
):
    runtime = runtime_factory(code, handler, ready=False, **env)
    assert runtime.process.wait(timeout=30) != 0
    assert runtime.process.stderr is not None
    stderr_lines = runtime.process.stderr.read().strip().splitlines()
    assert len(stderr_lines) == 1, stderr_lines
    line = stderr_lines[0]
    assert line.startswith(fault + ": ")
    assert fragment in line
    assert "Fix: " in line
    assert runtime.termination_log.read_text().strip() == line


def test_a_port_in_use_is_a_config_fault(runtime_factory, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = runtime_factory(CODE, "handlers.echo", ready=False, HANSHU_PORT=str(port))
        assert runtime.process.wait(timeout=30) != 0
    assert runtime.process.stderr is not None
    line = runtime.process.stderr.read().strip()
    assert line.startswith("Runtime.ConfigError: cannot listen on http://127.0.0.1:")
    assert "Fix: set HANSHU_PORT to a free port" in line
    assert "\n" not in line  # one line, no traceback
