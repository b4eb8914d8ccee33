"""The simulator's HTTP client to the API server, and an event recorder that aggregates repeats (count,
lastTimestamp) as client-go's event correlator does."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, Callable, Dict, Optional, Tuple

import aiohttp

from .objects import Obj, key_of, now_iso

MERGE = "application/merge-patch+json"
CONTROLLER = "kube-controller-manager"
USER_AGENT = "kubelet-sim/v1.32.5+k3s1"


class RequestFailed(RuntimeError):
    """An API request the simulator made was refused (status and Status body attached)."""

    def __init__(self, message: str, status: int, body: Obj) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def reason_message(self) -> str:
        return str(self.body.get("message", self))


def api_path(api_version: str, plural: str, namespace: Optional[str], name: Optional[str] = None,
             sub: Optional[str] = None) -> str:
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    if sub:
        base += f"/{sub}"
    return base


class ApiClient:
    """JSON over HTTP(S) with a bearer token. Every object the server returns is handed to `on_write`
    (write-through: the simulator's own writes are in its cache before the watch event arrives)."""

    def __init__(self, url: str, token: Optional[str], ssl: Any = None,
                 on_write: Optional[Callable[[Obj], None]] = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.ssl = ssl
        self.on_write = on_write
        self.session: Optional[aiohttp.ClientSession] = None

    async def open(self) -> None:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        connector = aiohttp.TCPConnector(ssl=self.ssl if self.ssl is not None else None, limit=0)
        self.session = aiohttp.ClientSession(headers=headers, connector=connector,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    @property
    def closed(self) -> bool:
        return self.session is None or self.session.closed

    async def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                      params: Optional[Dict[str, str]] = None, missing_ok: bool = True) -> Optional[Obj]:
        """The decoded answer; None for 404/409 when `missing_ok`; RequestFailed for other errors."""
        assert self.session is not None
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self.session.request(method, self.url + path, data=data, headers=headers,
                                        params=params) as resp:
            text = await resp.text()
            if resp.status in (404, 409) and missing_ok:
                return None
            if resp.status >= 400:
                try:
                    decoded = json.loads(text)
                except ValueError:
                    decoded = {"message": text}
                raise RequestFailed(f"{method} {path}: {resp.status} {text[:300]}", resp.status, decoded)
            result = json.loads(text) if text else None
        if self.on_write and isinstance(result, dict) and result.get("kind") not in (None, "Status") \
                and "metadata" in result:
            self.on_write(result)
        return result

    async def get(self, api_version: str, plural: str, namespace: Optional[str], name: str) -> Optional[Obj]:
        return await self.request("GET", api_path(api_version, plural, namespace, name))

    async def create(self, api_version: str, plural: str, namespace: Optional[str], body: Obj,
                     manager: str = CONTROLLER, missing_ok: bool = True) -> Optional[Obj]:
        return await self.request("POST", api_path(api_version, plural, namespace), body,
                                  params={"fieldManager": manager}, missing_ok=missing_ok)

    async def patch(self, api_version: str, plural: str, obj: Obj, body: Obj, sub: Optional[str] = None,
                    manager: str = CONTROLLER) -> Optional[Obj]:
        namespace, name = key_of(obj)
        return await self.request("PATCH", api_path(api_version, plural, namespace or None, name, sub), body,
                                  MERGE, params={"fieldManager": manager})

    async def put_status(self, api_version: str, plural: str, obj: Obj, status: Obj,
                         manager: str = CONTROLLER) -> Optional[Obj]:
        namespace, name = key_of(obj)
        body = dict(obj)
        body["status"] = status
        body["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        return await self.request("PUT", api_path(api_version, plural, namespace or None, name, "status"), body,
                                  params={"fieldManager": manager})

    async def delete(self, api_version: str, plural: str, obj: Obj, grace: Optional[int] = None,
                     policy: str = "Background", uid_precondition: bool = False) -> Optional[Obj]:
        namespace, name = key_of(obj)
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        if uid_precondition:
            body["preconditions"] = {"uid": obj["metadata"]["uid"]}
        return await self.request("DELETE", api_path(api_version, plural, namespace or None, name), body)


class EventRecorder:
    """Posts core/v1 Events in the background; the same (object, reason, message, source) again bumps the
    first event's count and lastTimestamp instead of creating another one."""

    def __init__(self, client: ApiClient, spawn: Callable[[Any], "asyncio.Task"]) -> None:
        self.client = client
        self.spawn = spawn
        self.stopped = False
        self._seen: Dict[Tuple[str, ...], Tuple[str, str, int, "asyncio.Task"]] = {}

    def __call__(self, involved: Obj, reason: str, message: str, type_: str = "Normal",
                 component: str = "kubelet", host: Optional[str] = None, field_path: Optional[str] = None) -> None:
        if self.stopped:
            return
        m = involved.get("metadata") or {}
        namespace = m.get("namespace") or "default"
        key = (m.get("uid", ""), reason, message, component, field_path or "", type_)
        stamp = now_iso()
        seen = self._seen.get(key)
        if seen is not None:
            name, ns, count, created = seen
            self._seen[key] = (name, ns, count + 1, created)
            self.spawn(self._bump(created, ns, name, count + 1, stamp))
            return
        ref = {"kind": involved.get("kind"), "namespace": m.get("namespace", ""), "name": m.get("name"),
               "uid": m.get("uid"), "apiVersion": involved.get("apiVersion"),
               "resourceVersion": m.get("resourceVersion")}
        if field_path:
            ref["fieldPath"] = field_path
        name = f"{m.get('name')}.{random.getrandbits(64):016x}"
        body = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": namespace},
                "involvedObject": ref, "reason": reason, "message": message, "type": type_,
                "source": {"component": component, **({"host": host} if host else {})},
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "eventTime": None,
                "reportingComponent": component, "reportingInstance": host or ""}
        created = self.spawn(self._post(namespace, body, component))
        self._seen[key] = (name, namespace, 1, created)

    async def _post(self, namespace: str, body: Obj, component: str) -> None:
        try:
            await self.client.create("v1", "events", namespace, body, component)
        except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError):
            pass

    async def _bump(self, created: "asyncio.Task", namespace: str, name: str, count: int, stamp: str) -> None:
        try:
            await asyncio.shield(created)
            await self.client.request("PATCH", api_path("v1", "events", namespace, name),
                                      {"count": count, "lastTimestamp": stamp}, MERGE)
        except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError, asyncio.CancelledError):
            pass

    def forget(self, uid: str) -> None:
        """Drop what was recorded about an object that is gone."""
        for key in [k for k in self._seen if k[0] == uid]:
            del self._seen[key]
