"""What ``hanshu init`` writes: a folder that ``hanshu deploy`` and ``hanshu dev`` take as
it is. Pure: the files as a name -> text mapping; the command writes them."""

from __future__ import annotations

import re
import textwrap

from .errors import CliError

TEMPLATES = ("event", "flask", "fastapi")
NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

_EVENT_HANDLER = '''\
"""{name}: an event handler (Function Compute / Lambda style)."""

import json


def handler(event, context):
    name = (event.get("queryParameters") or {{}}).get("name", "world")
    context.logger.info("greeting %s", name)
    return {{
        "statusCode": 200,
        "headers": {{"Content-Type": "application/json"}},
        "body": json.dumps({{"message": f"Hello, {{name}}!", "requestId": context.request_id}}),
    }}
'''

_FLASK_APP = '''\
"""{name}: a Flask app served as a Function (WSGI)."""

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def hello():
    return {{"message": f"Hello, {{request.args.get('name', 'world')}}!"}}
'''

_FASTAPI_APP = '''\
"""{name}: a FastAPI app served as a Function (ASGI)."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello(name: str = "world") -> dict[str, str]:
    return {{"message": f"Hello, {{name}}!"}}
'''

_MANIFEST = """\
# {name}: `hanshu deploy` fills spec.code from this folder (inline, a ConfigMap when larger,
# or --image); `hanshu dev .` runs it locally.
apiVersion: hanshu.io/v1alpha1
kind: Function
metadata:
  name: {name}
spec:
  handler: {handler}{handler_type}
  timeoutSeconds: 30
  scaling:
    minReplicas: 0
    maxReplicas: 5
    targetConcurrency: 10
    scaleToZeroGracePeriod: 60s
---
apiVersion: hanshu.io/v1alpha1
kind: Trigger
metadata:
  name: {name}
spec:
  functionRef:
    name: {name}
  http:
    path: /{name}
    stripPrefix: true
"""

_DOCKERFILE = """\
# The Hanshu runtime plus this folder's packages and code (code in /code).
ARG RUNTIME_IMAGE=hanshu/runtime:dev
FROM ${{RUNTIME_IMAGE}}
USER root
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
USER 10001:10001
COPY --chown=10001:10001 {module}.py /code/{module}.py
"""

_README = """\
# {name}

A Hanshu Function ({kind}).

On this machine (`hanshu` is in the virtual environment Hanshu was installed into:
`export PATH="$PWD/.venv/bin:$PATH"` in a checkout after `make install`):

```sh
hanshu dev .                             # the whole platform here: http://127.0.0.1:8080/{name}
# in another terminal: invoke finds the running hanshu dev by itself (no --gateway)
hanshu invoke {name} --path '?name=Ada'  # status, request id, cold start, duration, body
```

On the cluster of your kubeconfig:

```sh
{deploy}
hanshu invoke {name}                     # the cluster's once no hanshu dev serves {name}
hanshu --context CONTEXT invoke {name}   # the cluster's, even while hanshu dev runs
hanshu logs {name}                       # every replica's lines, in time order
```

`function.yaml` is the Function and its HTTP Trigger (path `/{name}`); `--path` goes below
that route (`--path /more?x=1` calls `/{name}/more?x=1`).
"""


def check_name(name: str) -> None:
    if len(name) > 63 or not NAME_PATTERN.match(name):
        raise CliError(
            f"{name!r} is not a valid Function name: lowercase letters, digits and '-', "
            "starting with a letter, at most 63 characters (e.g. hello-world)"
        )


def render(name: str, template: str) -> dict[str, str]:
    """The files of a new Function folder, by name."""
    check_name(name)
    if template == "event":
        module, handler, handler_type, code = "index", "index.handler", "", _EVENT_HANDLER
        requirements = "# Packages your handler imports; inline code cannot have any.\n"
    elif template in ("flask", "fastapi"):
        module, handler = "app", "app:app"
        handler_type = "\n  handlerType: " + ("wsgi" if template == "flask" else "asgi")
        code = _FLASK_APP if template == "flask" else _FASTAPI_APP
        requirements = "flask>=3\n" if template == "flask" else "fastapi>=0.110\n"
    else:
        raise CliError(f"no template {template!r}: choose one of {', '.join(TEMPLATES)}")
    deploy = (
        "hanshu deploy .                          # server-side apply; waits until Ready"
        if template == "event"
        else (
            f"docker build -t REGISTRY/{name}:v1 . && docker push REGISTRY/{name}:v1\n"
            f"hanshu deploy . --image REGISTRY/{name}:v1"
        )
    )
    files = {
        f"{module}.py": code.format(name=name),
        "requirements.txt": requirements,
        "function.yaml": _MANIFEST.format(name=name, handler=handler, handler_type=handler_type),
        "README.md": _README.format(
            name=name, kind=f"{template} template", deploy=textwrap.dedent(deploy)
        ),
    }
    if template != "event":
        files["Dockerfile"] = _DOCKERFILE.format(module=module)
    return files
