"""A dispatcher process whose schedules tick every second (test only: cron counts minutes,
and a test of twenty ticks should not take twenty minutes). Everything else is the real
dispatcher: ``python -m tests.support.every_second_dispatcher``."""

from __future__ import annotations

import datetime

from hanshu_api.schedules import ScheduleEntry
from hanshu_dispatcher.__main__ import main


def every_second(entry: ScheduleEntry, after: datetime.datetime) -> datetime.datetime:
    return after.replace(microsecond=0) + datetime.timedelta(seconds=1)


if __name__ == "__main__":
    main(every_second)
