"""The operator's lifecycle: every setting in one startup handler, the login kopf and our
client share, and clean-up. (The autoscaler is its own component: hanshu_autoscaler.)

Cost at start-up: one paged LIST of the Triggers (``trigger_index``); kopf then lists
every watched kind in pages of LIST_CHUNK and works on at most WORKERS_PER_KIND objects of
each kind at a time (docs/operations.md, "Sizing the operator")."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from hanshu_api import GROUP, LABEL_MANAGED_BY, MANAGED_BY
from hanshu_api.kube import KubeClient, load_config
from hanshu_api.loop_lag import stop_watching_loop, watch_loop

from . import kopf_backpressure
from .config import ConfigError, config_from_env
from .schedule_catalog import start_schedule_catalog
from .state import OperatorState, operator_state
from .stream_catalog import start_stream_catalog
from .warm_pools import start_warm_pools

LIST_CHUNK = 500
WORKERS_PER_KIND = 48
WORKER_IDLE_SECONDS = 0.05
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Every operator setting, in one place."""
    # Progress and the last-handled spec go to annotations: the CRDs' structural schemas
    # would prune kopf's default status.kopf field.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # We watch exact namespaces (or the whole cluster) and our CRDs are installed before us
    # (Helm's crds/), so there is nothing to rescan at run time.
    settings.scanning.disabled = True
    # A restart lists every Function and Trigger: in pages, not one response of 10,000.
    settings.watching.chunk_size = LIST_CHUNK
    # Only our own Deployments and pods, filtered by the API server: kopf keeps a record
    # of every object its watches deliver, and a namespace may hold many of other owners.
    for group_version, plural in (("apps/v1", "deployments"), ("v1", "pods")):
        settings.watching.label_selectors[group_version, plural] = MANAGED_SELECTOR
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.queueing.error_delays = (1, 2, 5, 10, 30, 60)
    # kopf starts a worker per object with news, each holding the object's body and its
    # own bookkeeping (~40 KiB): a start with 10,000 Functions and Triggers ran them all
    # at once and peaked at hundreds of MiB. A bound per resource kind; and a worker done
    # with its object frees its place at once, not after kopf's default 5 s of idling
    # (with 48 workers, 5 s of idling drained a listing at 10 objects a second while
    # kopf queued every listed body; an event that comes later starts a new worker).
    settings.queueing.worker_limit = WORKERS_PER_KIND
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    # And no more than as many waiting for a worker: the rest stays in the API server.
    kopf_backpressure.install()
    try:
        config = config_from_env()
    except ConfigError as error:
        # Under `kopf run` (python -m hanshu_operator checks before kopf starts): retrying
        # cannot fix the environment, so stop with the line that says what to set.
        raise kopf.PermanentError(str(error)) from None
    state = OperatorState(config=config, kube=KubeClient(load_config()))
    if config.metrics_port:
        from prometheus_client import start_http_server

        state.metrics_server = start_http_server(config.metrics_port)
    memo["hanshu"] = state
    state.loop_lag = watch_loop()
    # Every Trigger filed before any handler runs: no route is judged on a partial
    # picture (what kopf's indexes did, before a bound on its workers made them deadlock).
    filed = await state.triggers.load(state.kube, config.namespaces or (None,))
    logging.getLogger("hanshu.operator").info("%d Triggers filed at start-up", filed)
    start_schedule_catalog(state, memo)
    start_stream_catalog(state, memo)
    start_warm_pools(state)


@kopf.on.probe(id="eventLoopLag")
def event_loop_lag(memo: kopf.Memo, **_: Any) -> dict[str, float]:
    """In /healthz: how late the loop ran what was due over the last minute (p99, max).
    A busy operator catching up answers with a high lag, and is alive: the liveness
    probe waits for the answer (charts/hanshu, operator.yaml), it does not judge it."""
    state: OperatorState | None = memo.get("hanshu")  # None until configure() has run
    lag = state.loop_lag if state is not None else None
    return lag.summary().as_dict() if lag is not None else {}


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf and our own client use the same credentials: in-cluster or KUBECONFIG."""
    config = load_config()
    token = config.token
    if token is None and config.token_file:
        with open(config.token_file, encoding="utf-8") as token_file:
            token = token_file.read().strip()
    return kopf.ConnectionInfo(
        server=config.server,
        # kubeconfig '*-data' stays in memory (PEM): kopf takes it as such, never a path too.
        ca_path=None if config.ca_data else config.ca_file,
        ca_data=config.ca_data,
        insecure=config.insecure,
        token=token,
        certificate_path=None if config.cert_data else config.cert_file,
        certificate_data=config.cert_data,
        private_key_path=None if config.key_data else config.key_file,
        private_key_data=config.key_data,
        default_namespace=config.namespace,
        # Bound service-account tokens expire; kopf logs in again when the API says 401.
    )


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    state = operator_state(memo)
    for item in state.background:
        if isinstance(item, asyncio.Task):
            item.cancel()
        else:
            await item.cleanup()
    await state.kube.close()
    stop_watching_loop()
    if state.metrics_server is not None:
        server, _thread = state.metrics_server
        server.shutdown()
