"""A Flask app behind apig-wsgi, exactly as deployed on Lambda + API Gateway (REST)."""

import hashlib

from apig_wsgi import make_lambda_handler
from flask import Flask, Response, request

app = Flask(__name__)


@app.get("/search")
def search():
    return {"tag": request.args.getlist("tag"), "q": request.args.get("q")}


@app.post("/upload")
def upload():
    data = request.get_data()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.get("/pixel")
def pixel():
    return Response(bytes(range(256)), mimetype="application/octet-stream")


handler = make_lambda_handler(app, binary_support=True)
