"""A Lambda function written for API Gateway's REST proxy integration, deployed unchanged.

Nothing here knows about Hanshu: the handler's name is the Lambda console's default, it
reads the payload format 1.0 fields and the Lambda context, and it answers with
multiValueHeaders (two cookies) and a base64 body, as API Gateway expects.
"""

import base64
import json


def lambda_handler(event, context):
    query = event["queryStringParameters"] or {}  # null when the URL has no query
    if event["path"] == "/echo" and event["httpMethod"] == "POST":
        raw = event["body"] or ""
        received = raw if event["isBase64Encoded"] else base64.b64encode(raw.encode()).decode()
        return _json({"received": received})
    return _json(
        {
            "message": f"Hello, {query.get('name', 'world')}!",
            "path": event["path"],
            "sourceIp": event["requestContext"]["identity"]["sourceIp"],
            "requestId": context.aws_request_id,
            "function": context.invoked_function_arn,
            "remainingMs": context.get_remaining_time_in_millis(),
        },
        cookies=["visited=1; Path=/; HttpOnly", "theme=light; Path=/"],
    )


def _json(payload, cookies=()):
    reply = {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(payload),
        "isBase64Encoded": False,
    }
    if cookies:
        reply["multiValueHeaders"] = {"Set-Cookie": list(cookies)}
    return reply
