"""HTTP layer: authentication and authorization of every request, routing, query/body parsing,
content negotiation, lists, watch streams (watching.py), logs and the service/pod proxy.
`FakeKubeAPI` (api.py) runs it over TLS on its own event loop thread.

Request handling stays thin: each handler turns a request into one registry call.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
import yaml
from aiohttp import web

from . import discovery, listing, protobuf, rbac, reviews, tables, watching
from .errors import ApiError, method_not_allowed
from .registry import APPLY, Registry, manager_from_user_agent
from .resources import Resource, ResourceTable
from .store import Store, clone

NAMESPACE_SUBRESOURCES = {"status", "finalize"}
USER = web.RequestKey("user", rbac.User)  # who the request authenticated as
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "authorization", "content-length"}


@dataclass
class Route:
    group: str
    version: str
    rest: List[str]  # path segments after /api/v1 or /apis/<g>/<v>
    namespace: Optional[str] = None
    plural: Optional[str] = None
    name: Optional[str] = None
    subresource: Optional[str] = None
    tail: str = ""  # proxy path after the subresource


def parse_route(group: str, version: str, rest: List[str]) -> Route:
    route = Route(group, version, rest)
    segs = list(rest)
    if len(segs) >= 3 and segs[0] == "namespaces" and not (group == "" and segs[2] in NAMESPACE_SUBRESOURCES):
        route.namespace = segs[1]
        segs = segs[2:]
    if segs:
        route.plural = segs[0]
    if len(segs) >= 2:
        route.name = segs[1]
    if len(segs) >= 3:
        route.subresource = segs[2]
        route.tail = "/".join(segs[3:])
    return route


def _truthy(value: Optional[str]) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _accepts(request: web.Request) -> Dict[str, str]:
    """The first `as=` target the client asks for in Accept (Table, PartialObjectMetadata...)."""
    for part in request.headers.get("Accept", "").split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("as") in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList") and \
                params.get("v") in ("v1", "v1beta1"):
            return params
    return {}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(), content_type="application/json")


def _error(err: ApiError) -> web.Response:
    return _json(err.body, err.code)


class KubeHTTP:
    """The aiohttp application object: routes requests to the registry."""

    def __init__(self, api: "FakeKubeAPI") -> None:
        self.api = api
        self.registry: Registry = api.registry
        self.table: ResourceTable = api.table
        self.store: Store = api.store
        self.session: Optional[aiohttp.ClientSession] = None

    # ------------------------------------------------------------ entry point
    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            user = self.api.authenticator.authenticate(request)
            request[USER] = user
            self.api.authorizer.check(user, rbac.request_attributes(request.method, request.path, request.query))
            return await self._dispatch(request)
        except ApiError as err:
            return _error(err)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as err:  # a bug in the fake must surface as a 500 the client can see
            import traceback
            traceback.print_exc()
            return _error(ApiError(500, f"fake apiserver internal error: {err!r}"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        if not segs:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version",
                                    "/openapi/v2", "/openapi/v3"]})
        head = segs[0]
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if head == "version":
            return _json(discovery.KUBE_VERSION)
        if head == "openapi":
            return self._openapi(request, segs)
        if head == "fake":
            return await self._fake(request, segs)
        if head == "api":
            if len(segs) == 1:
                return _json(discovery.api_versions(f"{self.api.host}:{self.api.port}"))
            if segs[1] != "v1":
                raise ApiError(404, "the server could not find the requested resource")
            return await self._group_version(request, "", "v1", segs[2:])
        if head == "apis":
            if len(segs) == 1:
                return _json(discovery.api_group_list(self.table))
            if len(segs) == 2:
                group = discovery.api_group(self.table, segs[1])
                if group is None:
                    raise ApiError(404, "the server could not find the requested resource")
                return _json(group)
            if not self.table.has_group_version(segs[1], segs[2]):
                raise ApiError(404, "the server could not find the requested resource")
            return await self._group_version(request, segs[1], segs[2], segs[3:])
        raise ApiError(404, "the server could not find the requested resource")

    def _openapi(self, request: web.Request, segs: List[str]) -> web.Response:
        if segs[1:2] == ["v3"]:
            if len(segs) == 2:
                return _json(discovery.openapi_v3_root(self.table))
            rest = segs[2:]
            if rest[0] == "api" and len(rest) == 2:
                return _json(discovery.openapi_v3_group_version(self.table, "", rest[1]))
            if rest[0] == "apis" and len(rest) == 3:
                return _json(discovery.openapi_v3_group_version(self.table, rest[1], rest[2]))
        raise ApiError(404, "the server could not find the requested resource")

    # ------------------------------------------------------------ /fake: the pod network
    async def _fake(self, request: web.Request, segs: List[str]) -> web.Response:
        """`/fake/v1/podnetwork/<ip>/<port>`: where traffic for a pod IP and port really goes."""
        if segs[1:3] != ["v1", "podnetwork"]:
            raise ApiError(404, "the server could not find the requested resource")
        if len(segs) == 3 and request.method == "GET":
            return _json({f"{ip}:{port}": url for (ip, port), url in self.api.pod_network.items()})
        if len(segs) != 5:
            raise ApiError(404, "the server could not find the requested resource")
        key = (segs[3], int(segs[4]))
        if request.method == "PUT":
            body = await request.json()
            self.api.pod_network[key] = body["url"]
            return _json({"url": body["url"]})
        if request.method == "DELETE":
            self.api.pod_network.pop(key, None)
            return _json({})
        if request.method == "GET":
            if key not in self.api.pod_network:
                raise ApiError(404, "no such pod address")
            return _json({"url": self.api.pod_network[key]})
        raise method_not_allowed()

    # ------------------------------------------------------------ resources
    async def _group_version(self, request: web.Request, group: str, version: str,
                             rest: List[str]) -> web.StreamResponse:
        if not rest:
            return _json(discovery.resource_list(self.table, group, version))
        route = parse_route(group, version, rest)
        res = self.table.lookup(group, version, route.plural or "")
        if res is None or (route.namespace is not None and not res.namespaced):
            raise ApiError(404, "the server could not find the requested resource")
        if res.namespaced and route.namespace is None and route.name is not None:
            raise ApiError(404, "the server could not find the requested resource")
        if route.subresource:
            return await self._subresource(request, res, route)
        if route.name is None:
            return await self._collection(request, res, route)
        return await self._object(request, res, route)

    def _check_verb(self, res: Resource, verb: str) -> None:
        if verb not in res.verbs:
            raise method_not_allowed()

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.content_type
        if "protobuf" in ctype:
            try:
                return protobuf.decode(raw)
            except protobuf.Unsupported:
                raise ApiError(415, "the body of the request was in an unknown format - accepted media types "
                                    "include: application/json, application/yaml")
        try:
            if "yaml" in ctype:
                return yaml.safe_load(raw.decode())
            return json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as err:
            raise ApiError(400, f"couldn't get version/kind; json parse error: {err}")

    def _manager(self, request: web.Request) -> str:
        return request.query.get("fieldManager") or manager_from_user_agent(request.headers.get("User-Agent"))

    def _dry_run(self, request: web.Request) -> bool:
        return request.query.get("dryRun") == "All"

    @staticmethod
    def _validation(request: web.Request) -> str:
        value = request.query.get("fieldValidation", "Warn")
        if value not in ("Strict", "Warn", "Ignore"):
            raise ApiError(400, f'fieldValidation: Unsupported value: "{value}": supported values: "Ignore", '
                                '"Strict", "Warn"')
        return value

    @staticmethod
    def _warn(response: web.Response, warnings: List[str]) -> web.Response:
        for warning in warnings:
            response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
        return response

    def _render(self, request: web.Request, res: Resource, obj: Dict[str, Any], status: int = 200) -> web.Response:
        wanted = _accepts(request)
        if wanted.get("as") == "Table" and obj.get("kind") == res.kind:
            return _json(tables.table(res.kind, [obj], obj["metadata"].get("resourceVersion", ""),
                                      request.query.get("includeObject", "Metadata")), status)
        if wanted.get("as") == "PartialObjectMetadata" and obj.get("kind") == res.kind:
            return _json(tables.partial_metadata(obj), status)
        return _json(obj, status)

    async def _collection(self, request: web.Request, res: Resource, route: Route) -> web.StreamResponse:
        q = request.query
        if request.method == "GET":
            if _truthy(q.get("watch")):
                self._check_verb(res, "watch")
                return await watching.serve_watch(self, request, res, route.namespace)
            self._check_verb(res, "list")
            items, rv, token, remaining = await self._list(q, res, route.namespace)
            wanted = _accepts(request)
            if wanted.get("as") == "Table":
                return _json(tables.table(res.kind, items, rv, q.get("includeObject", "Metadata"),
                                          continue_token=token))
            if wanted.get("as") in ("PartialObjectMetadataList", "PartialObjectMetadata"):
                meta = {"resourceVersion": rv, **({"continue": token} if token else {})}
                return _json({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                              "metadata": meta, "items": [tables.partial_metadata(i) for i in items]})
            listed = self.registry.list_object(res, items, rv, token)
            if remaining is not None:
                listed["metadata"]["remainingItemCount"] = remaining
            return _json(listed)
        if request.method == "POST":
            self._check_verb(res, "create")
            body = await self._body(request)
            if res.virtual:
                return _json(reviews.answer(self.api, res.kind, request[USER], body), 201)
            warnings: List[str] = []
            obj = self.registry.create(res, route.namespace, body, self._manager(request), self._dry_run(request),
                                       validation=self._validation(request), warnings=warnings)
            return self._warn(self._render(request, res, obj, 201), warnings)
        if request.method == "DELETE":
            self._check_verb(res, "deletecollection")
            options = await self._delete_options(request)
            return _json(self.registry.delete_collection(res, route.namespace, q.get("labelSelector"),
                                                         q.get("fieldSelector"), options, self._dry_run(request)))
        raise method_not_allowed()

    async def _wait_for_revision(self, wanted: int) -> None:
        """A NotOlderThan/Exact list for a revision not reached yet waits for it, then 504 (listing.py)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + listing.TOO_LARGE_WAIT_SECONDS
        while self.store.resource_version < wanted:
            if loop.time() >= deadline:
                raise listing.too_large(wanted, self.store.resource_version)
            await asyncio.sleep(0.01)

    async def _list(self, q: Any, res: Resource, namespace: Optional[str]
                    ) -> Tuple[List[Dict[str, Any]], str, Optional[str], Optional[int]]:
        listing.validate_list_options(q, watch=False)
        rv_text, match, token = q.get("resourceVersion", ""), q.get("resourceVersionMatch", ""), q.get("continue")
        selectors = bool(q.get("labelSelector") or q.get("fieldSelector"))
        at_rv, start = None, None
        if token:
            at_rv, start = listing.decode_continue(token)
            if at_rv < self.store.compacted:
                raise listing.continue_expired(at_rv, self.store.compacted)
        elif rv_text and rv_text != "0":
            wanted = listing.parse_resource_version(rv_text)
            await self._wait_for_revision(wanted)
            if match == "Exact":
                at_rv = wanted
        items, rv = self.registry.list(res, namespace, q.get("labelSelector"), q.get("fieldSelector"), at_rv)
        limit = None if rv_text == "0" and not token else q.get("limit")
        page, next_token, remaining = listing.paginate(items, limit, int(rv), start, selectors)
        return page, rv, next_token, remaining

    async def _delete_options(self, request: web.Request) -> Dict[str, Any]:
        options: Dict[str, Any] = {}
        if request.can_read_body:
            body = await self._body(request)
            if isinstance(body, dict):
                options.update(body)
        q = request.query
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        if "gracePeriodSeconds" in q:
            try:
                options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError:
                raise ApiError(400, f'strconv.ParseInt: parsing "{q["gracePeriodSeconds"]}": invalid syntax') \
                    from None
        if "orphanDependents" in q:
            options["orphanDependents"] = _truthy(q["orphanDependents"])
        return options

    async def _object(self, request: web.Request, res: Resource, route: Route) -> web.StreamResponse:
        name, namespace = route.name or "", route.namespace
        method = request.method
        if method == "GET":
            self._check_verb(res, "get")
            return self._render(request, res, self.registry.get(res, namespace, name))
        if method == "PUT":
            self._check_verb(res, "update")
            body = await self._body(request)
            warnings: List[str] = []
            obj, created = self.registry.replace(res, namespace, name, body, self._manager(request),
                                                 dry_run=self._dry_run(request),
                                                 validation=self._validation(request), warnings=warnings)
            return self._warn(self._render(request, res, obj, 201 if created else 200), warnings)
        if method == "PATCH":
            self._check_verb(res, "patch")
            warnings = []
            obj, created = self.registry.patch(
                res, namespace, name, request.content_type, await request.read(),
                request.query.get("fieldManager") or (None if request.content_type == APPLY
                                                      else self._manager(request)),
                _truthy(request.query.get("force")), dry_run=self._dry_run(request),
                validation=self._validation(request), warnings=warnings)
            return self._warn(self._render(request, res, obj, 201 if created else 200), warnings)
        if method == "DELETE":
            self._check_verb(res, "delete")
            options = await self._delete_options(request)
            warnings = []
            result, deleted = self.registry.delete_with_outcome(res, namespace, name, options,
                                                                self._dry_run(request), warnings)
            # 202 only when not deleted at once and orphanDependents=false was asked for (the delete handler)
            accepted = not deleted and options.get("orphanDependents") is False
            return self._warn(_json(result, 202 if accepted else 200), warnings)
        raise method_not_allowed()

    async def _subresource(self, request: web.Request, res: Resource, route: Route) -> web.StreamResponse:
        sub_name = route.subresource or ""
        name, namespace = route.name or "", route.namespace
        if sub_name == "proxy" or (":" in name and route.subresource == "proxy"):
            return await self._proxy(request, res, route)
        sub = res.subresource(sub_name)
        if sub is None:
            raise ApiError(404, "the server could not find the requested resource")
        method = request.method
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "POST": "create"}.get(method, "")
        if verb not in sub.verbs:
            raise method_not_allowed()
        if sub_name == "status" or sub_name == "finalize":
            if method == "GET":
                return self._render(request, res, self.registry.get(res, namespace, name))
            if method == "PUT":
                body = await self._body(request)
                obj, _created = self.registry.replace(res, namespace, name, body, self._manager(request),
                                                      "status", self._dry_run(request))
                return self._render(request, res, obj)
            obj, _created = self.registry.patch(
                res, namespace, name, request.content_type, await request.read(),
                request.query.get("fieldManager") or (None if request.content_type == APPLY
                                                      else self._manager(request)),
                _truthy(request.query.get("force")), "status", self._dry_run(request))
            return self._render(request, res, obj)
        if sub_name == "scale":
            if method == "GET":
                return _json(self.registry.get_scale(res, namespace, name))
            if method == "PUT":
                return _json(self.registry.update_scale(res, namespace, name, await self._body(request),
                                                        self._manager(request), self._dry_run(request)))
            return _json(self.registry.patch_scale(res, namespace, name, request.content_type,
                                                   await request.read(), self._manager(request),
                                                   self._dry_run(request)))
        if sub_name == "binding":
            return _json(self.registry.bind(namespace or "", name, await self._body(request),
                                            self._manager(request)), 201)
        if sub_name == "eviction":
            body = await self._body(request)
            self.registry.delete(res, namespace, name, (body or {}).get("deleteOptions") or {})
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                          "code": 201}, 201)
        if sub_name == "log":
            return await self._logs(request, namespace or "", name)
        if sub_name == "token":
            return _json(reviews.token_request(self.api, namespace or "", name, await self._body(request)), 201)
        raise method_not_allowed()

    # ------------------------------------------------------------ logs (proxied to the node's kubelet)
    async def _logs(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        pods = self.table.lookup("", "v1", "pods")
        pod = self.registry.get(pods, namespace, name)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container = request.query.get("container")
        if not container:
            if len(containers) != 1:
                raise ApiError(400, f"a container name must be specified for pod {name}, choose one of: "
                                    f"[{' '.join(containers)}]")
            container = containers[0]
        if container not in containers:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        statuses = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        state = (statuses.get(container) or {}).get("state") or {"waiting": {"reason": "ContainerCreating"}}
        previous = _truthy(request.query.get("previous"))
        if "waiting" in state and not previous and not (statuses.get(container) or {}).get("lastState"):
            raise ApiError(400, f'container "{container}" in pod "{name}" is waiting to start: '
                                f'{state["waiting"].get("reason", "ContainerCreating")}')
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.store.peek(self.table.lookup("", "v1", "nodes"), None, node_name or "")
        kubelet = _kubelet_address(node)
        if kubelet is None:
            raise ApiError(500, f"Get \"https://{node_name}:10250/containerLogs/{namespace}/{name}/{container}\": "
                                "dial tcp: connect: connection refused")
        params = {k: v for k, v in request.query.items() if k != "container"}
        url = f"http://{kubelet}/containerLogs/{namespace}/{name}/{container}"
        session = await self._session()
        try:
            async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as upstream:
                if upstream.status != 200:
                    raise ApiError(upstream.status if upstream.status < 500 else 500, (await upstream.text()).strip())
                response = web.StreamResponse(headers={"Content-Type": "text/plain"})
                return await _relay(request, response, upstream)
        except aiohttp.ClientError as err:
            raise ApiError(500, f"Get \"{url}\": {err}")

    # ------------------------------------------------------------ proxy (services and pods)
    async def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(auto_decompress=False)
        return self.session

    def _service_target(self, namespace: str, ref: str) -> Tuple[str, int]:
        parts = ref.split(":")
        if len(parts) == 3:
            parts = parts[1:]
        name, port_ref = parts[0], (parts[1] if len(parts) > 1 else "")
        services = self.table.lookup("", "v1", "services")
        svc = self.registry.get(services, namespace, name)
        ports = (svc.get("spec") or {}).get("ports") or []
        port = None
        for p in ports:
            if not port_ref or p.get("name") == port_ref or str(p.get("port")) == port_ref:
                port = p
                break
        if port is None:
            raise ApiError(503, f'no endpoints available for service "{ref}"', reason="ServiceUnavailable")
        endpoints = self.store.peek(self.table.lookup("", "v1", "endpoints"), namespace, name) or {}
        for subset in endpoints.get("subsets") or []:
            for ep_port in subset.get("ports") or []:
                if ep_port.get("name", "") == port.get("name", "") or len(subset.get("ports") or []) == 1:
                    addresses = subset.get("addresses") or []
                    if addresses:
                        self.api.proxy_turn += 1
                        address = addresses[self.api.proxy_turn % len(addresses)]
                        return address["ip"], int(ep_port["port"])
        raise ApiError(503, f'no endpoints available for service "{name}"', reason="ServiceUnavailable")

    def _pod_target(self, namespace: str, ref: str) -> Tuple[str, int]:
        name, _sep, port_ref = ref.partition(":")
        pod = self.registry.get(self.table.lookup("", "v1", "pods"), namespace, name)
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            raise ApiError(503, f"pod {name} has no IP address yet", reason="ServiceUnavailable")
        port = None
        for container in (pod.get("spec") or {}).get("containers") or []:
            for p in container.get("ports") or []:
                if not port_ref or p.get("name") == port_ref or str(p.get("containerPort")) == port_ref:
                    port = int(p["containerPort"])
                    break
            if port:
                break
        if port is None:
            port = int(port_ref) if port_ref.isdigit() else 80
        return ip, port

    async def _proxy(self, request: web.Request, res: Resource, route: Route) -> web.StreamResponse:
        if res.kind == "Service":
            ip, port = self._service_target(route.namespace or "", route.name or "")
        elif res.kind == "Pod":
            ip, port = self._pod_target(route.namespace or "", route.name or "")
        else:
            raise method_not_allowed()
        backend = self.api.pod_network.get((ip, port))
        if backend is None:
            raise ApiError(503, f"error trying to reach service: dial tcp {ip}:{port}: connect: connection refused",
                           reason="ServiceUnavailable")
        url = backend.rstrip("/") + "/" + route.tail
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        session = await self._session()
        try:
            async with session.request(request.method, url, params=request.query, headers=headers,
                                       data=await request.read() if request.can_read_body else None,
                                       allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        response.headers[key] = value
                return await _relay(request, response, upstream)
        except aiohttp.ClientError as err:
            raise ApiError(503, f"error trying to reach service: {err}", reason="ServiceUnavailable")


async def _relay(request: web.Request, response: web.StreamResponse,
                 upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    """Stream an upstream body (kubelet logs, a proxied backend) to the client as it arrives."""
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client hung up: stopped following logs or interrupted a stream
    return response


def _kubelet_address(node: Optional[Dict[str, Any]]) -> Optional[str]:
    if not node:
        return None
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("Hostname")
    if not port or not host:
        return None
    return f"{host}:{port}"


__all__ = ["KubeHTTP", "parse_route", "clone"]
