"""The ``hanshu`` command: from a folder of code to a called Function, its logs and its bill.

Each command is thin: it reads (the cluster, a folder, the gateway), calls the pure
functions of folder / views / logs / usage / calls, and prints with rich.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from hanshu_api import RUNTIME_CONTAINER
from hanshu_api.invocation_record import State as InvocationState
from hanshu_api.versions import spec_digest
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from . import (
    calls,
    dev_state,
    folder,
    invoke_target,
    logs,
    publishing,
    templates,
    usage,
    views,
)
from .cluster import Cluster, Target
from .errors import CliError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DOCS_SHIPPING_LOGS = "docs/operations.md#logs"


@dataclass
class State:
    target: Target
    debug: bool = False
    _cluster: Cluster | None = None

    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster.connect(self.target)
        return self._cluster


class HanshuGroup(TyperGroup):
    """Every failure is one readable line on stderr and a non-zero exit; ``--debug`` adds
    the traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except CliError as failed:
            _report(ctx, str(failed))
            raise typer.Exit(failed.exit_code) from failed
        except KeyboardInterrupt as stopped:
            raise typer.Exit(130) from stopped
        except Exception as unexpected:
            _report(
                ctx,
                f"{type(unexpected).__name__}: {' '.join(str(unexpected).split())}",
                hint=True,
            )
            raise typer.Exit(1) from unexpected


def _report(ctx: Any, message: str, hint: bool = False) -> None:
    debug = isinstance(ctx.obj, State) and ctx.obj.debug
    if debug:
        err.print(traceback.format_exc(), markup=False)
    suffix = "" if debug or not hint else " (--debug shows the traceback)"
    err.print(f"[bold red]error:[/] {message}{suffix}", soft_wrap=True)


app = typer.Typer(
    cls=HanshuGroup,
    name="hanshu",
    help="Hanshu: from a folder of Python to a called Function, its logs and its bill.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def options(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None,
        typer.Option(help="The kubeconfig file (else $KUBECONFIG, else ~/.kube/config)."),
    ] = None,
    context: Annotated[
        str | None, typer.Option(help="The kubeconfig context (else its current context).")
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="The namespace (else the context's, or default)."),
    ] = None,
    debug: Annotated[bool, typer.Option(help="Show the traceback of a failure.")] = False,
) -> None:
    """Hanshu: from a folder of Python to a called Function, its logs and its bill."""
    ctx.obj = State(Target(kubeconfig, context, namespace), debug)


def _state(ctx: typer.Context) -> State:
    state = ctx.find_object(State)
    assert state is not None
    return state


def _table(columns: list[str], rows: list[list[str]], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


# init


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="The Function's name (a DNS label: hello-world).")],
    template: Annotated[
        str, typer.Option(help="event (a handler), flask (WSGI app) or fastapi (ASGI app).")
    ] = "event",
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write it (default: ./NAME).")
    ] = None,
) -> None:
    """Write a Function folder: the handler, requirements.txt, the Function and Trigger
    manifest, a README. It deploys as is (hanshu deploy NAME) and runs locally (hanshu dev
    NAME)."""
    files = templates.render(name, template)
    target = directory or Path(name)
    if target.exists() and any(target.iterdir()):
        raise CliError(f"{target} exists and is not empty: choose another --dir")
    target.mkdir(parents=True, exist_ok=True)
    for file_name, content in files.items():
        (target / file_name).write_text(content)
    out.print(f"wrote {target}/ ({', '.join(sorted(files))})")
    if template == "event":
        out.print(f"next: hanshu deploy {target}   or locally: hanshu dev {target}")
    else:
        out.print(
            f"next: build the image (see {target}/README.md), then "
            f"hanshu deploy {target} --image REGISTRY/{name}:v1"
        )


# deploy


