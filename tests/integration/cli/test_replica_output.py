"""What a local replica prints reaches the developer running ``hanshu dev``: stdout and
stderr, each line under its Function's name, the traceback behind a 500 included."""

from __future__ import annotations

import asyncio
import io
import textwrap
from pathlib import Path

import aiohttp
from hanshu_api.models import parse_function_spec
from hanshu_api.platform import Endpoint, FunctionKey
from hanshu_cli.local_platform import LocalPlatform
from hanshu_cli.replica_output import MAX_LINE_BYTES, line_prefix, relay, uses_colour

from tests.support.helpers import eventually

CODE = textwrap.dedent("""
    import sys


    def handler(event, context):
        if event["path"].endswith("/fail"):
            raise RuntimeError("the order service is down")
        print("printed to stdout")
        print("written to stderr", file=sys.stderr)
        context.logger.info("through the context's logger")
        return "ok"
""")


async def test_a_replicas_output_is_shown_under_its_functions_name(tmp_path: Path) -> None:
    shown = io.StringIO()  # not a terminal: no colour
    platform = LocalPlatform(workdir=tmp_path, output=shown)
    key: FunctionKey = ("default", "orders")
    spec = {"handler": "index.handler", "code": {"inline": {"index.py": CODE}}}
    platform.add_function(key, parse_function_spec(spec))
    ready: list[Endpoint] = []
    platform.listen(lambda _key, endpoints: ready.extend(endpoints))
    try:
        await platform.set_replicas(key, 1)
        await eventually(lambda: ready, message="the replica is ready")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{ready[0].url}/") as reply:
                assert reply.status == 200
            async with http.get(f"{ready[0].url}/fail") as reply:
                assert reply.status == 500
                assert "Traceback" not in await reply.text()  # the caller gets none

        def everything_shown() -> bool:
            text = shown.getvalue()
            return all(
                part in text
                for part in (
                    "printed to stdout",
                    "written to stderr",
                    "through the context's logger",
                    "RuntimeError: the order service is down",
                )
            )

        await eventually(everything_shown, message=f"the replica's output: {shown.getvalue()!r}")
        for line in shown.getvalue().splitlines():
            assert line.startswith("orders | "), line
        assert "Traceback (most recent call last)" in shown.getvalue()  # the developer's
    finally:
        await platform.close()


def test_the_prefix_pads_names_to_one_column_and_colours_only_a_terminal() -> None:
    assert line_prefix("api", 6, colour=False) == "api    | "
    coloured = line_prefix("api", 6, colour=True)
    assert coloured.startswith("\x1b[")
    assert coloured.endswith("\x1b[0m")
    assert "api    | " in coloured
    assert line_prefix("api", 6, colour=True) == coloured  # a Function keeps its colour

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert uses_colour(Terminal(), env={})
    assert not uses_colour(Terminal(), env={"NO_COLOR": "1"})
    assert not uses_colour(io.StringIO(), env={})


async def test_lines_split_across_reads_long_lines_and_a_last_line_without_newline() -> None:
    stream = asyncio.StreamReader()
    long = b"x" * (MAX_LINE_BYTES * 2 + 10)
    for piece in (b"first li", b"ne\r\nsecond\n", long, b"\nlast, no newline"):
        stream.feed_data(piece)
    stream.feed_eof()
    out = io.StringIO()
    await relay(stream, "fn | ", out)
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["fn | first line", "fn | second"]
    assert lines[-1] == "fn | last, no newline"
    pieces = lines[2:-1]
    assert all(line.startswith("fn | ") for line in pieces)
    assert "".join(line.removeprefix("fn | ") for line in pieces) == long.decode()
    assert all(len(line) <= MAX_LINE_BYTES + len("fn | ") for line in pieces)
