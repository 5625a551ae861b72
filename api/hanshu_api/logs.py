"""The components' log lines: one JSON object a line on stderr, with the call's ids.

Every line logged while a call is served carries its ``requestId`` (for a stored invocation:
its invocation id, which the dispatcher also sends as the request id) and its W3C
``traceId``, so one query in Loki or Elasticsearch finds a call across the gateway, the
dispatcher and the replica (the runtime writes the same names: hanshu_runtime/logs.py).
docs/operations.md ("Logs") shows how to ship and query them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import traceback

from .tracing import current_trace

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hanshu_request_id", default=None
)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time (UTC, ms), level, logger, component, message,
    the call's requestId and traceId when there is a call, the record's ``extra`` fields,
    and an exception's type and stack."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self._component = component

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "component": self._component,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            line["requestId"] = request_id
        trace = current_trace.get()
        if trace is not None:
            line["traceId"] = trace.trace_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["errorType"] = record.exc_info[0].__name__
            line["stackTrace"] = traceback.format_exception(*record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(component: str, level: int = logging.INFO) -> None:
    """JSON lines on stderr for the whole process (what basicConfig did, as JSON)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


__all__ = ["JsonFormatter", "configure_logging", "request_id_var"]
