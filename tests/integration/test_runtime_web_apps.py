"""Whole web apps as functions: a real Flask app (WSGI) and a real FastAPI app (ASGI)."""

from __future__ import annotations

from pathlib import Path

CODE = Path(__file__).parent / "runtime_code"


async def test_flask_app_gets_a_faithful_environ(runtime_factory, http):
    runtime = runtime_factory(CODE, "flask_app:app", HANSHU_HANDLER_TYPE="wsgi")
    async with http.post(
        f"{runtime.url}/items/a%20b?tag=x&tag=y",
        data="hello body",
        headers=[
            ("User-Agent", "pytest"),
            ("X-Multi", "1"),
            ("X-Multi", "2"),
            ("X-Forwarded-Proto", "https"),
        ],
    ) as reply:
        assert reply.status == 200
        body = await reply.json()
    assert body["item"] == "a b"
    assert body["method"] == "POST"
    assert body["args"] == {"tag": ["x", "y"]}
    assert body["body"] == "hello body"
    assert body["scheme"] == "https"
    assert body["remote_addr"] == "127.0.0.1"
    assert body["agent"] == "pytest"
    assert body["multi"] == "1, 2"
    assert body["path"] == "/items/a b"


async def test_flask_reply_goes_back_unchanged(runtime_factory, http):
    runtime = runtime_factory(CODE, "flask_app:app", HANSHU_HANDLER_TYPE="wsgi")
    async with http.get(f"{runtime.url}/cookies") as reply:
        assert reply.status == 202
        assert reply.headers["X-App"] == "flask"
        assert len(reply.headers.getall("Set-Cookie")) == 2
        assert await reply.text() == "two cookies"
    async with http.get(f"{runtime.url}/no-such-page") as reply:
        assert reply.status == 404  # Flask's own 404, not ours
    async with http.get(f"{runtime.url}/fail") as reply:
        assert reply.status == 500  # Flask turns the exception into its own 500 page
    async with http.post(f"{runtime.url}/_hanshu/invoke", json={}) as reply:
        assert reply.status == 400
        assert (await reply.json())["errorType"] == "UnsupportedInvocation"


async def test_fastapi_app_with_lifespan(runtime_factory, http, tmp_path):
    marker = tmp_path / "lifespan"
    runtime = runtime_factory(
        CODE, "fastapi_app:app", HANSHU_HANDLER_TYPE="asgi", LIFESPAN_MARKER=str(marker)
    )
    assert marker.read_text() == "started\n"
    async with http.post(
        f"{runtime.url}/items?tag=a&tag=b",
        json={"name": "pen", "price": 2.5},
        headers={"X-Forwarded-Proto": "https"},
    ) as reply:
        assert reply.status == 200
        body = await reply.json()
    assert body == {
        "name": "pen",
        "price": 2.5,
        "query": "tag=a&tag=b",
        "path": "/items",
        "client": "127.0.0.1",
        "scheme": "https",
        "greeting": "hello from lifespan",
        "tags": ["a", "b"],
    }
    async with http.post(f"{runtime.url}/items", json={"name": "pen"}) as reply:
        assert reply.status == 422  # FastAPI's own validation error goes back unchanged
    async with http.get(
        f"{runtime.url}/headers", headers=[("X-Multi", "1"), ("X-Multi", "2")]
    ) as reply:
        assert reply.headers["X-App"] == "fastapi"
        assert len(reply.headers.getall("Set-Cookie")) == 2
        assert await reply.json() == {"multi": ["1", "2"]}
    assert runtime.stop() == 0
    assert marker.read_text() == "started\nstopped\n"


async def test_web_apps_cannot_forge_the_draining_header(runtime_factory, http, tmp_path):
    apps = {"flask_app:app": "wsgi", "fastapi_app:app": "asgi"}
    for handler, handler_type in apps.items():
        runtime = runtime_factory(
            CODE,
            handler,
            HANSHU_HANDLER_TYPE=handler_type,
            LIFESPAN_MARKER=str(tmp_path / "lifespan"),
        )
        async with http.get(f"{runtime.url}/own-503") as reply:
            assert reply.status == 503, handler
            assert (await reply.json())["errorMessage"] == "our database is draining", handler
            assert "X-Hanshu-Draining" not in reply.headers, handler
        runtime.stop()
