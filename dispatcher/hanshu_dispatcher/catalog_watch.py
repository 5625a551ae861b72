"""Following a catalog bucket the operator writes (``schedules``, ``streams``): each entry
put starts (or restarts) its work, each entry deleted or unreadable stops it, and the end of
the watch stops all of it, so no work outlives the watch that started it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from nats.errors import Error as NatsError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

Entry = TypeVar("Entry")


async def follow_catalog(
    catalog: KeyValue,
    *,
    parse: Callable[[bytes], Entry],
    invalid: type[Exception],
    start: Callable[[Entry], Awaitable[None]],
    stop: Callable[[str], Awaitable[None]],
    running: Collection[str],
    log: logging.Logger,
    kind: str,
) -> None:
    """Watch ``catalog`` until it fails or is cancelled: ``start`` each entry it holds or
    gets (``parse`` raising ``invalid`` makes it unreadable), ``stop`` each key deleted or
    unreadable, and at the end ``stop`` every key still ``running``. ``kind`` names the
    entries in the log ("schedule")."""
    watcher = await catalog.watchall()
    try:
        async for update in watcher:
            if update is None:
                continue  # the end of what the bucket held when the watch began
            if update.operation in (KV_DEL, KV_PURGE) or not update.value:
                await stop(update.key)
                continue
            try:
                entry = parse(update.value)
            except invalid as bad:
                log.error("%s catalog entry %s is unreadable: %s", kind, update.key, bad)
                await stop(update.key)
                continue
            await start(entry)
    finally:
        for key in list(running):
            await stop(key)
        with contextlib.suppress(NatsError, TimeoutError):
            await watcher.stop()  # type: ignore[no-untyped-call]
