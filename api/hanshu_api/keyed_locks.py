"""One asyncio lock per key (a Function, a Trigger), kept only while it is held or awaited.

A dictionary of locks that only grows holds one lock per object ever seen: 10,000
Functions and their Triggers kept ~9 MiB of idle locks, and a deleted object's lock for
ever. Here a key's lock goes when its last user releases it, so the memory is that of the
reconciles in progress, not of the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # holding it or waiting for it


class KeyedLocks(Generic[Key]):
    def __init__(self) -> None:
        self._entries: dict[Key, _Entry] = {}

    @contextlib.asynccontextmanager
    async def held(self, key: Key) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the ``async with`` block."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._entries[key]

    def __len__(self) -> int:
        """How many keys have a lock now (held or awaited)."""
        return len(self._entries)