@app.command()
def deploy(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The Function's folder.")] = Path("."),
    image: Annotated[
        str | None,
        typer.Option(help="Run this image's code (built from the folder: packages need one)."),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the Function is Ready.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Ready.")] = 180.0,
) -> None:
    """Apply a folder as a Function (inline code; a ConfigMap when larger; --image for code
    that needs packages) and its Triggers, with server-side apply; wait until Ready and
    print the URL, or print why it is not and exit non-zero."""
    state = _state(ctx)
    cluster = state.cluster()
    read = folder.read_folder(path)
    for skipped in read.skipped:
        err.print(f"skipped {skipped}: no Kubernetes object to apply", markup=False)
    plan = folder.plan_deploy(read, cluster.namespace, image)
    cluster.ensure_installed()
    for manifest in plan.objects():
        cluster.apply(manifest)
        err.print(
            f"applied {manifest['kind']} {plan.namespace}/{manifest['metadata']['name']}"
            + (f" (code: {plan.code_source})" if manifest is plan.function else "")
        )
    if not wait:
        return
    function, triggers = _wait_ready(cluster, plan, timeout)
    url = views.condition(function) and (function.get("status") or {}).get("url")
    out.print(f"[green]Function {plan.name} is Ready[/]")
    for trigger in triggers:
        status = trigger.get("status") or {}
        where = status.get("url") or status.get("nextFireTime") or ""
        out.print(
            f"  Trigger {trigger['metadata']['name']} ({views.trigger_kind(trigger)}) {where}"
        )
    if url and not any((t.get("status") or {}).get("url") == url for t in triggers):
        out.print(f"  URL {url}")


def _verdict(obj: dict[str, Any]) -> str | None:
    """'ready', 'failed' or None (not decided yet) for an object's current status."""
    if not views.is_current(obj):
        return None
    found = views.condition(obj)
    if found is None:
        return None
    return {"True": "ready", "False": "failed"}.get(str(found.get("status")))


def _wait_ready(
    cluster: Cluster, plan: folder.Plan, timeout: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    deadline = time.monotonic() + timeout
    wanted = {t["metadata"]["name"] for t in plan.triggers}
    with err.status(f"waiting for Function {plan.name} to be Ready") as progress:
        while True:
            function = cluster.function(plan.name, plan.namespace)
            triggers = [
                t for t in cluster.triggers(plan.namespace) if t["metadata"]["name"] in wanted
            ]
            for obj, kind in [(function, "Function"), *((t, "Trigger") for t in triggers)]:
                if _verdict(obj) == "failed":
                    found = views.condition(obj) or {}
                    raise CliError(
                        f"{kind} {obj['metadata']['name']} is not Ready: "
                        f"{found.get('reason', '')}: {found.get('message', '')}"
                    )
            if _verdict(function) == "ready" and all(_verdict(t) == "ready" for t in triggers):
                return function, triggers
            found = views.condition(function) or {}
            progress.update(
                f"waiting for Function {plan.name}: "
                f"{found.get('reason') or 'not reconciled yet'} {found.get('message') or ''}"
            )
            if time.monotonic() > deadline:
                raise CliError(
                    f"Function {plan.name} is not Ready after {timeout:g}s: "
                    f"{found.get('reason') or 'the operator has not reported on it'}"
                    f"{': ' + str(found['message']) if found.get('message') else ''} "
                    f"(hanshu describe {plan.name})"
                )
            time.sleep(0.5)


# get / describe


@app.command()
def get(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One Function (default: all).")] = None,
) -> None:
    """Functions: Ready, replicas (ready/desired), the newest version, aliases with their
    weights, the last scaling decision and why, whether the warm pool serves its cold
    requests (or why not), URL; and the pool."""
    cluster = _state(ctx).cluster()
    found = [cluster.function(name)] if name else cluster.functions()
    if not found:
        out.print(f"no Functions in namespace {cluster.namespace} (hanshu init, hanshu deploy)")
        return
    out.print(_table(views.FUNCTION_COLUMNS, [views.function_row(f) for f in found]))
    out.print(views.pool_size_text(cluster.warm_pool(), cluster.namespace))


@app.command()
def describe(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The Function.")]
) -> None:
    """A Function in full: its status, conditions, Triggers and recent Events."""
    cluster = _state(ctx).cluster()
    function = cluster.function(name)
    status = function.get("status") or {}
    spec = function.get("spec") or {}
    out.print(f"[bold]Function[/] {cluster.namespace}/{name}")
    out.print(f"  handler     {spec.get('handler')} ({spec.get('handlerType', 'event')})")
    out.print(f"  ready       {views.ready_text(function)}")
    out.print(f"  replicas    {views.replicas_text(function)} (ready/desired)")
    out.print(f"  last scale  {views.last_scale_text(function)}")
    pooled = views.condition(function, "PoolEligible")
    out.print(
        f"  warm pool   {views.pool_text(function)}"
        + (f": {pooled.get('message')}" if pooled and pooled.get("message") else "")
    )
    out.print(f"  url         {status.get('url') or '-'}")
    latest = status.get("latestVersion")
    out.print(f"  version     {'-' if latest is None else latest} (newest published)")
    aliases = views.alias_rows(function)
    if aliases:
        out.print(_table(views.ALIAS_COLUMNS, aliases, "Aliases"))
    out.print(_table(views.CONDITION_COLUMNS, views.condition_rows(function), "Conditions"))
    triggers = views.triggers_of(cluster.triggers(), name)
    out.print(
        _table(views.TRIGGER_COLUMNS, [views.trigger_row(t) for t in triggers], "Triggers")
        if triggers
        else "Triggers: none (nothing calls this Function; add a Trigger)"
    )
    names = {("Function", name), *(("Trigger", t["metadata"]["name"]) for t in triggers)}
    events = views.events_about(cluster.events(), names)
    out.print(
        _table(views.EVENT_COLUMNS, [views.event_row(e) for e in events], "Events")
        if events
        else "Events: none recent"
    )


# versions and aliases (docs/versions.md)


@app.command()
def publish(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The Function.")],
    description: Annotated[
        str | None, typer.Option(help="What changed in this version, kept with it.")
    ] = None,
) -> None:
    """Publish the Function's spec as its next version (an immutable FunctionVersion);
    an unchanged spec returns the newest version instead."""
    cluster = _state(ctx).cluster()
    function = cluster.function(name)
    versions = publishing.published(cluster.function_versions(), name)
    same = publishing.unchanged_version(function, versions)
    if same is not None:
        out.print(
            f"Function {name} is unchanged since version {same}: version {same} is returned "
            "(nothing published)"
        )
        return
    number = max((v.number for v in versions), default=0) + 1
    cluster.create_function_version(publishing.version_manifest(function, number, description))
    out.print(f"published version {number} of Function {name}")
    out.print(f"  point an alias at it: hanshu alias set {name} live --version {number}")


@app.command(name="versions")
def versions_command(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The Function.")]
) -> None:
    """A Function's versions: digest, when published, what references them, replicas;
    and its aliases with where they route."""
    cluster = _state(ctx).cluster()
    function = cluster.function(name)
    found = publishing.published(cluster.function_versions(), name)
    digest = spec_digest(publishing.snapshot(function))
    out.print(_table(views.VERSION_COLUMNS, views.version_rows(found, function, digest)))
    aliases = views.alias_rows(function)
    if aliases:
        out.print(_table(views.ALIAS_COLUMNS, aliases, "Aliases"))


alias_app = typer.Typer(
    cls=HanshuGroup,
    help="Aliases: names (live, beta) that point at a version, optionally split with a second.",
    no_args_is_help=True,
)
app.add_typer(alias_app, name="alias")


@alias_app.command(name="set")
def alias_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The Function.")],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. live.")],
    version: Annotated[int, typer.Option(help="The version the alias points at.")],
    weight: Annotated[
        str | None,
        typer.Option(help="M=P%: send P percent (1-99) of the alias's requests to version M."),
    ] = None,
) -> None:
    """Point ALIAS at --version N, optionally sending --weight M=P% to version M (the
    alias is created if it does not exist; its canary, if any, is replaced)."""
    cluster = _state(ctx).cluster()
    function = cluster.function(name)
    numbers = {v.number for v in publishing.published(cluster.function_versions(), name)}
    split = publishing.parse_weight(weight) if weight is not None else None
    current = (function.get("spec") or {}).get("aliases") or []
    aliases = publishing.set_alias(current, alias, version, split, numbers)
    cluster.patch_aliases(function, aliases)
    routes = f"version {version}"
    if split is not None:
        routes = f"version {version} {100 - split[1]}%, version {split[0]} {split[1]}%"
    out.print(f"alias {alias} of Function {name} -> {routes}")


