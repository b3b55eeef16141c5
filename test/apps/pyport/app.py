"""Python's http.server on $PORT, nothing else: every path answers
"gen=G worker=W pid=P". SIGTERM kills it (Python's default)."""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = ("gen=%s worker=%s pid=%d\n" % (
    os.environ.get("ROTINI_GENERATION"), os.environ.get("ROTINI_WORKER"), os.getpid())).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
