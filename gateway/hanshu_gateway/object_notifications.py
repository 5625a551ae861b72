"""``POST /_hanshu/events/{namespace}/{trigger}``: where a bucket sends its notifications.

The token is checked like an API key (salted hashes the operator publishes; the gateway
never holds the token), the body parsed (MinIO webhook or SNS), SNS subscriptions
confirmed, and each record that passes the Trigger's filters stored as one async
invocation of its Function. The storage gets 200 only once every record is stored, so its
own retries cover a NATS outage; a record delivered twice runs once (its sequencer is the
idempotency key).
"""

from __future__ import annotations

import json
import logging

import aiohttp
from aiohttp import web
from hanshu_api.bounded_json import JsonRefused
from hanshu_api.gateway_paths import EVENTS_PREFIX, REPLICA_INVOKE_PATH
from hanshu_api.invocations import EVENT, Origin, StoredRequest, route_scope
from prometheus_client import Counter
from yarl import URL

from .async_intake import AsyncIntake, AsyncUnavailable, Call
from .bad_input import refused_input
from .catalog import Catalog
from .faults import (
    CLOSE_CONNECTION,
    BadGateway,
    BadRequest,
    Forbidden,
    GatewayFault,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    Unavailable,
)
from .object_events import (
    MAX_NOTIFICATION_BYTES,
    SubscriptionConfirmation,
    function_event,
    parse_notification,
    presented_token,
    selected,
)
from .public_http import BodyTooLarge, PublicRequest
from .version_routing import resolve

log = logging.getLogger("hanshu.gateway")

# A bucket Trigger's deliveries, next to its status (which says where to send them).
OBJECT_EVENTS = Counter(
    "hanshu_gateway_object_events",
    "Bucket notification records, by Trigger and outcome: stored (an async invocation), "
    "skipped (filtered out), refused (a bad token), unavailable (NATS down: sent again).",
    ["namespace", "trigger", "outcome"],
)

NOTIFICATION_READ_SECONDS = 30.0  # a notification is small: a slow one is a stuck sender


def is_events_path(path: str) -> bool:
    return path.startswith(EVENTS_PREFIX)


def confirmable(url: str, extra_hosts: tuple[str, ...] = ()) -> bool:
    """An SNS SubscribeURL the gateway may fetch: https on AWS SNS' own hosts, or a host
    the operator of the platform named."""
    try:
        parsed = URL(url)
        host = (parsed.host or "").lower()
    except (ValueError, UnicodeError):
        return False
    if host in extra_hosts:
        return parsed.scheme in ("http", "https")
    return parsed.scheme == "https" and (
        host.startswith("sns.") and host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
    )