@app.command()
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The Function.")],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. live.")],
) -> None:
    """Send all of ALIAS's traffic back to its version: the additional version (and a
    canary shifting traffic to it) is dropped."""
    cluster = _state(ctx).cluster()
    function = cluster.function(name)
    current = (function.get("spec") or {}).get("aliases") or []
    aliases = publishing.rollback_alias(current, alias)
    cluster.patch_aliases(function, aliases)
    kept = next(a for a in aliases if a["name"] == alias)
    out.print(f"alias {alias} of Function {name} -> version {kept['version']} (all traffic)")


# invoke


def _trigger_target(
    cluster: Cluster, name: str, path: str, query: list[str]
) -> invoke_target.Target:
    """The Function's route as the cluster publishes it: its HTTP Trigger's status.url,
    extended by --path and --query."""
    cluster.function(name)  # a missing Function (or Hanshu) is said as such
    http = [
        t for t in views.triggers_of(cluster.triggers(), name) if "http" in (t.get("spec") or {})
    ]
    if not http:
        raise invoke_target.no_http_route(name, f"in namespace {cluster.namespace}")
    url = (http[0].get("status") or {}).get("url")
    if not url:
        found = views.condition(http[0]) or {}
        raise CliError(
            f"Trigger {http[0]['metadata']['name']} has no URL yet "
            f"({found.get('reason') or 'not reconciled'}): is the operator running? "
            "or give --gateway URL"
        )
    route = invoke_target.routes_of_triggers(http)[0]
    return invoke_target.Target(
        invoke_target.extend_url(str(url), path, query), methods=route.methods
    )


