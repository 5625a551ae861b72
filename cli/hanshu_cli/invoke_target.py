"""Where ``hanshu invoke NAME`` sends its request: the Function's HTTP route on a gateway,
extended by ``--path`` and ``--query``, or the gateway's internal invoke path for a Function
no HTTP Trigger routes to. Pure: the routes come from dev mode's state file or the
cluster's Trigger objects, read by the command."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hanshu_api import INTERNAL_TOKEN_HEADER
from hanshu_api.gateway_paths import enqueue_path, invoke_path

from .errors import CliError


@dataclass(frozen=True)
class KnownRoute:
    """What a caller needs of an HTTP Trigger: its path, host and methods."""

    trigger: str
    path: str
    host: str = ""
    methods: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    # The methods the route takes (empty: any); the default method is picked among them.
    methods: tuple[str, ...] = ()
    # Through the internal invoke path: the body is the event, no route is involved.
    internal: bool = False


def routes_of_triggers(triggers: Sequence[Mapping[str, Any]]) -> list[KnownRoute]:
    """The HTTP routes of a Function's Trigger objects (as ``kubectl get trigger`` has them)."""
    found = []
    for trigger in triggers:
        http = (trigger.get("spec") or {}).get("http")
        if http is None:
            continue
        found.append(
            KnownRoute(
                str(trigger["metadata"]["name"]),
                str(http.get("path") or "/"),
                str(http.get("host") or "").lower(),
                tuple(str(m).upper() for m in http.get("methods") or ()),
            )
        )
    return found


def split_extension(extension: str) -> tuple[str, str]:
    """``--path`` as (path below the route, query): '/hello?x=1' -> ('/hello', 'x=1'),
    '?name=Ada' -> ('', 'name=Ada')."""
    path, _, query = extension.partition("?")
    return path, query


def query_string(given: Sequence[str], existing: str = "") -> str:
    """``--query name=value`` (repeatable), encoded and appended to what ``--path`` had."""
    pairs = []
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--query {item!r} must be 'name=value'")
        pairs.append((name, value))
    added = urllib.parse.urlencode(pairs)
    return "&".join(part for part in (existing, added) if part)


def extend_path(route_path: str, extension: str) -> str:
    """The route's path with ``--path`` below it: it extends the route, never replaces it
    ('/from-lambda' + '/hello' is '/from-lambda/hello'; + '' keeps '/from-lambda')."""
    below = extension.strip()
    if not below:
        return route_path or "/"
    return route_path.rstrip("/") + "/" + below.lstrip("/")


def extend_url(base_url: str, extension: str, query: Sequence[str]) -> str:
    """A route's URL (a Trigger's status.url, or gateway + route path) extended by
    ``--path`` and ``--query``."""
    path, path_query = split_extension(extension)
    parts = urllib.parse.urlsplit(base_url)
    full_query = query_string(query, "&".join(q for q in (parts.query, path_query) if q))
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, extend_path(parts.path, path), full_query, "")
    )


def host_header(route_host: str, function: str) -> dict[str, str]:
    """The Host a route on a host answers to: its own, or for '*.example.com' the
    Function's name under it (any name matches the wildcard)."""
    if not route_host:
        return {}
    if route_host.startswith("*."):
        return {"Host": f"{function}{route_host[1:]}"}
    return {"Host": route_host}


def route_target(
    gateway: str, route: KnownRoute, function: str, extension: str, query: Sequence[str]
) -> Target:
    """The Function's route on ``gateway`` (dev mode's, or one reached with --gateway)."""
    base = gateway.rstrip("/") + (route.path if route.path.startswith("/") else "/" + route.path)
    return Target(
        extend_url(base, extension, query), host_header(route.host, function), route.methods
    )


def internal_target(
    internal_url: str,
    namespace: str,
    function: str,
    token: str,
    extension: str,
    query: Sequence[str],
    asynchronous: bool,
) -> Target:
    """A Function no HTTP Trigger routes to, through the gateway's internal port (as a
    schedule's fire reaches it): the body is the event, so there is no path to extend."""
    if extension or query:
        raise CliError(
            f"Function {function} has no HTTP Trigger, so there is no route for --path / "
            "--query to extend: it is called with the event as --data through the gateway's "
            "internal path (add a Trigger with spec.http to call it over HTTP)"
        )
    path = enqueue_path if asynchronous else invoke_path
    headers = {INTERNAL_TOKEN_HEADER: token} if token else {}
    return Target(internal_url.rstrip("/") + path(namespace, function), headers, internal=True)


def pick_method(given: str | None, has_body: bool, target: Target) -> str:
    """The method given; else POST with a body, GET without; else, when the route takes
    neither, the first it takes (a POST-only route is called with POST)."""
    if given:
        return given.upper()
    if target.internal:
        return "POST"
    wanted = "POST" if has_body else "GET"
    if target.methods and wanted not in target.methods:
        return target.methods[0]
    return wanted


def no_http_route(function: str, where: str) -> CliError:
    return CliError(
        f"Function {function} has no HTTP Trigger {where}, and its gateway's internal path "
        "is reached only from inside the platform (hanshu dev calls it so): add a Trigger "
        "with spec.http.path to call it"
    )
