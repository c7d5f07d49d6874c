"""The baseline for bench/serve.py: an aiohttp handler on uvloop that returns a fixed body."""
import sys

import uvloop
from aiohttp import web

BODY = b'{"items":[{"item_id":"1","score":1.0}],"model_version":"fixed","request_id":"0"}'


async def handle(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


if __name__ == "__main__":
    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    uvloop.install()
    # the gateway's accept backlog (settings.gateway.listen_backlog), so a burst of connections costs both alike
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, backlog=4096)