def _dev_function(dev: dev_state.DevState, name: str, namespace: str | None) -> str | None:
    """The namespace dev mode serves Function ``name`` in: the one given, else default,
    else the only one."""
    if namespace is not None:
        return namespace if dev.serves(namespace, name) else None
    found = sorted(ns for ns, served in dev.functions if served == name)
    if "default" in found:
        return "default"
    return found[0] if len(found) == 1 else None


def _dev_target(
    dev: dev_state.DevState,
    namespace: str,
    name: str,
    gateway: str | None,
    path: str,
    query: list[str],
    asynchronous: bool,
) -> invoke_target.Target:
    routes = dev.routes_of(namespace, name)
    if routes:
        route = invoke_target.KnownRoute(
            routes[0].trigger, routes[0].path, routes[0].host, routes[0].methods
        )
        return invoke_target.route_target(gateway or dev.public_url, route, name, path, query)
    return invoke_target.internal_target(
        dev.internal_url, namespace, name, dev.internal_token, path, query, asynchronous
    )


def _same_port(url: str, other: str) -> bool:
    return urllib.parse.urlsplit(url).port == urllib.parse.urlsplit(other).port


def _gateway_route(
    state: State, name: str, gateway: str, path: str, query: list[str]
) -> invoke_target.Target:
    """--gateway that is no dev mode's: the route from the cluster's Trigger objects."""
    try:
        cluster = state.cluster()
        cluster.function(name)
    except CliError as unknown:
        raise CliError(
            f"cannot find Function {name}'s route for --gateway {gateway}: no hanshu dev "
            f"serving it is running (state file {dev_state.state_path()}) and the cluster "
            f"cannot say: {unknown}"
        ) from unknown
    routes = invoke_target.routes_of_triggers(views.triggers_of(cluster.triggers(), name))
    if not routes:
        raise invoke_target.no_http_route(name, f"in namespace {cluster.namespace}")
    return invoke_target.route_target(gateway, routes[0], name, path, query)


