"""A real Flask app served as a function (handler type wsgi)."""

from flask import Flask, jsonify, make_response, redirect, request, url_for

app = Flask(__name__)


@app.route("/items/<item_id>", methods=["GET", "POST", "PUT"])
def item(item_id):
    return jsonify(
        item=item_id,
        method=request.method,
        args={key: request.args.getlist(key) for key in request.args},
        body=request.get_data(as_text=True),
        scheme=request.scheme,
        remote_addr=request.remote_addr,
        agent=request.headers.get("User-Agent"),
        multi=request.headers.get("X-Multi"),
        path=request.path,
        full_path=request.full_path,
    )


@app.route("/cookies")
def cookies():
    response = make_response("two cookies", 202)
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    response.headers["X-App"] = "flask"
    return response


@app.route("/fail")
def fail():
    raise RuntimeError("flask view failed")


@app.route("/echo/<path:rest>")
def echo(rest):
    environ = request.environ
    return jsonify(
        rest=rest,
        path=request.path,
        args={key: request.args.getlist(key) for key in request.args},
        url=url_for("echo", rest=rest),
        **{key: environ.get(key) for key in ("PATH_INFO", "SCRIPT_NAME", "RAW_URI", "REQUEST_URI")},
    )


@app.route("/go")
def go():
    return redirect(url_for("landing"))


@app.route("/landing")
def landing():
    return "landed"


@app.route("/own-503")
def own_503():
    # A function's own 503 that looks like the runtime's draining reply, header and all.
    response = jsonify(errorType="Draining", errorMessage="our database is draining")
    response.status_code = 503
    response.headers["X-Hanshu-Draining"] = "true"
    return response
