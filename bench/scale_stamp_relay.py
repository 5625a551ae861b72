"""A byte relay between the operator and the emulated API server that notes when each
``deployments/{name}/scale`` write leaves the operator.

kmock serves every request on one loop, a few milliseconds each: when cold requests come
back to back, the scale write waits there behind the status writes, Events and reads the
previous wake caused. A real API server serves those side by side. Stamped here, in a
process of its own that only moves bytes, the time is when the operator sent the write,
not when the emulator got round to it.

    python bench/scale_stamp_relay.py LISTEN_PORT UPSTREAM_PORT

Prints ``listening`` once ready, then ``scale NAME SECONDS`` per write, SECONDS on
``time.monotonic()``: CLOCK_MONOTONIC on Linux, the same clock in every process.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time

# A request line of a scale write, e.g. "PATCH /apis/apps/v1/namespaces/b/deployments/fn/scale
# HTTP/1.1": kmock is plain HTTP on loopback, so its requests can be read as they pass.
SCALE_WRITE = re.compile(
    rb"(?:PATCH|PUT) /apis/apps/v1/namespaces/[^/ ]+/deployments/([^/ ]+)/scale[ ?]"
)
# A request line split between two reads is found in the carried-over tail.
TAIL_BYTES = 512


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stamp: bool) -> None:
    tail = b""
    try:
        while data := await reader.read(65536):
            if stamp:
                now = time.monotonic()
                window = tail + data
                for match in SCALE_WRITE.finditer(window):
                    if match.end() > len(tail):  # not one already seen in the tail
                        print(f"scale {match.group(1).decode()} {now:.6f}", flush=True)
                tail = window[-TAIL_BYTES:]
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(listen_port: int, upstream_port: int) -> None:
    async def relay(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(
            pipe(client_reader, upstream, stamp=True), pipe(upstream_reader, client, stamp=False)
        )

    server = await asyncio.start_server(relay, "127.0.0.1", listen_port)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
