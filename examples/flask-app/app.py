"""A whole Flask app as one function: the runtime turns each request into a WSGI call."""

from flask import Flask, jsonify, request

app = Flask(__name__)
TODOS: list[dict] = []  # per replica: functions are stateless, use a database for real data


@app.get("/todos")
def list_todos():
    return jsonify(TODOS)


@app.post("/todos")
def add_todo():
    todo = {"id": len(TODOS) + 1, "title": request.get_json(force=True).get("title", "")}
    TODOS.append(todo)
    return jsonify(todo), 201
