"""A small API server for watches that go silent: list and watch with one resourceVersion
sequence across every collection (as etcd's revision is); each watch replays the events
after the version asked for, then hangs without closing, as a connection that died quietly
does. ``expired_below`` makes it answer 410 to a watch from an older version (compacted)."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class SilentApi:
    """List and watch, with one resourceVersion sequence across every collection (as etcd's
    revision is). Each watch replays the events after the version asked, then goes silent."""

    version: int = 0
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    expired_below: int = 0  # a watch from an older version is answered 410 (compacted)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    lists_answered: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.lists_answered.set()  # a test clears it to hold every list back

    def record(self, path: str, kind: str, obj: dict[str, Any]) -> int:
        self.version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.events.setdefault(path, []).append({"type": kind, "object": obj})
        return self.version

    def bookmark(self, path: str) -> int:
        """The collection's version moves on with nothing to tell (other objects changed)."""
        self.version += 1
        meta = {"resourceVersion": str(self.version)}
        self.events.setdefault(path, []).append({"type": "BOOKMARK", "object": {"metadata": meta}})
        return self.version

    def lists(self, path: str) -> list[dict[str, str]]:
        return [q for p, q in self.requests if p == path and q.get("watch") != "true"]

    def watches(self, path: str) -> list[dict[str, str]]:
        return [q for p, q in self.requests if p == path and q.get("watch") == "true"]

    def items(self, path: str) -> list[dict[str, Any]]:
        items: dict[str, dict[str, Any]] = {}
        for event in self.events.get(path, []):
            name = event["object"]["metadata"].get("name")
            if event["type"] == "DELETED":
                items.pop(name, None)
            elif event["type"] != "BOOKMARK":
                items[name] = event["object"]
        return list(items.values())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append((request.path, query))
        if query.get("watch") != "true":
            await self.lists_answered.wait()
            return web.json_response(
                {
                    "metadata": {"resourceVersion": str(self.version)},
                    "items": self.items(request.path),
                }
            )
        reply = web.StreamResponse(headers={"Content-Type": "application/json"})
        await reply.prepare(request)
        since = int(query.get("resourceVersion") or 0)
        if since < self.expired_below:
            status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
            await reply.write(_line({"type": "ERROR", "object": status}))
            return reply
        for event in self.events.get(request.path, []):
            if int(event["object"]["metadata"]["resourceVersion"]) > since:
                await reply.write(_line(event))
        await self.closing.wait()  # then nothing, ever: the connection died silently
        return reply


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"