class ObjectNotifications:
    def __init__(
        self,
        catalog: Catalog,
        intake: AsyncIntake | None,
        confirm_hosts: tuple[str, ...] = (),
    ) -> None:
        self.catalog = catalog
        self.intake = intake
        # Besides AWS' own SNS endpoints, the hosts a SubscribeURL may point at (an
        # SNS-compatible service; the developer mode's local one).
        self.confirm_hosts = confirm_hosts
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: PublicRequest, request_id: str) -> web.Response:
        parts = request.path[len(EVENTS_PREFIX) :].split("/")
        known = self.catalog.object_triggers.get((parts[0], parts[1])) if len(parts) == 2 else None
        if known is None or known.spec.object_storage is None:
            raise NotFound("no object storage Trigger here")
        if request.method != "POST":
            raise MethodNotAllowed("use POST", allow="POST")
        storage = known.spec.object_storage
        if storage.token is not None:
            try:
                self._check_token(request, known.namespace, known.name)
            except GatewayFault:
                OBJECT_EVENTS.labels(known.namespace, known.name, "refused").inc()
                raise
        try:
            body = await request.read(MAX_NOTIFICATION_BYTES, NOTIFICATION_READ_SECONDS)
        except BodyTooLarge:
            raise PayloadTooLarge(
                "a notification is at most 1 MiB", headers=CLOSE_CONNECTION
            ) from None
        except TimeoutError:
            raise RequestTimeout(
                "the notification did not arrive in time", headers=CLOSE_CONNECTION
            ) from None
        try:
            # Checked whole before anything is stored: a record that is refused after others
            # were stored would be refused again on every retry of the storage.
            parsed = parse_notification(body, MAX_NOTIFICATION_BYTES)
        except JsonRefused as refused:
            where = f"the notifications of Trigger {known.namespace}/{known.name}"
            raise refused_input("InvalidNotification", refused, request_id, where) from None
        if isinstance(parsed, SubscriptionConfirmation):
            if storage.token is None:
                # Without a token anybody could make the gateway fetch a URL.
                raise Forbidden(
                    "this Trigger has no auth.tokenSecretRef: SNS subscriptions are confirmed "
                    "only for a Trigger with a token (in the endpoint URL as ?token=)",
                    error_type="ConfirmationRefused",
                )
            if not confirmable(parsed.subscribe_url, self.confirm_hosts):
                raise BadRequest(
                    "the SubscribeURL is not an https URL of AWS SNS (sns.<region>.amazonaws.com)",
                    error_type="InvalidNotification",
                )
            return await self._confirm(parsed, known.namespace, known.name, request_id)
        target = known.spec.target_ref
        # Its Function, version, or its alias's pick (one for the whole notification).
        entry = resolve(
            known.namespace,
            known.spec.function_name,
            target.version if target is not None else None,
            target.alias if target is not None else None,
            self.catalog.functions,
            self.catalog.aliases,
            request.headers,
        )
        key = entry.key
        if self.intake is None:
            raise Unavailable(
                "object storage events need NATS (the chart's nats.enabled or nats.url)",
                error_type="AsyncNotEnabled",
            )
        chosen = selected(storage, parsed)
        ids = []
        try:
            for event in chosen:
                call = Call(
                    key=key,
                    origin=Origin(key[0], entry.function, known.name, version=entry.version),
                    policy=entry.async_policy,
                    timeout_seconds=entry.timeout_seconds,
                    request=StoredRequest(
                        "POST", REPLICA_INVOKE_PATH, (("Content-Type", "application/json"),)
                    ),
                    body=json.dumps(function_event(storage, event)).encode(),
                    # The bucket's own event id is the key: once per Trigger, as each
                    # Trigger is a subscription of its own.
                    idempotency_scope=route_scope(known.namespace, known.name, None),
                )
                accepted = await self.intake.enqueue(call, event.dedup_key, EVENT)
                ids.append(accepted.invocation_id)
        except AsyncUnavailable as why:
            OBJECT_EVENTS.labels(known.namespace, known.name, "unavailable").inc(len(chosen))
            log.warning("object events for %s/%s not stored: %s", *key, why)
            raise Unavailable(
                "the events were not stored; send them again",
                error_type="AsyncUnavailable",
                retry_after="5",
            ) from None
        OBJECT_EVENTS.labels(known.namespace, known.name, "stored").inc(len(ids))
        OBJECT_EVENTS.labels(known.namespace, known.name, "skipped").inc(len(parsed) - len(chosen))
        return web.json_response(
            {"accepted": len(ids), "skipped": len(parsed) - len(chosen), "invocationIds": ids},
            headers={"X-Request-Id": request_id},
        )

    def _check_token(self, request: PublicRequest, namespace: str, trigger: str) -> None:
        presented = presented_token(request.headers, request.query)
        verifiers = self.catalog.key_verifiers(namespace, trigger)
        if verifiers is None:
            log.error("no token verifiers published for Trigger %s/%s", namespace, trigger)
            raise Unavailable(
                "this Trigger's token is not available yet; try again later",
                error_type="TokenUnavailable",
            )
        if presented is None or not verifiers.matches(presented):
            # Nothing is stored for a notification that does not prove where it comes from.
            raise Unauthorized(
                "send the Trigger's token as 'Authorization: Bearer <token>' (MinIO "
                "auth_token), as the basic-auth password, or as ?token= in the URL",
                error_type="InvalidToken",
                headers={"WWW-Authenticate": 'Bearer realm="hanshu"'},
            )

    async def _confirm(
        self, confirmation: SubscriptionConfirmation, namespace: str, trigger: str, request_id: str
    ) -> web.Response:
        """Fetch SNS's SubscribeURL, which confirms the subscription (only after the
        token was checked: nobody else can make the gateway fetch a URL)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.get(
                confirmation.subscribe_url, allow_redirects=False
            ) as reply:
                confirmed = reply.status < 300
        except (aiohttp.ClientError, TimeoutError) as failure:
            log.warning("cannot confirm SNS subscription of %s/%s: %s", namespace, trigger, failure)
            confirmed = False
        if not confirmed:
            raise BadGateway("the SNS SubscribeURL did not answer", error_type="ConfirmationFailed")
        log.info(
            "confirmed SNS subscription of topic %s for Trigger %s/%s",
            confirmation.topic_arn,
            namespace,
            trigger,
        )
        return web.json_response({"confirmed": True}, headers={"X-Request-Id": request_id})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


__all__ = ["ObjectNotifications", "is_events_path"]
