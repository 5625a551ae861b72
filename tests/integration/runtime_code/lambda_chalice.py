"""A Chalice app, exactly as `chalice deploy` puts it on Lambda + API Gateway (REST): Chalice
routes on requestContext.resourcePath, one API Gateway resource per route."""

from chalice import Chalice, Response

app = Chalice(app_name="todos")


@app.route("/")
def index():
    return {"hello": "world"}


@app.route("/todos", methods=["POST"])
def create_todo():
    return Response(body=app.current_request.json_body, status_code=201)


@app.route("/todos/{todo_id}", methods=["GET", "PUT"])
def todo(todo_id):
    request = app.current_request
    return {
        "id": todo_id,
        "method": request.method,
        "verbose": (request.query_params or {}).get("verbose"),
        "resource": request.path,
    }
