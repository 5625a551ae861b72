"""The operator's clock: what a schedule Trigger's ``nextFireTime`` is computed from.

Schedules are fired by the dispatchers (hanshu_dispatcher.schedules), not here: the
operator publishes them and writes their fires into the Trigger status
(``schedule_catalog``). The clock stays one seam, so a test shifts the operator's time."""

from __future__ import annotations

import datetime
from typing import Protocol


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Clock(Protocol):
    def now(self) -> datetime.datetime: ...


class SystemClock:
    """The real clock: UTC wall time."""

    def now(self) -> datetime.datetime:
        return utc_now()
