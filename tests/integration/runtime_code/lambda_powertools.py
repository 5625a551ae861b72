"""An AWS Lambda Powertools REST resolver, exactly as deployed on Lambda + API Gateway."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

logger = Logger(service="todos")
app = APIGatewayRestResolver(enable_validation=True)


@app.get("/todos/<todo_id>")
def get_todo(todo_id: str):
    return {
        "id": todo_id,
        "verbose": app.current_event.get_query_string_value("verbose", "no"),
        "fields": app.current_event.get_multi_value_query_string_values("field"),
        "function_arn": app.lambda_context.invoked_function_arn,
    }


app.enable_swagger(path="/swagger")


@logger.inject_lambda_context
def handler(event, context):
    return app.resolve(event, context)
