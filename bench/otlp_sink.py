"""A stand-in OTLP/HTTP collector for the benchmarks' "tracing on" rows: it accepts every
export (an empty ExportTraceServiceResponse is an empty protobuf message) and, on exit,
prints how many exports and bytes it took, so the spans' whole cost (building, batching,
encoding, sending) is paid by the process measured, and none by a real collector's CPU.

    python bench/otlp_sink.py [--port 4318]
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python bench/gateway_hotpath.py
"""

from __future__ import annotations

import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

taken = {"exports": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        taken["exports"] += 1
        taken["bytes"] += length
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=4318)
    server = ThreadingHTTPServer(("127.0.0.1", parser.parse_args().port), Sink)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        print(f"otlp sink: {taken['exports']} exports, {taken['bytes']} bytes", flush=True)


if __name__ == "__main__":
    main()
