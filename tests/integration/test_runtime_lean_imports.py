"""``python -m hanshu_runtime`` imports only what serving needs before its first answer:
aiohttp's client (and its TLS contexts) and prometheus_client come when first used, and
user code that uses them gets the real things."""

from __future__ import annotations

import textwrap

HANDLERS = textwrap.dedent("""
    import sys


    def loaded(event, context):
        return {
            name: name in sys.modules
            for name in ("aiohttp.web", "aiohttp.connector", "prometheus_client")
        }


    def client(event, context):
        import aiohttp
        from aiohttp import ClientTimeout

        return {
            "session": aiohttp.ClientSession.__name__,
            "timeout": ClientTimeout(total=3).total,
            "version": aiohttp.__version__,
            "connector": "aiohttp.connector" in sys.modules,
        }
""")


async def test_the_client_and_metrics_are_not_imported_to_serve(runtime_factory, http, tmp_path):
    (tmp_path / "lean.py").write_text(HANDLERS)
    runtime = runtime_factory(tmp_path, "lean.loaded")
    async with http.get(f"{runtime.url}/") as reply:
        assert reply.status == 200
        assert await reply.json() == {
            "aiohttp.web": True,
            "aiohttp.connector": False,
            "prometheus_client": False,
        }
    # The first scrape brings prometheus_client, with the function's metrics in it.
    async with http.get(f"{runtime.admin_url}/metrics") as reply:
        assert reply.status == 200
        assert 'hanshu_runtime_invocations_total{function="test-fn",outcome="success"} 1.0' in (
            await reply.text()
        )


async def test_user_code_gets_the_whole_aiohttp(runtime_factory, http, tmp_path):
    import aiohttp

    (tmp_path / "lean.py").write_text(HANDLERS)
    runtime = runtime_factory(tmp_path, "lean.client")
    async with http.get(f"{runtime.url}/") as reply:
        assert reply.status == 200
        assert await reply.json() == {
            "session": "ClientSession",
            "timeout": 3,
            "version": aiohttp.__version__,
            "connector": True,
        }
