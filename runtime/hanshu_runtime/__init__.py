"""hanshu_runtime: the server inside every Hanshu function pod.

It loads the user's handler from ``HANSHU_CODE_DIR``, turns each HTTP request into an
API-gateway style event (or a WSGI environ / ASGI scope) and turns the handler's reply back
into HTTP. See ``docs/runtime.md`` for the contract.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
