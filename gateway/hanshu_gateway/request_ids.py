"""Request ids: the caller's own X-Request-Id when it is safe to echo, else one of ours."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping

from .target import visible_ascii

MAX_REQUEST_ID_LENGTH = 200


class RequestIds:
    def __init__(self) -> None:
        # A prefix per process: two gateways never hand out the same id.
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"

    def of(self, headers: Mapping[str, str]) -> str:
        """The id of a request with these headers."""
        # The caller's id is echoed in headers and logs: only one that is safe to echo.
        given = headers.get("X-Request-Id", "")
        if given and len(given) <= MAX_REQUEST_ID_LENGTH and visible_ascii(given):
            return given
        return self.new()


__all__ = ["MAX_REQUEST_ID_LENGTH", "RequestIds"]
