"""The components' log lines (hanshu_api.logs): JSON, with the call's request id and trace
id while a call is served; and their tracer: nothing of OpenTelemetry loaded without an
endpoint, one warning and no spans when the endpoint is set but the SDK is missing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

from hanshu_api.logs import JsonFormatter, request_id_var
from hanshu_api.trace_context import incoming
from hanshu_api.tracing import NO_TRACING, current_trace, tracer_from_env

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _line(message: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("hanshu.gateway", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return dict(json.loads(JsonFormatter("gateway").format(record)))


def test_a_line_outside_a_call_has_no_ids() -> None:
    line = _line("started")
    assert line["component"] == "gateway"
    assert line["level"] == "WARNING"
    assert line["message"] == "started"
    assert "requestId" not in line
    assert "traceId" not in line


def test_a_line_during_a_call_names_its_request_and_trace() -> None:
    request_token = request_id_var.set("abc-1")
    trace_token = current_trace.set(incoming(TRACEPARENT, None))
    try:
        line = _line("replica refused", endpoint="http://10.0.0.7:8080")
    finally:
        current_trace.reset(trace_token)
        request_id_var.reset(request_token)
    assert line["requestId"] == "abc-1"
    assert line["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["endpoint"] == "http://10.0.0.7:8080"


def test_no_endpoint_no_tracer() -> None:
    assert tracer_from_env("hanshu-gateway", {}) is NO_TRACING
    assert tracer_from_env("hanshu-gateway", {"OTEL_EXPORTER_OTLP_ENDPOINT": " "}) is NO_TRACING


def _run(code: str, tmp_path: Path, *path: Path) -> subprocess.CompletedProcess[str]:
    env_path = ":".join(str(p) for p in path)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **({"PYTHONPATH": env_path} if path else {})},
        check=True,
    )


def test_a_gateway_without_an_endpoint_never_imports_opentelemetry(tmp_path: Path) -> None:
    loaded = _run(
        """
        import sys
        from hanshu_gateway.pipeline import Gateway
        from hanshu_dispatcher.service import Dispatcher
        from hanshu_api.tracing import tracer_from_env
        tracer_from_env("hanshu-gateway")
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """,
        tmp_path,
    )
    assert loaded.stdout.strip() == "[]"


def test_an_endpoint_without_the_sdk_is_one_warning_and_no_tracing(tmp_path: Path) -> None:
    shadow = tmp_path / "opentelemetry"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('No module named opentelemetry')\n")
    said = _run(
        """
        import logging
        from hanshu_api.logs import configure_logging
        from hanshu_api.tracing import NO_TRACING, tracer_from_env
        configure_logging("dispatcher")
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
        assert tracer_from_env("hanshu-dispatcher", env) is NO_TRACING
        """,
        tmp_path,
        tmp_path,
    )
    (line,) = said.stderr.splitlines()
    warning = json.loads(line)
    assert warning["level"] == "WARNING"
    assert "OpenTelemetry is not installed" in warning["message"]
    assert "http://collector:4318" in warning["message"]
