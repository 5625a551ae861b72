"""``python -m hanshu_runtime`` imports only what serving needs before its first answer: no
aiohttp (its server would cost more than the whole boot), no OpenTelemetry (tracing is off),
and prometheus_client only at the first scrape, with every invocation before it counted."""

from __future__ import annotations

import textwrap

HANDLERS = textwrap.dedent("""
    import sys


    def loaded(event, context):
        return {name: name in sys.modules
                for name in ("aiohttp", "prometheus_client", "opentelemetry")}
""")


async def test_serving_imports_neither_aiohttp_nor_the_metrics_client(
    runtime_factory, http, tmp_path
):
    (tmp_path / "lean.py").write_text(HANDLERS)
    runtime = runtime_factory(tmp_path, "lean.loaded")
    async with http.get(f"{runtime.url}/") as reply:
        assert reply.status == 200
        assert await reply.json() == {
            "aiohttp": False,
            "prometheus_client": False,
            "opentelemetry": False,
        }
    # The first scrape brings prometheus_client, with the function's metrics in it.
    async with http.get(f"{runtime.admin_url}/metrics") as reply:
        assert reply.status == 200
        assert 'hanshu_runtime_invocations_total{function="test-fn",outcome="success"} 1.0' in (
            await reply.text()
        )
