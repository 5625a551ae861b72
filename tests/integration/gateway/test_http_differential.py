"""Differential test of our two HTTP/1.1 servers against h11, a strict parser, as the
reference: raw requests from the request-smuggling classes of HTTP Garden
(narfindustries/http-garden) and PortSwigger's research, then hypothesis' mutations of valid
requests, sent byte for byte to the gateway's public port (a real runtime replica behind
it, in dev mode) and to a runtime directly.

The replica's handler appends what it was asked (method, path, body) to a file, so the
test sees what got through, not only what was answered. For every input:

- what the replica saw is, request for request, what h11 parses from the same bytes (the
  same method, path and body bytes): neither server ever frames a request otherwise than
  h11 would, though either may refuse more;
- the replica sees no more requests than were answered with a 2xx;
- no reply is a 5xx but 501 (a transfer coding we do not understand) and 505 (an HTTP
  version we do not serve), and every request h11 completes is answered, or the
  connection closed, within a timeout (no hang).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.dev_platform import function, trigger
from tests.support.runtime_process import RuntimeProcess, start_runtime, wait_ready
from tests.support.servers import free_port

RECORDER = textwrap.dedent("""
    import base64
    import json
    import os


    def handler(event, context):
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
        seen = {"method": event["httpMethod"], "path": event["rawPath"],
                "body": base64.b64encode(raw).decode()}
        with open(os.environ["RECORD_FILE"], "a") as record:
            record.write(json.dumps(seen) + "\\n")
        return "ok"
""")
ALLOWED_5XX = {501, 505}
ANSWER_SECONDS = 5.0  # for a request h11 completes: long past any reply on loopback
EXTRA_SECONDS = 0.3  # after the expected replies: time for any reply there should not be


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    body: bytes


# -- the reference ---------------------------------------------------------------------


@dataclass
class Reference:
    requests: list[Seen]  # what h11 parses, in order, complete requests only
    refused: bool  # h11 found the bytes invalid (after ``requests``)


def _path_of(target: bytes) -> str:
    text = target.decode("latin-1")
    for scheme in ("http://", "https://"):
        if text.lower().startswith(scheme):
            rest = text[len(scheme) :]
            text = "/" + rest.partition("/")[2] if "/" in rest else "/"
    return text.partition("?")[0].partition("#")[0]


# llhttp's leniencies that move no boundary, which h11 refuses: spaces repeated between
# the method and the target, and CR or LF bytes before a request line (RFC 9112 2.2 lets
# a server skip empty lines there). The reference reads past them too.
_SPACES_BEFORE_TARGET = re.compile(rb"\A([A-Za-z]+) {2,}(?=/)")


def _one_request(data: bytes) -> tuple[Seen | None, bool, bytes]:
    """The first request h11 reads from ``data``: (the request or None, whether what
    follows may be read as another request, the bytes after it)."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(_SPACES_BEFORE_TARGET.sub(rb"\1 ", data.lstrip(b"\r\n")))
    method, target, body = b"", b"", bytearray()
    kept_alive_10 = False
    while True:
        event = connection.next_event()  # raises RemoteProtocolError for what it refuses
        if isinstance(event, h11.Request):
            method, target = event.method, event.target
            kept_alive_10 = event.http_version == b"1.0" and any(
                name == b"connection" and b"keep-alive" in value.lower()
                for name, value in event.headers
            )
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            seen = Seen(method.decode(), _path_of(target), bytes(body))
            # DONE: kept alive (MUST_CLOSE after Connection: close or HTTP/1.0); h11 keeps
            # no HTTP/1.0 connection alive, but one that asked is read on, as ours do.
            more = connection.their_state is h11.DONE or kept_alive_10
            return seen, more, bytes(connection.trailing_data[0])
        else:  # NEED_DATA (incomplete), PAUSED or ConnectionClosed
            return None, False, b""


def reference(data: bytes) -> Reference:
    """What h11, as a server, makes of ``data``: each complete request in turn."""
    parsed: list[Seen] = []
    rest = data
    while rest.lstrip(b"\r\n"):
        try:
            seen, more, rest = _one_request(rest)
        except h11.RemoteProtocolError:
            return Reference(parsed, True)
        if seen is None:
            break
        parsed.append(seen)
        if not more:
            break
    return Reference(parsed, False)


