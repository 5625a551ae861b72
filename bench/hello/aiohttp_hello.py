"""The ceiling: a bare aiohttp app that answers every path with the same text."""

import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world!")


app = web.Application()
app.router.add_route("*", "/{tail:.*}", hello)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
