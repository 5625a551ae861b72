"""Every local replica's output, shown as ``docker compose up`` shows a service's: each line
prefixed with its Function's name (in a colour of its own on a terminal), stdout and
stderr together, so ``print()``, ``context.logger`` and the traceback behind a 500 reach
the developer running ``hanshu dev``."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Mapping
from typing import TextIO

# The terminal's own palette (cyan, yellow, green, magenta, blue and their bright forms):
# readable on dark and light backgrounds alike; red is kept for errors.
_COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)
# A line longer than this is shown in pieces: a replica that writes no newline never
# holds more than this much of our memory.
MAX_LINE_BYTES = 64 * 1024


def uses_colour(out: TextIO, env: Mapping[str, str] = os.environ) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (no-color.org)."""
    return out.isatty() and not env.get("NO_COLOR")


def line_prefix(function: str, width: int, colour: bool) -> str:
    """``name | `` padded to ``width``; coloured by the name, so a Function keeps its colour
    across restarts and runs."""
    label = f"{function:<{width}} | "
    if not colour:
        return label
    code = _COLOURS[zlib.crc32(function.encode()) % len(_COLOURS)]
    return f"\x1b[{code}m{label}\x1b[0m"


async def relay(stream: asyncio.StreamReader, prefix: str, out: TextIO) -> None:
    """Copy ``stream`` to ``out`` line by line, each line prefixed, until the replica
    closes it (it exits). A last line without a newline is shown too."""
    pending = b""
    while chunk := await stream.read(MAX_LINE_BYTES):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        while len(pending) >= MAX_LINE_BYTES:
            lines.append(pending[:MAX_LINE_BYTES])
            pending = pending[MAX_LINE_BYTES:]
        for line in lines:
            for start in range(0, max(len(line), 1), MAX_LINE_BYTES):
                piece = line[start : start + MAX_LINE_BYTES]
                out.write(prefix + piece.decode(errors="replace").rstrip("\r") + "\n")
        out.flush()
    if pending:
        out.write(prefix + pending.decode(errors="replace") + "\n")
        out.flush()