def _resolve_target(
    state: State,
    name: str,
    gateway: str | None,
    path: str,
    query: list[str],
    asynchronous: bool,
) -> invoke_target.Target:
    """A running hanshu dev that serves the Function first (unless --kubeconfig or
    --context name a cluster), then the cluster's Triggers."""
    explicit_cluster = bool(state.target.kubeconfig or state.target.context)
    dev, ignored = dev_state.read_state()
    if ignored:
        err.print(ignored, markup=False)
    namespace = _dev_function(dev, name, state.target.namespace) if dev else None
    calls_dev = gateway is None or (dev is not None and _same_port(gateway, dev.public_url))
    if dev is not None and namespace is not None and not explicit_cluster and calls_dev:
        return _dev_target(dev, namespace, name, gateway, path, query, asynchronous)
    if gateway:
        return _gateway_route(state, name, gateway, path, query)
    return _trigger_target(state.cluster(), name, path, query)


@app.command()
def invoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The Function.")],
    data: Annotated[str | None, typer.Option(help="The request body: JSON text, or @file.")] = None,
    path: Annotated[
        str,
        typer.Option(
            help="Below the Function's route: /hello, ?name=Ada or hello?name=Ada extend it."
        ),
    ] = "",
    query: Annotated[
        list[str] | None,
        typer.Option("--query", "-q", help="'name=value' added to the query (repeatable)."),
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="HTTP method (default: POST with --data, else GET).")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="'Name: value' (repeatable).")
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option(
            help="Call the route through this gateway (default: a running hanshu dev, else "
            "the cluster's Trigger URL)."
        ),
    ] = None,
    asynchronous: Annotated[
        bool, typer.Option("--async", help="Invoke asynchronously: 202 and an invocation id.")
    ] = False,
    wait: Annotated[
        bool, typer.Option(help="With --async: follow the invocation to its end state.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 120.0,
) -> None:
    """Call a Function through its HTTP route (found from a running hanshu dev, else the
    cluster's Triggers; a Function without one through dev mode's internal path); print
    the status, the request id, whether it was a cold start and how long it took, then the
    body. Exits non-zero on a 4xx / 5xx."""
    if wait and not asynchronous:
        raise CliError("--wait follows an async invocation: add --async")
    target = _resolve_target(_state(ctx), name, gateway, path, query or [], asynchronous)
    if target.internal and wait:
        raise CliError(
            f"Function {name} has no HTTP Trigger: its async invocation is stored, but its "
            "status is read through a route (drop --wait, or add a Trigger with spec.http)"
        )
    body = calls.payload(data)
    headers = {**target.headers, **calls.parse_headers(header or [])}
    if asynchronous and not target.internal:
        headers[calls.ASYNC_HEADER] = calls.ASYNC
    url = target.url
    call = calls.Call(
        url, invoke_target.pick_method(method, body is not None, target), body, headers
    )
    if target.internal and call.body is None:
        call = calls.Call(url, call.method, b"{}", headers)
    with err.status(f"calling {name} at {url}"):
        reply = calls.send(call, timeout)
    if asynchronous and reply.status == 202:
        invocation_id, status_url = calls.accepted(reply)
        err.print(
            f"accepted: invocation {invocation_id}"
            + ("" if target.internal else f" (status: {status_url})")
        )
        if wait:
            _follow_invocation(invocation_id, status_url, headers, timeout)
        else:
            out.print(invocation_id)
        return
    style = "green" if reply.status < 400 else "red"
    err.print(
        f"[{style}]{reply.status} {reply.reason}[/]  request id {reply.request_id}  "
        f"{'cold start' if reply.cold_start else 'warm'}  {reply.seconds * 1000:.0f} ms"
    )
    out.print(reply.text(), markup=False, end="" if reply.text().endswith("\n") else "\n")
    if reply.status >= 400:
        raise typer.Exit(1)


def _follow_invocation(
    invocation_id: str, status_url: str, headers: dict[str, str], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    auth = {k: v for k, v in headers.items() if k.lower() != calls.ASYNC_HEADER.lower()}
    document: dict[str, Any] = {}
    with err.status(f"invocation {invocation_id}: enqueued") as progress:
        while time.monotonic() < deadline:
            reply = calls.send(calls.Call(status_url, "GET", None, auth), timeout)
            if reply.status != 200:
                raise CliError(
                    f"reading invocation {invocation_id}: {reply.status} {reply.text().strip()}"
                )
            document = json.loads(reply.body)
            state = calls.invocation_state(document)
            progress.update(
                f"invocation {invocation_id}: {state} (attempt {document.get('attempts', 0)})"
            )
            if state in calls.FINAL_STATES:
                break
            time.sleep(0.2)
        else:
            raise CliError(
                f"invocation {invocation_id} is still {calls.invocation_state(document)} "
                f"after {timeout:g}s (status: {status_url})"
            )
    state = calls.invocation_state(document)
    result = document.get("result") or {}
    style = "green" if state == InvocationState.SUCCEEDED else "red"
    err.print(
        f"[{style}]{state}[/]  invocation {invocation_id}  attempts {document.get('attempts')}"
        + (f"  status code {result.get('statusCode')}" if result else "")
    )
    if state == InvocationState.SUCCEEDED:
        out.print(str(result.get("body", "")), markup=False)
        return
    raise CliError(calls.failure_of(invocation_id, document))


# logs


@app.command(name="logs")
def logs_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The Function.")],
    request_id: Annotated[
        str | None, typer.Option(help="Only the lines of this one invocation, across pods.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Only lines newer than this: 30s, 10m, 2h, 1d.")
    ] = None,
) -> None:
    """The log lines of every replica of a Function, merged in time order; with
    --request-id, what happened to that one call."""
    try:
        since_seconds = logs.parse_duration(since) if since else None
    except ValueError as bad:
        raise CliError(f"--since: {bad}") from bad
    cluster = _state(ctx).cluster()
    cluster.function(name)
    pods = cluster.pods(name)
    gone = _deleted_replicas(cluster, name, since_seconds)
    if follow:
        _follow_logs(cluster, name, pods, request_id, since_seconds)
        return
    lines = []
    for pod in pods:
        text = cluster.pod_log(pod.metadata.name, RUNTIME_CONTAINER, since_seconds=since_seconds)
        lines += logs.parse_log(pod.metadata.name, text)
    merged = logs.merge(lines, request_id)
    for line in merged:
        out.print(logs.render(line), markup=False)
    if not pods:
        err.print(f"no replica of {name} is running now (it scales to zero while idle)")
    if gone:
        err.print(
            f"{len(gone)} replica(s) of {name} were deleted in this window "
            f"({', '.join(gone[:5])}{', ...' if len(gone) > 5 else ''}): their lines went "
            f"with their pods; to keep them, ship logs off the nodes (see {DOCS_SHIPPING_LOGS})"
        )
    if request_id and not merged:
        raise CliError(
            f"no line of request {request_id} in the running replicas of {name}"
            + ("; it may have run on a deleted one (see above)" if gone else "")
        )


def _deleted_replicas(cluster: Cluster, name: str, since_seconds: int | None) -> list[str]:
    """Pods of the Function's ReplicaSets deleted (scale-down, rollout) within the window,
    from the ReplicaSet controller's Events, which outlive the pods (an hour by default)."""
    import datetime

    horizon = (
        datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=since_seconds)
        if since_seconds
        else None
    )
    gone = []
    for event in cluster.events():
        involved = event.involved_object
        if involved.kind != "ReplicaSet" or not str(involved.name).startswith(f"{name}-"):
            continue
        if event.reason != "SuccessfulDelete":
            continue
        moment = event.last_timestamp or event.event_time
        if horizon is not None and moment is not None and moment < horizon:
            continue
        pod = str(event.message or "").rpartition(" ")[2]
        gone.append(pod)
    return gone


