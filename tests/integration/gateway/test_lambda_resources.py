"""A Trigger's resource paths (``spec.http.resources``) for frameworks that route on API
Gateway's resource rather than the path: a real Chalice app from PyPI, unmodified, behind
the real gateway (dev mode) and runtime. Without the resource paths every request carries
``/{proxy+}``, which is none of Chalice's routes. (Chalice sets no Content-Type on its JSON
replies, counting on API Gateway's application/json default: the bodies are read as text.)"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.support.dev_platform import function, trigger

CODE = (Path(__file__).resolve().parent.parent / "runtime_code" / "lambda_chalice.py").read_text()


async def test_chalice_routes_on_the_resource_path_the_trigger_lists(platform_factory):
    platform = platform_factory(
        [
            function(
                "todos",
                handler="lambda_chalice.app",
                code={"inline": {"lambda_chalice.py": CODE}},
            ),
            trigger(
                "todos",
                "todos",
                path="/chalice",
                stripPrefix=True,
                resources=["/", "/todos", "/todos/{todo_id}"],
            ),
            trigger("bare", "todos", path="/bare", stripPrefix=True),
        ]
    )
    base = f"{platform.url}/chalice"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/todos/7?verbose=yes") as reply:
            assert reply.status == 200, await reply.text()
            assert json.loads(await reply.text()) == {
                "id": "7",
                "method": "GET",
                "verbose": "yes",
                "resource": "/todos/{todo_id}",
            }
        async with http.post(f"{base}/todos", json={"title": "tea"}) as reply:
            assert reply.status == 201, await reply.text()
            assert json.loads(await reply.text()) == {"title": "tea"}
        async with http.get(f"{base}/") as reply:
            assert reply.status == 200, await reply.text()
            assert json.loads(await reply.text()) == {"hello": "world"}
        async with http.delete(f"{base}/todos/7") as reply:
            assert reply.status == 405  # Chalice's own answer: it found the route
            assert set(reply.headers["Allow"].split(", ")) == {"GET", "PUT"}
        # A Trigger without resource paths: /{proxy+} is none of Chalice's routes.
        async with http.get(f"{platform.url}/bare/todos/7") as reply:
            assert reply.status == 405  # Chalice allows no method on a route it lacks
            assert reply.headers["Allow"] == ""
