"""Event handlers the runtime tests call over real HTTP."""

import asyncio
import base64
import threading
import time

STARTED = threading.Event()


def echo(event, context):
    return {
        "event": event,
        "context": {
            "request_id": context.request_id,
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }


def version(event, context):
    """Which version of the Function answered (issue 28: HANSHU_FUNCTION_VERSION)."""
    return {"version": context.function_version, "function": context.function_name}


async def async_echo(event, context):
    await asyncio.sleep(0)
    return echo(event, context)


def log_and_reply(event, context):
    context.logger.info("user log line")
    return "logged"


def boom(event, context):
    raise ValueError("the answer is not 42")


def slow(event, context):
    time.sleep(float(event["queryParameters"].get("seconds", "1")))
    return "slept"


async def async_slow(event, context):
    await asyncio.sleep(float(event["queryParameters"].get("seconds", "1")))
    return "slept"


def invoke_echo(event, context):
    return {"got": event, "requestId": context.request_id}


def wrong_shape(event, context):
    return {1, 2, 3}


def bad_status(event, context):
    return {"statusCode": "two hundred", "body": "x"}


def proxy(event, context):
    return {
        "statusCode": 201,
        "headers": {"X-Single": "one", "Content-Type": "application/x-custom"},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "cookies": ["a=1; Path=/", "b=2; Path=/"],
        "body": "created",
    }


def binary(event, context):
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "image/png"},
        "body": base64.b64encode(b"\x89PNG\x00\xff").decode(),
        "isBase64Encoded": True,
    }


def plain_text(event, context):
    return "just text"


def raw_bytes(event, context):
    return b"\x00\x01\x02"


def a_list(event, context):
    return [1, "two", {"three": 3}]


def nothing(event, context):
    return None


def own_503(event, context):
    # A function's own 503 that looks like the runtime's draining reply, header and all.
    return {
        "statusCode": 503,
        "headers": {"Content-Type": "application/json", "X-Hanshu-Draining": "true"},
        "multiValueHeaders": {"x-hanshu-draining": ["true", "yes"]},
        "body": '{"errorType": "Draining", "errorMessage": "our database is draining"}',
    }
