"""The Date header (RFC 9110 6.6.1), formatted once a second rather than per reply."""

from __future__ import annotations

import time

# strftime's %a and %b follow the locale; IMF-fixdate's names are English.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _Clock:
    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def date(self) -> str:
        """Now, as IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
        now = int(time.time())
        if now != self._second:
            tm = time.gmtime(now)
            self._value = (
                f"{_DAYS[tm.tm_wday]}, {tm.tm_mday:02d} {_MONTHS[tm.tm_mon - 1]} {tm.tm_year} "
                f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} GMT"
            )
            self._second = now
        return self._value


http_date = _Clock().date
