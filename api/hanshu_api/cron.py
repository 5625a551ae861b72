"""Five-field cron expressions (minute hour day-of-month month day-of-week) and their next
fire time in a time zone. Vixie-cron semantics: when both day fields are restricted, a day
matching either one fires; names (JAN, MON, any case) and the lowercase @hourly-style macros
are accepted. Fields are separated by spaces.

``CRON_PATTERN`` is the same grammar as a regular expression, built from the tables below;
the Trigger CRD's cron rules are generated from it and from ``MACRO_PATTERN``
(hack/gen_crds.py), so the apiserver admits what this parser accepts. Only what a pattern
cannot see is left to the parser: a range that runs backwards ('5-3')."""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass

# Vixie cron's @midnight is not here: the Trigger CRD's first cron rule, which a test
# holds to the text the apiserver was shown to cost (issue 8), lists exactly these.
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@hourly": "0 * * * *",
}  # fmt: skip
_MONTHS = {
    n: i
    for i, n in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_DAYS = {n: i for i, n in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)


class CronError(ValueError):
    pass


def _digits(first: int, last: int) -> str:
    return str(first) if first == last else f"[{first}-{last}]"


def _number_pattern(lo: int, hi: int) -> str:
    """A regular expression for the numbers lo..hi (lo < 10, hi < 100): one alternative
    per tens digit, e.g. 0..59 as [0-9]|1[0-9]|...|5[0-9]. Leading zeros are fine ('05'),
    as the parser reads them."""
    alternatives = [_digits(lo, min(hi, 9))]
    for tens in range(1, hi // 10 + 1):
        alternatives.append(f"{tens}{_digits(0, min(hi - tens * 10, 9))}")
    return "0*(" + "|".join(alternatives) + ")"


def _field_pattern(lo: int, hi: int, names: dict[str, int]) -> str:
    value = _number_pattern(lo, hi)
    if names:
        value = f"({value}|(?i:{'|'.join(names)}))"
    step = "(/0*[1-9][0-9]*)?"
    item = f"([*]|{value}(-{value})?){step}"
    return f"{item}(,{item})*"


MACRO_NAMES = tuple(MACROS)
# '@(yearly|annually|...)': the macros as the CRD's rules match them.
MACRO_PATTERN = "@(" + "|".join(re.escape(name.removeprefix("@")) for name in MACROS) + ")"
CRON_PATTERN = (
    f"^({MACRO_PATTERN}|"
    + " +".join(_field_pattern(lo, hi, names) for _, lo, hi, names in _FIELDS)
    + ")$"
)


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool
    repeats_in_fall_back: bool = False

    def _day_matches(self, day: datetime.date) -> bool:
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    def _wall_matches(self, start: datetime.datetime) -> Iterator[datetime.datetime]:
        """Matching wall-clock minutes (naive) from ``start`` on, ascending, for 5 years."""
        candidate = start
        limit = start + datetime.timedelta(days=366 * 5)
        while candidate < limit:
            if candidate.month not in self.months or not self._day_matches(candidate.date()):
                candidate = datetime.datetime.combine(
                    candidate.date() + datetime.timedelta(days=1), datetime.time()
                )
                continue
            if candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0) + datetime.timedelta(hours=1)
                continue
            if candidate.minute not in self.minutes:
                candidate += datetime.timedelta(minutes=1)
                continue
            yield candidate
            candidate += datetime.timedelta(minutes=1)

    def _instants(
        self, wall: datetime.datetime, zone: zoneinfo.ZoneInfo
    ) -> list[datetime.datetime]:
        """The real instants (UTC) a matching wall time names: none when a spring-forward
        jump skips it, two on a fall-back night for a job that repeats (Vixie cron: a job
        with a wildcard minute or hour keeps its real-time cadence through the repeated
        hour; a job at a fixed time runs once)."""
        first = wall.replace(tzinfo=zone, fold=0)
        if first.astimezone(datetime.UTC).astimezone(zone).replace(tzinfo=None) != wall:
            return []  # skipped by a DST jump: the wall time does not exist
        instants = [first.astimezone(datetime.UTC)]
        second = wall.replace(tzinfo=zone, fold=1).astimezone(datetime.UTC)
        if self.repeats_in_fall_back and second != instants[0]:
            instants.append(second)
        return instants

    def next_after(self, after: datetime.datetime, time_zone: str) -> datetime.datetime:
        """The first fire strictly after ``after`` (aware), as an aware UTC datetime."""
        zone = zoneinfo.ZoneInfo(time_zone)
        local = after.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
        # A repeated hour's second pass has wall times earlier than ``after``'s own wall
        # time: start far enough back to see them (no zone shifts by more than 3 hours).
        best: datetime.datetime | None = None
        for wall in self._wall_matches(local - _LOOK_BACK):
            instants = self._instants(wall, zone)
            if best is not None and instants and instants[0] >= best:
                return best  # first passes only grow from here, second passes are later
            for instant in instants:
                if instant > after and (best is None or instant < best):
                    best = instant
        if best is not None:
            return best
        raise CronError("the expression never fires (e.g. February 30th)")


_LOOK_BACK = datetime.timedelta(hours=3)


def _is_number(token: str) -> bool:
    return token.isascii() and token.isdigit()


def _value(token: str, names: dict[str, int], name: str) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not _is_number(token):
        raise CronError(
            f"{name} field: {token!r} is not a number"
            + (f" or a name ({', '.join(names)})" if names else "")
        )
    return int(token)


def _field(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not _is_number(step_text) or int(step_text) == 0:
                raise CronError(f"{name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if body == "*":
            start, end = lo, hi
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _value(first, names, name), _value(last, names, name)
        else:
            start = _value(body, names, name)
            end = hi if step_text else start
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise CronError(f"{name} field: {part!r} is outside {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> Cron:
    text = MACROS.get(expression, expression)
    if text.startswith(" ") or text.endswith(" "):
        raise CronError(f"{expression!r} starts or ends with a space")
    fields = [field for field in text.split(" ") if field]
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} has {len(fields)} fields; cron takes five (minute hour "
            "day-of-month month day-of-week), e.g. '*/5 * * * *', or @hourly / @daily"
        )
    parsed = [_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in parsed[4])
    return Cron(
        parsed[0],
        parsed[1],
        parsed[2],
        parsed[3],
        weekdays,
        days_restricted=fields[2] != "*",
        weekdays_restricted=fields[4] != "*",
        repeats_in_fall_back=fields[0].startswith("*") or fields[1].startswith("*"),
    )
