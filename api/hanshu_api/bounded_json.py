"""JSON from outside the platform, parsed within a size and a nesting-depth bound.

``json.loads`` recurses once per nesting level and has no depth limit of its own: a body of
200 KB of ``[`` raises RecursionError (not a ValueError), and a document just under the
interpreter's limit breaks whatever walks it next (``json.dumps``, ``copy.deepcopy``, a
Function's own parser). So the depth is measured first, without recursion and in linear
time, and a document that passes is parsed by ``json.loads``; anything refused raises one
type, ``JsonRefused``, that says what was refused, where (a JSON path) and the limit.

The gateway parses what callers and buckets send with it; the dispatcher parses what
Functions reply with it.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

# serde_json's default recursion limit: far deeper than any real event (an S3 record is five
# levels deep), far below Python's recursion limit (1000 frames), so whatever walks a
# parsed document afterwards (json.dumps, deepcopy, a Function's own json.loads) has room.
MAX_DEPTH = 128

# A string token (escapes included), or a run of characters that are neither a bracket nor
# a quote: both carry no nesting, so the depth scan drops them in one C-speed pass.
_NOT_NESTING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[^\[\]{}"]+', re.DOTALL)
# Brackets as parentheses; a quote left by a string that never ends is dropped.
_PARENS = str.maketrans("[{]}", "(())", '"')
_RUNS = re.compile(r"\(+|\)+")
# Tokens for naming where a document is too deep: strings, brackets, ':' and ','.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]', re.DOTALL)
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")
# Naming the path of a too-deep value walks the prefix token by token in Python: bounded,
# so a refused 6 MiB body costs no more than a few milliseconds more.
_PATH_TOKEN_BUDGET = 200_000
_PATH_SHOWN = 10  # path components shown; deeper ones are '...'
_PAIR_PASSES = 8


class JsonRefused(ValueError):
    """Caller-supplied JSON that is not taken: ``what`` names the document ("the body",
    "line 3"), ``field`` the JSON path of the offending value when known, ``limit`` the
    bound that was passed as (name, value)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        limit: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.limit = limit


def loads(
    data: bytes | str,
    *,
    what: str = "the body",
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """The parsed document; raises JsonRefused for a document over ``max_bytes`` (UTF-8),
    nested deeper than ``max_depth``, not UTF-8, not JSON, or with NaN / Infinity (which
    JSON does not have and other parsers refuse)."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JsonRefused(
            f"{what} is {size} bytes, over the limit of {max_bytes}",
            limit=("bytes", max_bytes),
        )
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise JsonRefused(f"{what} is not UTF-8 (byte {bad.start})") from None
    else:
        text = data
    if too_deep(text, max_depth):
        field = path_at(text, max_depth)
        where = f" at {field}" if field else ""
        raise JsonRefused(
            f"{what} nests arrays and objects deeper than {max_depth} levels{where}",
            field=field,
            limit=("depth", max_depth),
        )
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as bad:
        raise JsonRefused(f"{what} is not JSON: {bad.msg} at character {bad.pos}") from None
    except (ValueError, RecursionError) as bad:
        # A number of more than 4300 digits (int_max_str_digits), NaN, Infinity; or a
        # recursion limit set lower than max_depth allows: refused, never a traceback.
        raise JsonRefused(f"{what} is not JSON that can be taken: {bad}") from None


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def too_deep(text: str, max_depth: int) -> bool:
    """Whether a value in ``text`` nests deeper than ``max_depth`` (for a document that is
    not JSON, possibly more than json.loads would reach). Linear, no recursion.

    Outside strings only brackets nest. Removing every adjacent "()" pair lowers the
    deepest point by exactly one level (each removed pair is a local peak, and the level
    below it stays), so a few such passes in C shrink what the Python loop walks."""
    if text.count("[") + text.count("{") <= max_depth:
        return False  # fewer opening brackets than the limit, in strings or not
    parens = _NOT_NESTING.sub("", text).translate(_PARENS)
    budget = max_depth
    for _ in range(min(_PAIR_PASSES, max_depth)):  # each pass spends one level
        if parens.count("(") <= budget:
            return False
        shorter = parens.replace("()", "")
        if len(shorter) == len(parens):
            break
        parens, budget = shorter, budget - 1
    depth = 0
    for run in _RUNS.findall(parens):
        if run[0] == "(":
            depth += len(run)
            if depth > budget:
                return True
        else:
            depth = max(0, depth - len(run))  # a stray closer: json.loads refuses it anyway
    return False


def path_at(text: str, max_depth: int) -> str | None:
    """The JSON path (``Records[0].s3.object.key[0]...``) of the first value nested deeper
    than ``max_depth``, or None when it is not found within the token budget."""
    # Each frame: [is_object, index or key, expecting a key].
    frames: list[list[Any]] = []
    for count, token in enumerate(_TOKENS.finditer(text)):
        if count > _PATH_TOKEN_BUDGET:
            return None
        char = token.group()
        if char in "[{":
            if len(frames) >= max_depth:
                return _render([frame[1] for frame in frames], _PATH_SHOWN)
            if frames and frames[-1][0]:
                frames[-1][2] = False
            frames.append([char == "{", 0 if char == "[" else "", char == "{"])
        elif char in "]}":
            if frames:
                frames.pop()
        elif char == ",":
            if frames:
                frame = frames[-1]
                if frame[0]:
                    frame[2] = True
                else:
                    frame[1] += 1
        elif char == ":":
            pass
        elif frames and frames[-1][0] and frames[-1][2]:
            try:
                frames[-1][1] = str(json.loads(char))
            except ValueError:
                frames[-1][1] = char[1:-1]
            frames[-1][2] = False
    return None


def _render(steps: list[Any] | tuple[Any, ...], shown_steps: int) -> str:
    """Path steps as JavaScript-style accessors, the first ``shown_steps`` of them."""
    shown, more = steps[:shown_steps], len(steps) > shown_steps
    parts: list[str] = []
    for step in shown:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.match(step):
            parts.append(f".{step}" if parts else step)
        else:
            parts.append(f"[{json.dumps(step)}]")
    rendered = "".join(parts) or "$"
    return f"{rendered}..." if more else rendered


def json_path(steps: tuple[str | int, ...]) -> str:
    """``("Records", 1, "s3", "object", "key")`` -> ``Records[1].s3.object.key``."""
    return _render(steps, len(steps))
