"""The Function and Trigger specs as typed values, parsed and checked in one place.

The CRD schemas (crds/) reject most bad input at ``kubectl apply``; their patterns, enums,
bounds and defaults are generated from the constants of the modules below (hack/gen_crds.py,
``make crds``), so the two cannot drift. These parsers check the same rules, for what never passed
an apiserver (dev mode, a CRD installed without them), and what a schema cannot: that the
inline code holds the handler's module, that durations and quantities parse, that a time
zone exists. Every problem is collected, so a user fixes them all in one round.

This module gathers them; each resource has its own: ``function_spec`` (Function),
``trigger_spec`` (Trigger, schedules), ``http_route`` and ``event_sources`` (a Trigger's
other sources), ``destination`` (where outcomes go, shared by both) and ``spec_fields``
(what every parser shares).
"""

from __future__ import annotations

from .destination import SUBJECT_PATTERN, Destination
from .event_sources import (
    DEFAULT_OBJECT_EVENTS,
    OBJECT_EVENT_FORMATS,
    OBJECT_EVENT_PATTERN,
    STREAM_NAME_PATTERN,
    SUBJECT_FILTER_PATTERN,
    NatsSource,
    ObjectStorage,
    RedisSource,
    SecretKeyRef,
    StreamSource,
)
from .function_contract import HANDLER_PATTERN
from .function_spec import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_EVENT_AGE,
    DEFAULT_MAX_REPLICAS,
    DEFAULT_MAX_RETRY_ATTEMPTS,
    DEFAULT_MEMORY_MB,
    DEFAULT_MIN_REPLICAS,
    DEFAULT_SCALE_DOWN_DELAY,
    DEFAULT_SCALE_TO_ZERO_GRACE,
    DEFAULT_TARGET_CONCURRENCY,
    DEFAULT_TIMEOUT_SECONDS,
    FILE_NAME_PATTERN,
    HANDLER_TYPES,
    MAX_EVENT_AGE_SECONDS,
    MAX_RETRY_ATTEMPTS,
    MIN_EVENT_AGE_SECONDS,
    AsyncPolicy,
    Code,
    FunctionSpec,
    Scaling,
    module_of,
    parse_function_spec,
)
from .http_route import HTTP_METHODS, ApiKeyAuth, Cors, HttpRoute, RateLimit
from .spec_fields import SpecInvalid
from .trigger_spec import TRIGGER_SOURCES, Schedule, TriggerSpec, parse_trigger_spec

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_EVENT_AGE",
    "DEFAULT_MAX_REPLICAS",
    "DEFAULT_MAX_RETRY_ATTEMPTS",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_MIN_REPLICAS",
    "DEFAULT_OBJECT_EVENTS",
    "DEFAULT_SCALE_DOWN_DELAY",
    "DEFAULT_SCALE_TO_ZERO_GRACE",
    "DEFAULT_TARGET_CONCURRENCY",
    "DEFAULT_TIMEOUT_SECONDS",
    "FILE_NAME_PATTERN",
    "HANDLER_PATTERN",
    "HANDLER_TYPES",
    "HTTP_METHODS",
    "MAX_EVENT_AGE_SECONDS",
    "MAX_RETRY_ATTEMPTS",
    "MIN_EVENT_AGE_SECONDS",
    "OBJECT_EVENT_FORMATS",
    "OBJECT_EVENT_PATTERN",
    "STREAM_NAME_PATTERN",
    "SUBJECT_FILTER_PATTERN",
    "SUBJECT_PATTERN",
    "TRIGGER_SOURCES",
    "ApiKeyAuth",
    "AsyncPolicy",
    "Code",
    "Cors",
    "Destination",
    "FunctionSpec",
    "HttpRoute",
    "NatsSource",
    "ObjectStorage",
    "RateLimit",
    "RedisSource",
    "Scaling",
    "Schedule",
    "SecretKeyRef",
    "SpecInvalid",
    "StreamSource",
    "TriggerSpec",
    "module_of",
    "parse_function_spec",
    "parse_trigger_spec",
]