def _follow_logs(
    cluster: Cluster,
    name: str,
    pods: list[Any],
    request_id: str | None,
    since_seconds: int | None,
) -> None:
    if not pods:
        raise CliError(f"no replica of {name} is running to follow (invoke it to start one)")
    lines: queue.Queue[logs.LogLine | None] = queue.Queue()

    def read(pod: str) -> None:
        try:
            for raw in cluster.follow_log(pod, RUNTIME_CONTAINER, None, since_seconds):
                line = logs.parse_line(pod, raw)
                if line is not None:
                    lines.put(line)
        finally:
            lines.put(None)

    for pod in pods:
        threading.Thread(target=read, args=(pod.metadata.name,), daemon=True).start()
    open_streams = len(pods)
    while open_streams:
        line = lines.get()
        if line is None:
            open_streams -= 1
        elif request_id is None or line.request_id == request_id:
            out.print(logs.render(line), markup=False)


# usage


@app.command(name="usage")
def usage_command(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="The window (with --prometheus): 30m, 1h, 7d.")] = "1h",
    prometheus: Annotated[
        str | None, typer.Option(help="A Prometheus server that scrapes the gateway.")
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(help="A gateway's /metrics (e.g. hanshu dev's internal port) instead."),
    ] = None,
) -> None:
    """What each Function cost, by version: invocations, errors (5xx), cold starts and
    GB-seconds (the unit Function Compute and Lambda bill by), from the gateway's metrics."""
    try:
        logs.parse_duration(since)
    except ValueError as bad:
        raise CliError(f"--since: {bad}") from bad
    if prometheus:
        answers = {
            column: _prometheus_query(prometheus, query)
            for column, query in usage.prometheus_queries(since).items()
        }
        found = usage.from_prometheus(answers)
        window = f"in the last {since} (Prometheus at {prometheus})"
    elif metrics_url:
        found = usage.from_metrics([_fetch(metrics_url)])
        window = f"since the gateway at {metrics_url} started"
    else:
        texts = _state(ctx).cluster().gateway_metrics()
        if not texts:
            raise CliError(
                "no running gateway pod (label app.kubernetes.io/component=gateway) to read: "
                "is Hanshu installed? or give --prometheus URL"
            )
        found = usage.from_metrics(text for _, text in texts)
        window = (
            f"since each of the {len(texts)} gateway pod(s) started (--prometheus URL for a window)"
        )
    rows = [
        [
            f"{key[0]}/{key[1]}",
            key[2],
            f"{u.invocations:.0f}",
            f"{u.errors:.0f}",
            f"{u.cold_starts:.0f}",
            f"{u.gb_seconds:.3f}",
        ]
        for key, u in sorted(found.items())
    ]
    if not rows:
        out.print(f"no invocations {window}")
        return
    columns = ["FUNCTION", "VERSION", "INVOCATIONS", "ERRORS", "COLD STARTS", "GB-SECONDS"]
    out.print(_table(columns, rows, f"Usage {window}"))


