"""Every kopf handler of the operator, registered on import: ``kopf run -m
hanshu_operator.handlers`` (or ``python -m hanshu_operator``).

- startup: settings, login, clean-up
- functions: Function -> code ConfigMap + Deployment + Service + NetworkPolicy, status
- function_versions: FunctionVersion -> the same children while referenced, retention
- triggers: Trigger -> bound to its Function, status; the schedule daemon
- route_ownership: the oldest Trigger owns a route; the others say RouteConflict
- api_key_publisher: API-key verifiers published to the gateway's namespace
- stream_catalog: stream Triggers published for the dispatchers; their reports, status
"""

from . import (
    api_key_publisher,
    function_versions,
    functions,
    route_ownership,
    startup,
    stream_catalog,
    triggers,
)

__all__ = [
    "api_key_publisher",
    "function_versions",
    "functions",
    "route_ownership",
    "startup",
    "stream_catalog",
    "triggers",
]
