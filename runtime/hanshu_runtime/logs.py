"""JSON-lines logging on stdout; every line logged during an invocation carries its request
id (the invocation id, for an async call) and its W3C trace id.

The components' lines (hanshu_api.logs) have the same names for these fields, so one query
in Loki or Elasticsearch finds a call across the gateway, the dispatcher and the replica."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import traceback

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hanshu_request_id", default=None
)
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hanshu_trace_id", default=None
)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, function_name: str) -> None:
        super().__init__()
        self._function_name = function_name

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "function": self._function_name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            line["requestId"] = request_id
        trace_id = trace_id_var.get()
        if trace_id is not None:
            line["traceId"] = trace_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["errorType"] = record.exc_info[0].__name__
            line["stackTrace"] = traceback.format_exception(*record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(function_name: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(function_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
