"""``python -m hanshu_gateway``: the gateway in a cluster (Triggers, Functions and
EndpointSlices from the Kubernetes API), or ``python -m hanshu_gateway dev PATH...``: the
whole platform on this machine, from manifest files."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .loop import run


async def _serve_until_signalled(start: object, stop: object) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await start()  # type: ignore[operator]
    await stopping.wait()
    await stop()  # type: ignore[operator]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hanshu_gateway")
    commands = parser.add_subparsers(dest="command")
    dev = commands.add_parser("dev", help="run gateway, autoscaler and functions locally")
    dev.add_argument("paths", nargs="+", help="Function / Trigger / Secret manifests or folders")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--internal-port", type=int, default=0)
    dev.add_argument("--stable-window", type=float, default=60.0)
    dev.add_argument("--cold-start-timeout", type=float, default=60.0)
    dev.add_argument("--queue-limit", type=int, default=1000)
    dev.add_argument("--max-body-bytes", type=int, default=6 * 1024 * 1024)
    dev.add_argument("--stats-interval", type=float, default=1.0)
    dev.add_argument("--header-timeout", type=float, default=10.0)
    dev.add_argument("--autoscaler-port", type=int, default=0)
    dev.add_argument(
        "--nats-url",
        default="",
        help="an existing NATS for async invocations ('off' for none); default: start one",
    )
    dev.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="do not run a dispatcher in this process (run python -m hanshu_dispatcher)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "dev":
        from hanshu_operator.autoscaler import Policy

        from .devmode import DevStack

        stack = DevStack(
            args.paths,
            port=args.port,
            internal_port=args.internal_port,
            policy=Policy(
                stable_window=args.stable_window, panic_window=max(1.0, args.stable_window / 10)
            ),
            cold_start_timeout=args.cold_start_timeout,
            queue_limit=args.queue_limit,
            max_body_bytes=args.max_body_bytes,
            stats_interval=args.stats_interval,
            header_timeout=args.header_timeout,
            autoscaler_port=args.autoscaler_port,
            nats_url=args.nats_url,
            dispatcher=not args.no_dispatcher,
        )
        run(_serve_until_signalled(stack.start, stack.stop))
    else:
        from .kube import KubeGateway
        from .server import ConfigError

        try:
            gateway = KubeGateway.from_env()
        except ConfigError as bad:
            # One line naming the variable, where a pod's logs and events show it.
            print(f"hanshu-gateway: {bad}", file=sys.stderr, flush=True)
            sys.exit(1)
        except (OSError, RuntimeError, ValueError, KeyError) as bad:
            print(
                f"hanshu-gateway: cannot load Kubernetes credentials ({bad}); set KUBECONFIG "
                "to a readable kubeconfig or run in a pod with a service account",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(1)
        run(_serve_until_signalled(gateway.start, gateway.stop))


if __name__ == "__main__":
    main()
