# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router's HTTP side (aiohttp):

* ``/v1/*``: the request's JSON ``model`` picks the route; the request is admitted (queue, switch, hold),
  then forwarded unchanged (method, path, query, body, headers but hop-by-hop ones) to a ready server of the
  route's Deployment, and the answer streamed back as it comes (server-sent events chunk by chunk, bytes
  unchanged). A body without ``model`` goes to the active mode.
* ``GET /v1/models``: every servable model with its mode and state (loaded, asleep, stopped).
* ``/healthz``: 200 once the router follows the cluster (its watches listed), else 503 (readiness);
  ``/livez``: 200 while the process answers (liveness).
* ``/metrics``: Prometheus text (see ``metrics``).

aiohttp is the only dependency beyond the collection's own (the vLLM image has it); without it ``missing()``
says what to install.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import asyncio
import itertools
import json
import time

try:
    import aiohttp
    from aiohttp import web

    AIOHTTP_IMPORT_ERROR = None
except ImportError as exc:  # reported by missing()
    aiohttp = None
    web = None
    AIOHTTP_IMPORT_ERROR = exc

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router import errors
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.routing import Route

HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "host", "content-length"))
ACTIVITY_METRICS = ("vllm:request_success_total", "vllm:num_requests_running", "vllm:num_requests_waiting")


def missing():
    """None when the router can run here, else what is missing and how to get it."""
    if aiohttp is None:
        return ("the router needs aiohttp (%s): run it with a Python that has it (the vLLM image's python3 does), "
                "or pip install aiohttp" % AIOHTTP_IMPORT_ERROR)
    return None


def activity_count(text):
    """The sum of vLLM's finished, running and waiting request counts in a ``/metrics`` text (changes whenever
    the server is used)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(ACTIVITY_METRICS):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
    return total


class Router:
    def __init__(self, settings, view, coordinator, metrics, log, clock=time.monotonic):
        self.settings = settings
        self.view = view
        self.coordinator = coordinator
        self.metrics = metrics
        self.log = log
        self.clock = clock
        self.session = None
        self.started = int(time.time())
        self._changed = None
        self._round_robin = itertools.count()

    # ------------------------------------------------------------------ life cycle
    def app(self):
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/livez", self.livez)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_get("/v1/models", self.models)
        app.router.add_route("*", "/v1/{tail:.*}", self.proxy)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, app):
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        self._changed = asyncio.Event()

    async def _cleanup(self, app):
        if self.session is not None:
            await self.session.close()

    def cluster_changed(self, kind):
        """Called on the loop after the view changed: follow the recorded mode, wake waiting requests."""
        if kind == "configmap":
            self.coordinator.follow(self.view.recorded_mode())
            table = self.view.table()
            self.metrics.active(self.coordinator.active, sorted((table.book.get("modes") or {})))
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    # ------------------------------------------------------------------ endpoints
    async def healthz(self, request):
        synced = self.view.is_synced()
        body = dict(self.coordinator.snapshot(), synced=synced, watch_errors=dict(self.view.errors))
        return web.json_response(body, status=200 if synced else 503)

    async def livez(self, request):
        """The process answers (its event loop runs): for the liveness probe, which must not restart a router
        only because the API server is away for a while."""
        return web.json_response({"alive": True})

    async def prometheus(self, request):
        return web.Response(text=self.metrics.text(), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def models(self, request):
        table = self.view.table()
        active = self.coordinator.active
        data = []
        for name in table.models():
            route = table.resolve(name, active)
            data.append({"id": name, "object": "model", "created": self.started, "owned_by": "baremetal-gpu",
                         "mode": route.mode, "modes": sorted(set(r.mode for r in table.routes(name))),
                         "state": table.model_state(name, active)})
        return web.json_response({"object": "list", "data": data})

    async def proxy(self, request):
        started = self.clock()
        model, mode, status = None, None, 500
        try:
            body = await request.read()
            model = self._model_of(request, body)
            route = self._route(model)
            mode = route.mode
            deadline = started + self.settings["hold_timeout"]
            ticket = await self.coordinator.admit(route, self.settings["hold_timeout"])
            try:
                response = await self._forward(request, body, route, deadline)
                status = response.status
                return response
            finally:
                self.coordinator.release(ticket)
        except errors.RouterError as exc:
            status = exc.status
            if isinstance(exc, errors.UnknownModel):
                self.metrics.rejected("unknown_model")
            elif isinstance(exc, errors.BadRequest):
                self.metrics.rejected("bad_request")
            elif isinstance(exc, errors.NoUpstream):
                self.metrics.rejected("no_ready_server")
            self.log("request_refused", level="warning", model=model, mode=mode, status=exc.status,
                     code=exc.code, error=exc.message, path=request.path)
            return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
        finally:
            self.metrics.request(model, mode, status)

    # ------------------------------------------------------------------ helpers
    def _model_of(self, request, body):
        if not body or request.method in ("GET", "HEAD"):
            return None
        try:
            payload = json.loads(body)
        except ValueError:
            if request.content_type == "application/json":
                raise errors.BadRequest("the request body is not JSON")
            return None  # multipart (audio transcriptions): the active mode
        if isinstance(payload, dict) and isinstance(payload.get("model"), str):
            return payload["model"]
        return None

    def _route(self, model):
        table = self.view.table()
        active = self.coordinator.active
        if model is None:
            workloads = sorted(table.mode_workloads(active))
            if not workloads:
                raise errors.BadRequest("the request names no model and GPU mode %s serves none; servable models: %s"
                                        % (active, ", ".join(table.models()) or "none"))
            return Route(None, active, workloads[0])
        route = table.resolve(model, active)
        if route is None:
            raise errors.UnknownModel(model, table.models())
        return route

    async def _upstream(self, route, deadline):
        """A ready server of the route's Deployment (round robin); waits for one until ``deadline`` (a switch has
        just made it ready, and the pod watch has not shown it yet)."""
        while True:
            addresses = self.view.upstreams(route.deployment)
            if addresses:
                return addresses[next(self._round_robin) % len(addresses)]
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise errors.NoUpstream(route.model, route.deployment, self.settings["retry_after"])
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def _forward(self, request, body, route, deadline):
        address = await self._upstream(route, deadline)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        url = "http://%s%s" % (address, request.rel_url)
        timeout = aiohttp.ClientTimeout(total=self.settings["upstream_timeout"], sock_connect=10)
        try:
            async with self.session.request(request.method, url, headers=headers, data=body or None,
                                            timeout=timeout, allow_redirects=False) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        response.headers.add(key, value)
                length = upstream.headers.get("Content-Length")
                if length is not None and upstream.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    response.content_length = int(length)
                else:
                    response.enable_chunked_encoding()
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except aiohttp.ClientConnectionError as exc:
            self.log("upstream_failed", level="error", model=route.model, upstream=address, error=str(exc))
            raise errors.NoUpstream(route.model, route.deployment, self.settings["retry_after"])

    async def activity(self, mode):
        """What the model servers of ``mode`` have served (see activity_count); None when none answers."""
        table = self.view.table()
        total, answered = 0.0, False
        for deployment in sorted(table.mode_workloads(mode)):
            for address in self.view.upstreams(deployment):
                try:
                    async with self.session.get("http://%s/metrics" % address,
                                                timeout=aiohttp.ClientTimeout(total=5)) as response:
                        if response.status == 200:
                            total += activity_count(await response.text())
                            answered = True
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    continue
        return total if answered else None