# -- the servers -------------------------------------------------------------------------


@dataclass
class Target:
    port: int
    record: Path

    def seen_since(self, offset: int) -> tuple[list[Seen], int]:
        with self.record.open("rb") as record:
            record.seek(offset)
            data = record.read()
        lines = data.split(b"\n")
        complete, rest = lines[:-1], lines[-1]  # a line being written is read next time
        seen = [
            Seen(item["method"], item["path"], base64.b64decode(item["body"]))
            for item in map(json.loads, complete)
        ]
        return seen, offset + len(data) - len(rest)

    def offset(self) -> int:
        return self.record.stat().st_size


def _start_platform(tmp: Path, record: Path) -> tuple[subprocess.Popen[str], int]:
    manifest = tmp / "manifest.yaml"
    documents = [
        function(
            "recorder",
            handler="recorder.handler",
            code={"inline": {"recorder.py": RECORDER}},
            scaling={"minReplicas": 1, "scaleToZeroGracePeriod": "600s"},
            env=[{"name": "RECORD_FILE", "value": str(record)}],
        ),
        trigger("recorder", "recorder", path="/"),
    ]
    manifest.write_text(yaml.safe_dump_all(documents))
    port, internal = free_port(), free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "hanshu_cli", "dev", str(manifest)),
            *("--port", str(port), "--internal-port", str(internal)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the dev platform exited"
        try:
            url = f"http://127.0.0.1:{internal}/functions"
            with urllib.request.urlopen(url, timeout=2) as reply:
                if json.load(reply)[0]["readyReplicas"] == 1:
                    return process, port
        except (OSError, LookupError, ValueError):
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail("the recorder Function did not become ready")


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    tmp = tmp_path_factory.mktemp("differential")
    gateway_record, runtime_record = tmp / "gateway.jsonl", tmp / "runtime.jsonl"
    for record in (gateway_record, runtime_record):
        record.touch()
    (tmp / "recorder.py").write_text(RECORDER)
    runtime: RuntimeProcess = start_runtime(
        tmp, "recorder.handler", tmp, RECORD_FILE=str(runtime_record)
    )
    platform, port = _start_platform(tmp, gateway_record)
    try:
        wait_ready(runtime)
        yield {
            "gateway": Target(port, gateway_record),
            "runtime": Target(runtime.port, runtime_record),
        }
    finally:
        runtime.stop(timeout=10)
        platform.terminate()
        try:
            platform.wait(timeout=20)
        except subprocess.TimeoutExpired:
            platform.kill()


# -- one exchange ------------------------------------------------------------------------


@dataclass
class Outcome:
    statuses: list[int]  # final replies, in order
    closed: bool  # the server ended the connection
    waited_out: bool  # fewer replies than expected, connection open, and nothing came


async def _reply(reader: asyncio.StreamReader) -> int:
    """One final reply's status (interim 1xx replies skipped); its body read by its
    Content-Length (the corpus has no HEAD)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        await reader.readexactly(length)
        if status >= 200:
            return status


async def exchange(port: int, data: bytes, expected: int) -> Outcome:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses: list[int] = []
    closed = waited_out = False
    try:
        writer.write(data)
        while True:
            wait = ANSWER_SECONDS if len(statuses) < expected else EXTRA_SECONDS
            try:
                statuses.append(await asyncio.wait_for(_reply(reader), wait))
            except TimeoutError:
                waited_out = len(statuses) < expected
                break
            except (asyncio.IncompleteReadError, ConnectionError):
                closed = True
                break
    finally:
        writer.close()
    return Outcome(statuses, closed, waited_out)


def _in_order_within(seen: list[Seen], framed: list[Seen]) -> bool:
    """Whether every request served is one h11 frames, in h11's order: a request the
    gateway refuses for its own reasons (no route for an HTTP/1.0 request without Host,
    OPTIONS *) is skipped, and the next on the connection still served."""
    rest = iter(framed)
    return all(any(request == candidate for candidate in rest) for request in seen)


def judge(name: str, data: bytes, outcome: Outcome, seen: list[Seen]) -> list[str]:
    """What is wrong with how a server handled ``data``; empty when nothing is."""
    expected = reference(data)
    faults = []
    if not _in_order_within(seen, expected.requests):
        faults.append(f"served {seen}, but h11 frames {expected.requests}")
    if len(seen) > sum(200 <= status < 300 for status in outcome.statuses):
        faults.append(f"served {len(seen)} requests, answered {outcome.statuses}")
    if [status for status in outcome.statuses if status >= 500 and status not in ALLOWED_5XX]:
        faults.append(f"answered {outcome.statuses}")
    if outcome.waited_out:
        faults.append(
            f"{len(expected.requests)} complete requests, answered {outcome.statuses} "
            f"and no close within {ANSWER_SECONDS}s"
        )
    return [f"{name}: {fault}; sent {data!r}" for fault in faults]


async def run_all(target: Target, cases: dict[str, bytes]) -> list[str]:
    """The cases at once, each on its own connection; each one's requests carry its name
    in their path, so what the replica saw is told apart."""
    outcomes = await asyncio.gather(
        *(exchange(target.port, data, len(reference(data).requests)) for data in cases.values())
    )
    seen, _ = target.seen_since(0)
    faults = []
    for (name, data), outcome in zip(cases.items(), outcomes, strict=True):
        mine = [request for request in seen if request.path.startswith(f"/{name}/")]
        faults += judge(name, data, outcome, mine)
    return faults


# -- the corpus --------------------------------------------------------------------------

H = b"Host: gw.test\r\n"
TE = b"Transfer-Encoding: chunked\r\n"
# The second request on a connection: served only where the first one's framing ends as
# h11's does.
NEXT = b"GET {p}/next HTTP/1.1\r\n" + H + b"\r\n"


def post(*fields: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    return b"POST {p}/a HTTP/" + version + b"\r\n" + H + b"".join(fields) + b"\r\n" + body


def chunked(sizes: bytes, *fields: bytes) -> bytes:
    return post(TE, *fields, body=sizes) + NEXT


CORPUS: dict[str, bytes] = {
    # valid, as baselines
    "get": b"GET {p}/a?x=1 HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "post-length": post(b"Content-Length: 5\r\n", body=b"hello") + NEXT,
    "post-chunked": chunked(b"5\r\nhello\r\n0\r\n\r\n"),
    "http10": b"GET {p}/a HTTP/1.0\r\n\r\n",
    "http10-keep-alive": b"GET {p}/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + NEXT,
    "close-then-more": b"GET {p}/a HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n" + NEXT,
    # bare CR or LF
    "bare-lf-everywhere": b"GET {p}/a HTTP/1.1\nHost: gw.test\n\n" + NEXT,
    "bare-lf-in-header": b"GET {p}/a HTTP/1.1\r\nHost: gw.test\nX: 1\r\n\r\n" + NEXT,
    "bare-cr-in-value": b"GET {p}/a HTTP/1.1\r\n" + H + b"X: a\rb\r\n\r\n" + NEXT,
    "bare-cr-request-line": b"GET {p}/a HTTP/1.1\r" + H + b"\r\n" + NEXT,
    "bare-lf-chunk-size": chunked(b"5\nhello\r\n0\r\n\r\n"),
    "bare-lf-chunk-data": chunked(b"5\r\nhello\n0\r\n\r\n"),
    "bare-lf-last-chunk": chunked(b"5\r\nhello\r\n0\n\n"),
    # whitespace before the colon, obs-fold
    "space-before-colon-cl": post(b"Content-Length : 5\r\n", body=b"hello") + NEXT,
    "space-before-colon-te": chunked(b"5\r\nhello\r\n0\r\n\r\n", b"Transfer-Encoding : x\r\n"),
    "tab-before-colon": post(b"Content-Length\t: 5\r\n", body=b"hello") + NEXT,
    "obs-fold": b"GET {p}/a HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n" + NEXT,
    "obs-fold-te": post(b"Transfer-Encoding:\r\n chunked\r\n", body=b"0\r\n\r\n") + NEXT,
    "obs-fold-cl": post(b"Content-Length: 5\r\n 0\r\n", body=b"hello") + NEXT,
    # chunk sizes
    "chunk-leading-zeros": chunked(b"0005\r\nhello\r\n0000\r\n\r\n"),
    "chunk-0x": chunked(b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk-plus": chunked(b"+5\r\nhello\r\n0\r\n\r\n"),
    "chunk-minus": chunked(b"-5\r\nhello\r\n0\r\n\r\n"),
    "chunk-overflow": chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
    "chunk-overflow-64": chunked(b"ffffffffffffffff5\r\nhello\r\n0\r\n\r\n"),
    "chunk-trailing-space": chunked(b"5 \r\nhello\r\n0\r\n\r\n"),
    "chunk-leading-space": chunked(b" 5\r\nhello\r\n0\r\n\r\n"),
    "chunk-underscore": chunked(b"0_5\r\nhello\r\n0\r\n\r\n"),
    "chunk-upper-hex": chunked(b"A\r\nhellohello\r\n0\r\n\r\n"),
    "chunk-ext": chunked(b"5;a=b\r\nhello\r\n0;c=d\r\n\r\n"),
    "chunk-ext-name-only": chunked(b"5;a\r\nhello\r\n0\r\n\r\n"),
    "chunk-ext-quoted": chunked(b'5;a="b;c"\r\nhello\r\n0\r\n\r\n'),
    "chunk-ext-lf": chunked(b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    "chunk-ext-empty": chunked(b"5;\r\nhello\r\n0\r\n\r\n"),
    "chunk-too-long": chunked(b"3\r\nhello\r\n0\r\n\r\n"),
    "chunk-too-short": chunked(b"7\r\nhello\r\n0\r\n\r\n"),
    "chunk-no-crlf-after-data": chunked(b"5\r\nhello0\r\n\r\n"),
    "chunk-no-last-chunk-crlf": post(TE, body=b"5\r\nhello\r\n0\r\n") + NEXT,
    # Transfer-Encoding, duplicated or listed
    "te-twice": chunked(b"5\r\nhello\r\n0\r\n\r\n", TE),
    "te-chunked-chunked": post(b"Transfer-Encoding: chunked, chunked\r\n", body=b"0\r\n\r\n"),
    "te-gzip-chunked": post(b"Transfer-Encoding: gzip, chunked\r\n", body=b"0\r\n\r\n") + NEXT,
    "te-chunked-gzip": post(b"Transfer-Encoding: chunked, gzip\r\n", body=b"0\r\n\r\n") + NEXT,
    "te-identity": post(b"Transfer-Encoding: identity\r\n", body=b"hello") + NEXT,
    "te-identity-length": post(
        b"Transfer-Encoding: identity\r\nContent-Length: 5\r\n", body=b"hello"
    )
    + NEXT,
    "te-case": chunked(b"5\r\nhello\r\n0\r\n\r\n").replace(b"chunked", b"cHuNkEd"),
    "te-spaces": post(b"Transfer-Encoding:  chunked  \r\n", body=b"0\r\n\r\n") + NEXT,
    "te-vertical-tab": post(b"Transfer-Encoding: chunked\x0b\r\n", body=b"0\r\n\r\n") + NEXT,
    "te-xchunked": post(b"Transfer-Encoding: xchunked\r\n", body=b"0\r\n\r\n") + NEXT,
    "te-chunked-semicolon": post(b"Transfer-Encoding: chunked;\r\n", body=b"0\r\n\r\n") + NEXT,
    "te-empty-element": post(b"Transfer-Encoding: , chunked\r\n", body=b"0\r\n\r\n") + NEXT,
    "te-empty": post(b"Transfer-Encoding: \r\n", body=b"") + NEXT,
    "te-then-cl": chunked(b"0\r\n\r\n", b"Content-Length: 3\r\n"),
    "cl-then-te": post(b"Content-Length: 3\r\n", TE, body=b"0\r\n\r\n") + NEXT,
    "cl-then-te-smuggle": post(b"Content-Length: 4\r\n", TE, body=b"1\r\nZ\r\n0\r\n\r\n") + NEXT,
    # Content-Length with signs, leading zeros, commas, duplicates
    "cl-plus": post(b"Content-Length: +5\r\n", body=b"hello") + NEXT,
    "cl-minus": post(b"Content-Length: -5\r\n", body=b"hello") + NEXT,
    "cl-leading-zeros": post(b"Content-Length: 005\r\n", body=b"hello") + NEXT,
    "cl-list-same": post(b"Content-Length: 5, 5\r\n", body=b"hello") + NEXT,
    "cl-list-different": post(b"Content-Length: 5, 6\r\n", body=b"hello!") + NEXT,
    "cl-twice-same": post(b"Content-Length: 5\r\nContent-Length: 5\r\n", body=b"hello") + NEXT,
    "cl-twice-different": post(b"Content-Length: 5\r\nContent-Length: 0\r\n", body=b"hello") + NEXT,
    "cl-spaces": post(b"Content-Length:  5  \r\n", body=b"hello") + NEXT,
    "cl-two-numbers": post(b"Content-Length: 5 5\r\n", body=b"hello") + NEXT,
    "cl-hex": post(b"Content-Length: 0x5\r\n", body=b"hello") + NEXT,
    "cl-underscore": post(b"Content-Length: 0_5\r\n", body=b"hello") + NEXT,
    "cl-overflow": post(b"Content-Length: 18446744073709551621\r\n", body=b"hello") + NEXT,
    "cl-empty": post(b"Content-Length: \r\n", body=b"") + NEXT,
    # NUL and control characters
    "nul-in-value": b"GET {p}/a HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n" + NEXT,
    "soh-in-value": b"GET {p}/a HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n" + NEXT,
    "del-in-value": b"GET {p}/a HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n" + NEXT,
    "esc-in-value": b"GET {p}/a HTTP/1.1\r\n" + H + b"X: \x1b[31m\r\n\r\n" + NEXT,
    "nul-in-name": b"GET {p}/a HTTP/1.1\r\n" + H + b"X\x00Y: a\r\n\r\n" + NEXT,
    "space-in-name": b"GET {p}/a HTTP/1.1\r\n" + H + b"X Y: a\r\n\r\n" + NEXT,
    "empty-name": b"GET {p}/a HTTP/1.1\r\n" + H + b": a\r\n\r\n" + NEXT,
    "nul-in-target": b"GET {p}/a\x00b HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "del-in-target": b"GET {p}/a\x7fb HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "high-bytes-in-value": b"GET {p}/a HTTP/1.1\r\n" + H + b"X: \xe4\xbd\xa0\r\n\r\n" + NEXT,
    # HTTP/1.0 with Transfer-Encoding, HTTP/0.9, other versions
    "http10-te": post(b"Connection: keep-alive\r\n", TE, body=b"0\r\n\r\n", version=b"1.0") + NEXT,
    "http10-te-cl": post(TE, b"Content-Length: 5\r\n", body=b"0\r\n\r\n", version=b"1.0") + NEXT,
    "http09": b"GET {p}/a\r\n\r\n" + NEXT,
    "http09-headers-body": b"POST {p}/a\r\n" + H + b"Content-Length: 5\r\n\r\nhello" + NEXT,
    "http12": b"GET {p}/a HTTP/1.2\r\n" + H + b"\r\n" + NEXT,
    "http20": b"GET {p}/a HTTP/2.0\r\n" + H + b"\r\n" + NEXT,
    "http-lowercase": b"GET {p}/a http/1.1\r\n" + H + b"\r\n" + NEXT,
    "version-leading-zero": b"GET {p}/a HTTP/01.1\r\n" + H + b"\r\n" + NEXT,
    "version-trailing-space": b"GET {p}/a HTTP/1.1 \r\n" + H + b"\r\n" + NEXT,
    # absolute-form and Host
    "absolute-form": b"GET http://gw.test{p}/a HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "absolute-form-other-host": b"GET http://other.test{p}/a HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "absolute-form-https": b"GET https://gw.test{p}/a HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "two-hosts": b"GET {p}/a HTTP/1.1\r\n" + H + b"Host: other.test\r\n\r\n" + NEXT,
    "no-host": b"GET {p}/a HTTP/1.1\r\n\r\n" + NEXT,
    "host-with-space": b"GET {p}/a HTTP/1.1\r\nHost: gw test\r\n\r\n" + NEXT,
    "host-with-path": b"GET {p}/a HTTP/1.1\r\nHost: gw.test/x\r\n\r\n" + NEXT,
    # Expect
    "expect-continue": post(b"Expect: 100-continue\r\nContent-Length: 5\r\n", body=b"hello") + NEXT,
    "expect-unknown": post(b"Expect: 200-ok\r\nContent-Length: 5\r\n", body=b"hello") + NEXT,
    "expect-continue-http10": post(
        b"Expect: 100-continue\r\nContent-Length: 5\r\n", body=b"hello", version=b"1.0"
    ),
    # trailers carrying framing
    "trailer-cl": chunked(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
    "trailer-te": chunked(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    "trailer-host": chunked(b"5\r\nhello\r\n0\r\nHost: other.test\r\n\r\n"),
    "trailer-reserved": chunked(b"5\r\nhello\r\n0\r\nX-Hanshu-Invocation-Id: forged\r\n\r\n"),
    "trailer-obs-fold": chunked(b"5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n"),
    # methods
    "method-lowercase": b"get {p}/a HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "method-unknown-token": b"FOO {p}/a HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "method-not-token": b"G@T {p}/a HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "method-tab": b"GET\t{p}/a HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    "two-spaces": b"GET  {p}/a HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
    # pipelining after a body-less request that carries a body
    "get-with-length": b"GET {p}/a HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello" + NEXT,
    "get-with-smuggled-body": b"GET {p}/a HTTP/1.1\r\n"
    + H
    + b"Content-Length: 34\r\n\r\nGET {p}/hidden HTTP/1.1\r\nHost: x\r\n\r\n"
    + NEXT,
    "get-with-chunked-body": b"GET {p}/a HTTP/1.1\r\n"
    + H
    + TE
    + b"\r\n5\r\nhello\r\n0\r\n\r\n"
    + NEXT,
    "delete-with-length": b"DELETE {p}/a HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi" + NEXT,
    "options-star": b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n" + NEXT,
}


def corpus() -> dict[str, bytes]:
    """Each case's bytes, its name (a path segment) in place of {p}."""
    return {name: data.replace(b"{p}", f"/{name}".encode()) for name, data in CORPUS.items()}


@pytest.mark.parametrize("server", ["gateway", "runtime"])
def test_the_corpus_is_framed_as_h11_frames_it(targets, server):
    faults = asyncio.run(run_all(targets[server], corpus()))
    assert not faults, "\n".join(faults)


# -- mutations of valid requests ---------------------------------------------------------

VALID = [
    b"GET /m/a?x=1 HTTP/1.1\r\nHost: gw.test\r\nAccept: */*\r\n\r\n",
    b"POST /m/b HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /m/c HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;e=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    b"PUT /m/d HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
]
# What smuggling lives on: line ends, separators, digits and signs, and whole fields.
PIECES = [
    b"\r", b"\n", b"\r\n", b" ", b"\t", b"\x00", b"\x0b", b"\x7f", b",", b";", b":", b"0",
    b"x", b"-", b"+", b"a", b"chunked", b"HTTP/1.0", b"\r\n ",
    b"Transfer-Encoding: chunked\r\n", b"Content-Length: 3\r\n", b"Host: b\r\n",
    b"Connection: close\r\n", b"Expect: 100-continue\r\n",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)) + VALID[0])  # a request pipelined behind
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        piece = draw(st.sampled_from(PIECES))
        action = draw(st.sampled_from(("insert", "replace", "delete")))
        if action == "insert":
            data[position:position] = piece
        elif action == "replace":
            data[position : position + len(piece)] = piece
        else:
            del data[position : position + draw(st.integers(1, 4))]
    return bytes(data)


async def _one_by_one(target: Target, inputs: list[bytes]) -> list[str]:
    """Each input on its own connection, one after the other: a mutation may spoil any
    mark in a path, so what the replica saw is told apart by when it came."""
    faults = []
    offset = target.offset()
    for number, data in enumerate(inputs):
        outcome = await exchange(target.port, data, len(reference(data).requests))
        seen, offset = target.seen_since(offset)
        faults += judge(f"mutation {number}", data, outcome, seen)
    return faults


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure is reproduced as is
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(inputs=st.lists(mutated(), min_size=4, max_size=4))
def test_mutations_of_valid_requests_are_framed_as_h11_frames_them(
    targets: dict[str, Any], inputs: list[bytes]
) -> None:
    async def both() -> list[str]:
        found = await asyncio.gather(
            _one_by_one(targets["gateway"], inputs), _one_by_one(targets["runtime"], inputs)
        )
        pairs = zip(targets, found, strict=True)
        return [f"{name}: {fault}" for name, faults in pairs for fault in faults]

    faults = asyncio.run(both())
    assert not faults, "\n".join(faults)
