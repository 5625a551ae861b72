"""``python -m hanshu_gateway``: the gateway in a cluster (Triggers, Functions and
EndpointSlices from the Kubernetes API). The whole platform on one machine is ``hanshu dev``
(package hanshu_cli), which sits on top of the gateway, the operator and the dispatcher."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from hanshu_api.logs import configure_logging

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
    if sys.argv[1:2] == ["dev"]:
        print(
            "hanshu-gateway: dev mode is the hanshu command now: hanshu dev "
            + " ".join(sys.argv[2:]),
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)
    argparse.ArgumentParser(
        prog="python -m hanshu_gateway",
        description="The gateway, configured from HANSHU_* variables (see docs/install.md).",
    ).parse_args()
    configure_logging("gateway")
    from .kube_gateway import KubeGateway
    from .settings import ConfigError

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
