"""The one place a caller's unusable JSON becomes a fault: 400, the error body every
gateway refusal has, plus ``field`` (the JSON path of what was refused) and ``limit`` (the
bound it passed) when known.

A caller's mistake is logged as one line at info level: never a traceback, so no caller can
fill the gateway's logs with stack traces.
"""

from __future__ import annotations

import logging
from typing import Any

from hanshu_api.bounded_json import JsonRefused

from .faults import BadRequest

log = logging.getLogger("hanshu.gateway")


def refused_input(error_type: str, refused: JsonRefused, request_id: str, where: str) -> BadRequest:
    """The fault to raise; ``where`` says whose input it was (a route, a Trigger's
    notification endpoint)."""
    detail: dict[str, Any] = {}
    if refused.field is not None:
        detail["field"] = refused.field
    if refused.limit is not None:
        detail["limit"] = {"name": refused.limit[0], "value": refused.limit[1]}
    log.info("refused %s for %s (request %s): %s", error_type, where, request_id, refused)
    return BadRequest(str(refused), error_type=error_type, detail=detail)


__all__ = ["refused_input"]
