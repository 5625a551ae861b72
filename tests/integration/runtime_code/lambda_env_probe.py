"""Returns what Lambda code reads from its environment, as it read it at import."""

import os
import time

AT_IMPORT = {
    name: os.environ.get(name)
    for name in (
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "LAMBDA_TASK_ROOT",
        "_HANDLER",
        "AWS_EXECUTION_ENV",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "TZ",
    )
}


def handler(event, context):
    return {
        "env": AT_IMPORT,
        "task_root_holds_me": os.path.isfile(
            os.path.join(AT_IMPORT["LAMBDA_TASK_ROOT"] or "", "lambda_env_probe.py")
        ),
        "utc_offset": time.localtime().tm_gmtoff,
        "log_stream_name": context.log_stream_name,
        "log_group_name": context.log_group_name,
    }