def _fetch(url: str) -> str:
    reply = calls.send(calls.Call(url), 15.0)
    if reply.status != 200:
        raise CliError(f"{url} answered {reply.status} {reply.reason}")
    return reply.text()


def _prometheus_query(server: str, query: str) -> dict[str, Any]:
    url = calls.join_url(server, "/api/v1/query") + "?" + urllib.parse.urlencode({"query": query})
    answer: dict[str, Any] = json.loads(_fetch(url))
    if answer.get("status") != "success":
        raise CliError(f"Prometheus at {server} refused {query!r}: {answer.get('error')}")
    return answer


# dev


@app.command(context_settings={"show_default": True})
def dev(
    paths: Annotated[
        list[str], typer.Argument(help="Function / Trigger / Secret manifests or folders.")
    ],
    port: Annotated[int, typer.Option(help="The gateway's port.")] = 8080,
    internal_port: Annotated[
        int, typer.Option(help="The gateway's internal port (/functions, /metrics); 0: any.")
    ] = 0,
    autoscaler_port: Annotated[int, typer.Option(help="The autoscaler's port; 0: any.")] = 0,
    nats_url: Annotated[
        str,
        typer.Option(
            help="An existing NATS for async invocations ('off' for none); default: start one."
        ),
    ] = "",
    no_dispatcher: Annotated[
        bool,
        typer.Option(
            "--no-dispatcher",
            help="Run no dispatcher in this process (run python -m hanshu_dispatcher).",
        ),
    ] = False,
    stable_window: Annotated[float, typer.Option(help="Autoscaler window, seconds.")] = 60.0,
    cold_start_timeout: Annotated[
        float, typer.Option(help="How long a cold request waits for a replica.")
    ] = 60.0,
    queue_limit: Annotated[int, typer.Option(help="Cold requests held per Function.")] = 1000,
    max_body_bytes: Annotated[int, typer.Option(help="The largest request body.")] = 6
    * 1024
    * 1024,
    stats_interval: Annotated[
        float, typer.Option(help="Seconds between the gateway's reports to the autoscaler.")
    ] = 1.0,
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a client may take to send its request headers.")
    ] = 10.0,
    warm_pool: Annotated[
        int,
        typer.Option(
            min=0,
            help="Runtime processes kept waiting per namespace to serve a cold request for "
            "an eligible Function while its own replica starts (0: no warm pool).",
        ),
    ] = 0,
    reload: Annotated[
        bool,
        typer.Option(
            help="Watch the folders given: a changed Function's replicas are replaced, "
            "changed Triggers' routes too."
        ),
    ] = True,
) -> None:
    """The whole platform on this machine: the gateway, the autoscaler, schedules, NATS
    for async calls, a dispatcher, and each replica a local runtime process, from the same
    manifests you would kubectl apply (a folder from hanshu init runs as it is). What each
    replica prints (print, its logger, the traceback behind a 500) is shown under its
    Function's name.

    At start-up it prints the route table (method, host, path -> Function), the schedules
    with their next fire and a curl that fires one now through the internal port, the
    buckets and the streams; then each replica it starts (Function, pid, port) and each
    scaling decision.

    It watches the folders given (--no-reload: not): a saved file or manifest replaces
    the changed Functions' replicas (the old ones drain) and the changed Triggers'
    routes, one line per change; a change that does not parse is said, and what ran
    before keeps running. Buckets are set up at start-up only.

    A Function whose code cannot start (a missing package, a syntax error, a wrong
    handler) is refused at once with 503 and the cause, and the console says how to fix
    it here: replicas run with this Python's packages, and dev mode does not install a
    folder's requirements.txt (python -m pip install -r it into this environment).
    Saving a file of the Function starts it again.

    A port in use is said in one line (choose another with --port); Ctrl-C or SIGTERM
    stops everything it started; a nats-server it started that dies is started again."""
    from .dev import dev_policy, serve_dev
    from .devmode import DevStack

    stack = DevStack(
        paths,
        port=port,
        internal_port=internal_port,
        autoscaler_port=autoscaler_port,
        nats_url=nats_url,
        dispatcher=not no_dispatcher,
        policy=dev_policy(stable_window),
        cold_start_timeout=cold_start_timeout,
        queue_limit=queue_limit,
        max_body_bytes=max_body_bytes,
        stats_interval=stats_interval,
        header_timeout=header_timeout,
        warm_pool=warm_pool,
        reload=reload,
    )
    serve_dev(stack)
