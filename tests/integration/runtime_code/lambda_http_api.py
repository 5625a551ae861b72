"""Lambda code written for API Gateway HTTP APIs and Lambda function URLs (payload format
2.0), exactly as deployed there: Powertools' two 2.0 resolvers, Mangum around FastAPI (it
tells 2.0 from 1.0 by ``version``), and a plain handler reading ``requestContext.http``."""

import json
from typing import Annotated

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    LambdaFunctionUrlResolver,
    Response,
)
from aws_lambda_powertools.shared.cookies import Cookie
from fastapi import FastAPI, Query, Request
from fastapi import Response as FastApiResponse
from mangum import Mangum

http_api = APIGatewayHttpResolver()


@http_api.get("/todos/<todo_id>")
def get_todo(todo_id: str):
    event = http_api.current_event
    return {
        "id": todo_id,
        "verbose": event.get_query_string_value("verbose", "no"),
        "cookies": event.cookies,
        "method": event.request_context.http.method,
        "source_ip": event.request_context.http.source_ip,
    }


@http_api.post("/todos")
def create_todo():
    return Response(
        status_code=201,
        content_type="application/json",
        body=json.dumps(http_api.current_event.json_body),
        cookies=[Cookie(name="seen", value="1"), Cookie(name="theme", value="dark")],
    )


def http_api_handler(event, context):
    return http_api.resolve(event, context)


function_url = LambdaFunctionUrlResolver()


@function_url.get("/hello/<name>")
def hello(name: str):
    event = function_url.current_event
    return {"hello": name, "raw_path": event.raw_path, "lang": event.query_string_parameters}


def function_url_handler(event, context):
    return function_url.resolve(event, context)


api = FastAPI()


@api.get("/items/{item_id}")
def read_item(item_id: int, request: Request, tag: Annotated[list[str] | None, Query()] = None):
    return {
        "item_id": item_id,
        "tags": tag or [],
        "session": request.cookies.get("session"),
        "source_ip": request.scope["aws.event"]["requestContext"]["http"]["sourceIp"],
    }


@api.post("/items", status_code=201)
def create_item(response: FastApiResponse):
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return {"created": True}


mangum_handler = Mangum(api, lifespan="off")


def plain_handler(event, context):
    method = event["requestContext"]["http"]["method"]
    if method == "POST":
        return {"statusCode": 201, "cookies": ["x=1; Path=/", "y=2; Path=/"], "body": event["body"]}
    if event["rawPath"] == "/words":
        return "just words"  # 2.0: a bare string is a 200 JSON body
    return {  # 2.0: a dict without statusCode is a 200 JSON body
        "version": event["version"],
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "query": event.get("queryStringParameters"),
        "cookies": event.get("cookies"),
        "accept": event["headers"].get("accept"),
        "has_cookie_header": "cookie" in event["headers"],
        "http": event["requestContext"]["http"],
        "stage": event["requestContext"]["stage"],
        "requestId": event["requestContext"]["requestId"],
        "timeEpoch": event["requestContext"]["timeEpoch"],
        "pathParameters": event.get("pathParameters"),
        "isBase64Encoded": event["isBase64Encoded"],
    }
