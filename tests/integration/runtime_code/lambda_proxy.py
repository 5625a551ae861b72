"""A plain Lambda proxy-integration handler: the v1 event fields and the context as code
written for AWS reads them, and a reply with multi-value headers."""

import json


def lambda_handler(event, context):
    query = event["queryStringParameters"] or {}
    multi_query = event["multiValueQueryStringParameters"] or {}
    request_context = event["requestContext"]
    body = {
        "resource": event["resource"],
        "path": event["path"],
        "httpMethod": event["httpMethod"],
        "name": query.get("name"),
        "colors": multi_query.get("color", []),
        "accept": event["multiValueHeaders"].get("Accept"),
        "proxy": (event["pathParameters"] or {}).get("proxy"),
        "stageVariables": event["stageVariables"],
        "body": json.loads(event["body"]) if event["body"] else None,
        "isBase64Encoded": event["isBase64Encoded"],
        "requestContext": {
            "requestId": request_context["requestId"],
            "resourcePath": request_context["resourcePath"],
            "httpMethod": request_context["httpMethod"],
            "path": request_context["path"],
            "stage": request_context["stage"],
            "protocol": request_context["protocol"],
            "requestTimeEpoch": request_context["requestTimeEpoch"],
            "sourceIp": request_context["identity"]["sourceIp"],
            "userAgent": request_context["identity"]["userAgent"],
        },
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": int(context.memory_limit_in_mb),
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "cognito_identity_id": context.identity.cognito_identity_id,
            "client_context": context.client_context,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "invocation_id": context.invocation_id,
            "attempt": context.attempt,
            "invocation_type": context.invocation_type,
        },
    }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "X-Handler": "lambda"},
        "multiValueHeaders": {"Set-Cookie": ["a=1; Path=/", "b=2; Path=/"]},
        "body": json.dumps(body),
    }


def invocation(event, context):
    return {
        "invocation_id": context.invocation_id,
        "attempt": context.attempt,
        "type": context.invocation_type,
    }
