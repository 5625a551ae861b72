"""Lambda's environment variables, as Lambda code reads them at import, through the real
gateway (dev mode) and runtime: Powertools' binary-response example, unmodified, opens
``$LAMBDA_TASK_ROOT/logo.svg`` at import (without the variable it reads ``None/logo.svg`` and
cannot start), and a probe shows every variable with what the Function sets itself kept.
(The example's source and commit: lambda_samples/README.md.)"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.support.dev_platform import function, trigger

SAMPLES = Path(__file__).resolve().parent.parent / "lambda_samples"
RUNTIME_CODE = Path(__file__).resolve().parent.parent / "runtime_code"


async def test_the_powertools_binary_response_example_starts_and_serves_its_logo(
    platform_factory,
):
    logo = (SAMPLES / "logo.svg").read_bytes()
    platform = platform_factory(
        [
            function(
                "logo",
                handler="binary_responses.lambda_handler",
                code={
                    "inline": {
                        "binary_responses.py": (SAMPLES / "binary_responses.py").read_text(),
                        "logo.svg": logo.decode(),
                    }
                },
            ),
            trigger("web", "logo", path="/pt", stripPrefix=True),
        ]
    )
    async with aiohttp.ClientSession() as http, http.get(f"{platform.url}/pt/logo") as reply:
        assert reply.status == 200, await reply.text()
        assert reply.content_type == "image/svg+xml"
        assert await reply.read() == logo


async def test_lambda_variables_are_set_and_the_functions_own_are_kept(platform_factory):
    probe = (RUNTIME_CODE / "lambda_env_probe.py").read_text()
    platform = platform_factory(
        [
            function(
                "probe",
                handler="lambda_env_probe.handler",
                code={"inline": {"lambda_env_probe.py": probe}},
                resources={"limits": {"memory": "384Mi"}},
                # The Function's own values win over Lambda's defaults.
                env=[
                    {"name": "TZ", "value": "Asia/Shanghai"},
                    {"name": "AWS_REGION", "value": "eu-west-3"},
                ],
            ),
            trigger("web", "probe", path="/probe"),
        ]
    )
    async with aiohttp.ClientSession() as http, http.get(f"{platform.url}/probe") as reply:
        assert reply.status == 200, await reply.text()
        seen = await reply.json()
    env = seen["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "probe"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "1"  # a manifest never applied: generation 1
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "384"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == seen["log_group_name"] == "/hanshu/default/probe"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == seen["log_stream_name"]
    assert seen["log_stream_name"]
    assert seen["task_root_holds_me"] is True
    assert env["_HANDLER"] == "lambda_env_probe.handler"
    assert env["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python3.")
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("eu-west-3", "eu-west-3")
    assert env["TZ"] == "Asia/Shanghai"
    assert seen["utc_offset"] == 8 * 3600
