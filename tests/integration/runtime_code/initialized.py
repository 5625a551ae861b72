"""A handler whose initializer runs once before the instance is ready (Function Compute style)."""

CALLS = []


def initialize(context):
    CALLS.append(context.function_name)


def handler(event, context):
    return {"initializer_calls": len(CALLS)}
