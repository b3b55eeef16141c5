"""The WSGI app of rotini's gunicorn example. Edit it: rotini sees the change
in the mounted /srv/app and starts a new generation of gunicorn on it.

GET /         "gen=G worker=W pid=P": the rotini generation and worker index
              this gunicorn was started as, and the pid that answered.
GET /release  RELEASE below: change it to see your edit go live.
"""

import os

RELEASE = "1"

GENERATION = os.environ.get("ROTINI_GENERATION", "")
WORKER = os.environ.get("ROTINI_WORKER", "")


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/release":
        body = "release=%s\n" % RELEASE
    else:
        body = "gen=%s worker=%s pid=%d\n" % (GENERATION, WORKER, os.getpid())
    body = body.encode()
    start_response("200 OK", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
