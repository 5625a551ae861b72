"""The autoscaler as its own process in a cluster: the catalog's watches, the Lease, the
stats intake, the decision loop; until SIGTERM, when a leader gives its Lease up so that
the standby takes over at its next look instead of after the lease duration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web
from hanshu_api.kube import KubeClient, load_config
from hanshu_api.loop_lag import LoopLag, watch_loop

from .canary_controller import CanaryController
from .catalog import Catalog
from .config import AutoscalerConfig
from .kube_scaler import KubeScaler
from .lease import LeaseElector
from .reporting import KubeReporter
from .service import AutoscalerService

log = logging.getLogger("hanshu.autoscaler")


def health_app(service: AutoscalerService, elector: LeaseElector, lag: LoopLag) -> web.Application:
    app = service.app()

    async def healthz(_: web.Request) -> web.Response:
        """Alive: it answers. Which replica leads, and the loop's lag, for people."""
        role = "leader" if elector.is_leader() else "standby"
        return web.json_response(
            {"role": role, "leader": elector.holder, "eventLoopLag": lag.summary().as_dict()}
        )

    app.router.add_get("/healthz", healthz)
    return app


def elected(service: AutoscalerService, canaries: CanaryController) -> None:
    """Leadership begins: both start afresh from the reports that now come here."""
    service.elected()
    canaries.elected()


async def serve(config: AutoscalerConfig, stop: asyncio.Event | None = None) -> None:
    kube = KubeClient(load_config())
    scaler = KubeScaler(kube)
    service = AutoscalerService(scaler, lambda: [], policy=config.policy)
    catalog = Catalog(kube, scaler, config.namespaces, on_gone=service.forget)
    service.functions = catalog.functions
    service.scaling_of = catalog.scaling.get
    service.on_scaled = KubeReporter(kube)
    canaries = CanaryController(kube, interval=config.canary_interval_seconds)
    catalog.function_observers.append(canaries.on_function)
    service.on_outcomes = canaries.ingest
    elector = LeaseElector(
        kube,
        config.lease_namespace,
        config.lease_name,
        config.identity,
        duration_seconds=config.lease_duration_seconds,
        renew_seconds=config.renew_seconds,
        on_elected=lambda: elected(service, canaries),
    )
    service.leadership = elector
    canaries.leadership = elector
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port)
    runner = web.AppRunner(health_app(service, elector, watch_loop()), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", config.port).start()
    watches = asyncio.create_task(catalog.run())
    # Leading only with a current picture: the first lists are in before the first try.
    await catalog.listed.wait()
    tasks = [
        watches,
        asyncio.create_task(elector.run()),
        asyncio.create_task(service.run()),
        asyncio.create_task(canaries.run()),
    ]
    log.info("autoscaler %s listening on :%d", config.identity, config.port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await elector.release()
        await runner.cleanup()
        await service.close()
        await kube.close()
