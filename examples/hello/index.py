"""The smallest Hanshu function: an event handler in the Function Compute / Lambda style."""


def handler(event, context):
    name = (event.get("queryParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain; charset=utf-8"},
        "body": f"Hello, {name}!\n",
    }
