"""A plain WSGI app for rotini's end-to-end tests (served by gunicorn).

Every path answers "gen=G worker=W pid=P": the rotini generation and worker
index it was started in (ROTINI_GENERATION, ROTINI_WORKER) and the pid of
the process that served the request, so the load client can tell which
generation answered.
"""

import os

GENERATION = os.environ.get("ROTINI_GENERATION", "")
WORKER = os.environ.get("ROTINI_WORKER", "")


def application(environ, start_response):
    body = ("gen=%s worker=%s pid=%d\n" % (GENERATION, WORKER, os.getpid())).encode()
    start_response("200 OK", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
