"""A plain ASGI app for rotini's end-to-end tests (served by uvicorn).

Every path answers "gen=G worker=W pid=P", like apps/wsgi/app.py.
"""

import os

GENERATION = os.environ.get("ROTINI_GENERATION", "")
WORKER = os.environ.get("ROTINI_WORKER", "")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = ("gen=%s worker=%s pid=%d\n" % (GENERATION, WORKER, os.getpid())).encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ],
    })
    await send({"type": "http.response.body", "body": body})
