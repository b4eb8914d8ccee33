"""HTTP plumbing of the fake vLLM: a threading server, FastAPI's routing answers, vLLM's auth middleware and
error bodies."""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["HTTPServer", "Handler", "error_body", "ENGINE_DEAD_MESSAGE"]

# vllm/v1/engine/exceptions.py EngineDeadError (0.8.5.post1 .. 0.33.0)
ENGINE_DEAD_MESSAGE = "EngineCore encountered an issue. See stack trace (above) for the root cause."


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client (or stop()) closing the connection mid-answer is normal here; anything else is a bug.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def error_body(profile, message, err_type="BadRequestError", code=400, param=None):
    """vLLM's ErrorResponse for the release: flat before 0.10.1, ``{"error": {...}}`` from 0.10.1 on."""
    if profile.error_body == "flat":
        return {"object": "error", "message": message, "type": err_type, "param": param, "code": code}
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    timeout = 30  # idle keep-alive connections go away
    # uvicorn runs on asyncio, whose TCP transports set TCP_NODELAY: headers and body written apart are not
    # held back by Nagle's algorithm waiting for the peer's delayed ACK (40 ms on Linux)
    disable_nagle_algorithm = True
    fake = None  # set per server class

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.fake.track_connection(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.fake.track_connection(self.connection, False)

    # ------------------------------------------------------------------ plumbing
    @property
    def query(self):
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def send(self, status, body=b"", content_type="application/json", extra=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        if body or content_type == "application/json":
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.fake.access_log(self, status)  # before the answer leaves: a client that has it sees the line
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_body(self, message, err_type, code, param=None):
        self.send(code, error_body(self.fake.profile, message, err_type, code, param))

    def send_unhandled(self, message, status=500, err_type="InternalServerError"):
        """An exception no route handles: Starlette's plain 500 before 0.18, vLLM's JSON error from 0.18."""
        if self.fake.profile.unhandled_error_json:
            self.send_error_body(message, err_type, status)
        else:
            self.send(500, "Internal Server Error", content_type="text/plain; charset=utf-8")

    def send_engine_dead(self):
        if self.fake.profile.unhandled_error_json:
            self.send_error_body(ENGINE_DEAD_MESSAGE, "InternalServerError", 500)
        else:
            self.send(500, b"", content_type="")

    def chunk(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def read_json(self):
        raw = self.read_body()
        try:
            doc = json.loads(raw.decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError) as exc:
            return None, ("JSON decode error: %s" % exc)
        if not isinstance(doc, dict):
            return None, "request body must be a JSON object"
        return doc, None

    # ------------------------------------------------------------------ authentication (vLLM's middleware)
    def authorized(self, path):
        fake = self.fake
        tokens = fake.api_tokens
        if not tokens or self.command == "OPTIONS" or not path.startswith(fake.profile.auth_prefixes):
            return True
        header = self.headers.get("Authorization")
        if not header:
            return False
        if fake.profile.auth_scheme_case_insensitive:
            scheme, _sep, param = header.partition(" ")
            return scheme.lower() == "bearer" and param in tokens
        return header in {"Bearer " + t for t in tokens}

    # ------------------------------------------------------------------ routing
    def dispatch(self, method):
        fake = self.fake
        if fake.response_delay > 0:
            time.sleep(fake.scaled(fake.response_delay))
        path = urlsplit(self.path).path
        if not self.authorized(path):
            self.read_body()
            self.send(401, {"error": "Unauthorized"})
            return
        routes = fake.routes()
        handler = routes.get((method, path))
        if handler is None:
            self.read_body()
            allowed = sorted(m for (m, p) in routes if p == path)
            if allowed:
                self.send(405, {"detail": "Method Not Allowed"}, extra={"allow": ", ".join(allowed)})
            else:
                self.send(404, {"detail": "Not Found"})
            return
        handler(self)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_HEAD(self):
        # FastAPI's APIRoute adds no HEAD to a GET route (Starlette's plain Route would): HEAD /health is 405.
        self.dispatch("HEAD")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")
