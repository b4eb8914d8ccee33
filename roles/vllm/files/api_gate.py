# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client port of a vLLM server in sleep mode: only the OpenAI-compatible routes pass.

vLLM serves its development endpoints (/sleep, /wake_up, /is_sleeping, /collective_rpc,
/reset_prefix_cache, /server_info, ...) on the same port as the API once VLLM_SERVER_DEV_MODE=1, and a
Kubernetes Service cannot filter paths. So in a sleep-mode pod vLLM listens on its own port (the engine
port, which no Service targets) and this gate, a second container of the pod, listens on the client port
the Services use and forwards to vLLM over the pod's loopback only the routes clients use: /v1/..., /v2/...
(but not the LoRA loading routes), /health, /ping, /version, /metrics, /load, /tokenize, /detokenize,
/pooling, /classify, /score, /rerank, /invocations. Everything else answers 404 as vLLM does for an unknown
route. The GPU mode switcher reaches the development endpoints on the engine port through the API server's
pod proxy, which needs the pods/proxy permission.

Streaming answers (server-sent events) are passed on chunk by chunk as they arrive. Standard library only:
it runs with the Python of the vLLM image itself, so nothing is pulled or installed.

    python3 api_gate.py --listen-port 8000 --upstream-port 8001
"""

import argparse
import http.client
import http.server
import json
import posixpath
import signal
import socket
import sys
import threading
from urllib.parse import unquote, urlsplit

CLIENT_PREFIXES = ("/v1/", "/v2/")
CLIENT_PATHS = frozenset(("/health", "/ping", "/version", "/metrics", "/load", "/tokenize", "/detokenize",
                          "/pooling", "/classify", "/score", "/rerank", "/invocations"))
# Management routes under /v1 (vLLM serves them with VLLM_ALLOW_RUNTIME_LORA_UPDATING): never for clients.
REFUSED = frozenset(("/v1/load_lora_adapter", "/v1/unload_lora_adapter"))
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade"))
NOT_FOUND = json.dumps({"detail": "Not Found"}).encode()


def client_route(raw_path):
    """Whether a request target (path and query, as sent) is a route clients may use."""
    path = urlsplit(raw_path).path or "/"
    decoded = unquote(path)
    if "\\" in decoded or "\x00" in decoded:
        return False
    normalized = posixpath.normpath(decoded)
    if decoded.endswith("/") and normalized != "/":
        normalized += "/"
    if normalized != decoded or "//" in decoded:
        return False  # dot segments, doubled or encoded slashes: nothing a client needs
    if decoded in REFUSED:
        return False
    return decoded in CLIENT_PATHS or decoded.startswith(CLIENT_PREFIXES)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "baremetal-gpu-api-gate"
    sys_version = ""

    def log_message(self, *args):  # no access log: vLLM logs the requests it serves
        return

    def _refuse(self):
        self.server.log("refused %s %s: not a client route" % (self.command, self.path.split("?", 1)[0][:200]))
        self._drain_body()
        self._send(404, NOT_FOUND)

    def _send(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        if (self.headers.get("transfer-encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else None

    def _drain_body(self):
        try:
            self._body()
        except (ValueError, OSError):
            self.close_connection = True

    def _forward(self):
        if not client_route(self.path):
            self._refuse()
            return
        body = self._body()
        headers = dict((k, v) for k, v in self.headers.items()
                       if k.lower() not in HOP_BY_HOP and k.lower() not in ("host", "content-length"))
        upstream = None
        try:
            host, port = self.server.upstream()
            upstream = http.client.HTTPConnection(host, port, timeout=self.server.timeout_seconds)
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            if upstream is not None:
                upstream.close()
            self._send(503, json.dumps({"detail": "the model server is not answering yet: %s" % exc}).encode())
            return
        try:
            self._relay(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away: nothing to answer
        finally:
            upstream.close()

    def _relay(self, response):
        self.send_response(response.status, response.reason)
        length = response.getheader("content-length")
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        if length is not None or self.command == "HEAD" or response.status in (204, 304):
            self.send_header("content-length", length or "0")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.read())
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        while True:
            piece = response.read1(65536)
            if not piece:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _forward


class Gate(http.server.ThreadingHTTPServer):
    """The gate: ``upstream`` is ``(host, port)`` of vLLM's engine port, or a callable returning it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen, upstream, timeout_seconds=3600.0, log=None):
        super().__init__(listen, Handler)
        self._upstream = upstream
        self.timeout_seconds = timeout_seconds
        self.log = log or (lambda line: print("api-gate: " + line, file=sys.stderr, flush=True))

    def upstream(self):
        return self._upstream() if callable(self._upstream) else self._upstream

    def handle_error(self, request, client_address):
        """A client that went away is no error worth a traceback; anything else is one log line."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            self.log("error serving %s: %r" % (client_address[0], exc))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Pass only the OpenAI-compatible routes to a vLLM server.")
    parser.add_argument("--listen-host", default="0.0.0.0")
    parser.add_argument("--listen-port", type=int, default=8000)
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, default=8001)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one upstream answer may take")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    family = socket.AF_INET6 if ":" in args.listen_host else socket.AF_INET
    Gate.address_family = family
    gate = Gate((args.listen_host, args.listen_port), (args.upstream_host, args.upstream_port), args.timeout)
    gate.log("listening on %s:%d, client routes to %s:%d" % (args.listen_host, args.listen_port, args.upstream_host,
                                                             args.upstream_port))

    def stop(_signum, _frame):
        threading.Thread(target=gate.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    gate.serve_forever(poll_interval=0.2)
    gate.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
