"""A standby's part in the stats intake: the report it received goes on to the leader, as
it came, and the leader's answer comes back to the sender.

One hop, never two: a report passed on once carries ``FORWARDED_HEADER`` and is not passed
on again (two standbys that each think the other leads, for a moment, cannot bounce it).
With no leader alive (its death, before the takeover), the answer is 503 ``NotLeader``:
the sender reports again at its next interval, as for any failed report."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from hanshu_api.error_body import ErrorBody

FORWARDED_HEADER = "X-Hanshu-Forwarded"


def not_leader(message: str) -> web.Response:
    return web.json_response(ErrorBody("NotLeader", message).as_dict(), status=503)


class ReportForwarder:
    def __init__(self, timeout: float = 2.0) -> None:
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def forward(self, request: web.Request, leader: str | None) -> web.Response:
        if leader is None or request.headers.get(FORWARDED_HEADER):
            return not_leader("no autoscaler leads now; report again")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        try:
            async with self._session.post(
                leader.rstrip("/") + "/stats",
                data=await request.read(),
                headers={"Content-Type": "application/json", FORWARDED_HEADER: "1"},
            ) as reply:
                body = await reply.read()
                return web.Response(status=reply.status, body=body, content_type=reply.content_type)
        except (aiohttp.ClientError, TimeoutError) as error:
            return not_leader(f"the leader at {leader} did not take the report: {error}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
