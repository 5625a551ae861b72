"""The gateway's paths under ``/_hanshu/``, spelled once: the gateway's router, the
dispatcher, the operator and the CLI build them here, so none can call a path the gateway
does not serve.

On the internal port (the platform's callers, with the internal token):
``POST /_hanshu/invoke/{namespace}/{function}`` runs a raw event (schedules, streams),
``POST /_hanshu/enqueue/{namespace}/{function}`` stores an event as an async invocation
(destinations, failure records), and ``/_hanshu/dispatch/{namespace}/{function}`` runs a
stored invocation (the dispatcher, any method). ``GET /functions`` lists the Functions the
gateway serves and their state. On the public port: ``/_hanshu/events/{namespace}/{trigger}``
takes a bucket's notifications, ``/_hanshu/invocations/{id}`` and ``/_hanshu/jobs/{id}`` serve
an async call's status. A replica's own paths (the runtime's, spelled in the runtime, which
imports nothing of ours) are ``/_hanshu/invoke`` and ``/_hanshu/ready``.

Names are Kubernetes names ([a-z0-9.-]) and ids are hex: no segment needs quoting.
"""

from __future__ import annotations

RESERVED_PREFIX = "/_hanshu/"  # never a public route's: a replica's own paths live here

# -- the internal port ---------------------------------------------------------------------------

INVOKE_ROUTE = "/_hanshu/invoke/{namespace}/{function}"
ENQUEUE_ROUTE = "/_hanshu/enqueue/{namespace}/{function}"
DISPATCH_ROUTE = "/_hanshu/dispatch/{namespace}/{function}"
FUNCTIONS_PATH = "/functions"
HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
METRICS_PATH = "/metrics"

# -- the public port -----------------------------------------------------------------------------

EVENTS_PREFIX = "/_hanshu/events/"
EVENTS_ROUTE = EVENTS_PREFIX + "{namespace}/{trigger}"
INVOCATIONS_PREFIX = "/_hanshu/invocations/"
JOBS_PREFIX = "/_hanshu/jobs/"

# -- a replica's (the runtime's) ----------------------------------------------------------------

REPLICA_INVOKE_PATH = "/_hanshu/invoke"
REPLICA_READY_PATH = "/_hanshu/ready"


def target_query(version: int | None = None, alias: str | None = None) -> str:
    """A version or an alias of the Function in the path (issue 28): ``?version=N`` or
    ``?alias=NAME``; "" for $LATEST. Alias names are DNS labels: nothing to quote."""
    if version is not None:
        return f"?version={version}"
    return f"?alias={alias}" if alias else ""


def invoke_path(
    namespace: str, function: str, version: int | None = None, alias: str | None = None
) -> str:
    return INVOKE_ROUTE.format(namespace=namespace, function=function) + target_query(
        version, alias
    )


def enqueue_path(
    namespace: str, function: str, version: int | None = None, alias: str | None = None
) -> str:
    return ENQUEUE_ROUTE.format(namespace=namespace, function=function) + target_query(
        version, alias
    )


def dispatch_path(namespace: str, function: str) -> str:
    return DISPATCH_ROUTE.format(namespace=namespace, function=function)


def events_path(namespace: str, trigger: str) -> str:
    return EVENTS_ROUTE.format(namespace=namespace, trigger=trigger)


def invocation_path(invocation_id: str) -> str:
    return INVOCATIONS_PREFIX + invocation_id


def job_path(job_id: str) -> str:
    return JOBS_PREFIX + job_id
