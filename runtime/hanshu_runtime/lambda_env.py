"""The environment variables AWS Lambda sets, set the same way here, where they mean
something (pure but for ``apply``).

Lambda code reads them at import: Powertools' examples open
``f"{os.getenv('LAMBDA_TASK_ROOT')}/logo.svg"``, boto3 finds its region in ``AWS_REGION``,
loggers name the function by ``AWS_LAMBDA_FUNCTION_NAME``. The runtime sets them itself at
start, before the handler is imported, from the ``HANSHU_*`` contract it was started with:
one place derives them all, values only the pod knows (its name: the log stream) included,
and a variable already in the environment (the Function's own ``env``, the image's
``ENV``) is never replaced. docs/runtime.md lists each with its source.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, MutableMapping

from .context import FunctionInfo

# The platform's region (the chart's functionDefaults.region); unset, Lambda's region
# variables are not set either: boto3 then needs one from the Function's own env.
REGION_ENV = "HANSHU_REGION"
# What Lambda's Python runtimes say: "AWS_Lambda_python3.12". The same form, with the
# Python this runtime runs, so code that reads the version from it (botocore's user agent,
# Powertools' reply size check) reads it right.
EXECUTION_ENV = f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"
# Lambda's clock: UTC, with its spelling (the leading ':' reads the zone from tzdata).
LAMBDA_TZ = ":UTC"


def lambda_variables(
    function: FunctionInfo, code_dir: str, env: Mapping[str, str]
) -> dict[str, str]:
    """Lambda's variables for this instance, before any already set is kept."""
    variables = {
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": function.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": function.log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": function.instance,
        "LAMBDA_TASK_ROOT": os.path.abspath(code_dir),
        "_HANDLER": function.handler,
        "AWS_EXECUTION_ENV": EXECUTION_ENV,
        "TZ": LAMBDA_TZ,
    }
    # One region for both names, as Lambda sets them: one the user set wins for the other.
    region = (
        env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or env.get(REGION_ENV, "")
    ).strip()
    if region:
        variables["AWS_REGION"] = variables["AWS_DEFAULT_REGION"] = region
    return variables


def apply(env: MutableMapping[str, str], function: FunctionInfo, code_dir: str) -> list[str]:
    """Set each of Lambda's variables ``env`` does not hold yet; the names set."""
    added = []
    for name, value in lambda_variables(function, code_dir, env).items():
        if name not in env:
            env[name] = value
            added.append(name)
    if "TZ" in added:
        time.tzset()  # the process's local time follows TZ only once told
    return added
