"""Informers: list + watch per resource into a local cache (never polling), as client-go's shared informers.

The cache is level-triggered input for the controllers: every change sets `dirty`, and a reconcile pass
reads the whole cache. A relist after a broken watch (or 410 Gone) replaces the cache's content."""

from __future__ import annotations

import asyncio
import json
from typing import Callable, Dict, Optional, Tuple

import aiohttp

from .client import ApiClient
from .objects import Key, Obj, key_of, rv_of

# cache name -> (list/watch path, kind)
WATCHED: Dict[str, Tuple[str, str]] = {
    "deployments": ("/apis/apps/v1/deployments", "Deployment"),
    "replicasets": ("/apis/apps/v1/replicasets", "ReplicaSet"),
    "statefulsets": ("/apis/apps/v1/statefulsets", "StatefulSet"),
    "daemonsets": ("/apis/apps/v1/daemonsets", "DaemonSet"),
    "pods": ("/api/v1/pods", "Pod"),
    "nodes": ("/api/v1/nodes", "Node"),
    "services": ("/api/v1/services", "Service"),
    "endpoints": ("/api/v1/endpoints", "Endpoints"),
    "configmaps": ("/api/v1/configmaps", "ConfigMap"),
    "secrets": ("/api/v1/secrets", "Secret"),
    "persistentvolumeclaims": ("/api/v1/persistentvolumeclaims", "PersistentVolumeClaim"),
    "persistentvolumes": ("/api/v1/persistentvolumes", "PersistentVolume"),
    "runtimeclasses": ("/apis/node.k8s.io/v1/runtimeclasses", "RuntimeClass"),
    "storageclasses": ("/apis/storage.k8s.io/v1/storageclasses", "StorageClass"),
}
CACHE_OF_KIND = {kind: name for name, (_path, kind) in WATCHED.items()}
# apiVersion of each kind the simulator writes or garbage-collects
API_VERSION = {"Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
               "Pod": "v1", "Node": "v1", "Service": "v1", "Endpoints": "v1", "ConfigMap": "v1", "Secret": "v1",
               "PersistentVolumeClaim": "v1", "PersistentVolume": "v1", "RuntimeClass": "node.k8s.io/v1",
               "StorageClass": "storage.k8s.io/v1"}
PLURAL = {kind: name for name, (_path, kind) in WATCHED.items()}


class Informers:
    """`extra`: more caches, name -> (list/watch path, kind, apiVersion) (the garbage collector's)."""

    def __init__(self, client: ApiClient, on_change: Optional[Callable[[str, str, Obj], None]] = None,
                 extra: Optional[Dict[str, Tuple[str, str, str]]] = None) -> None:
        self.client = client
        self.watched: Dict[str, Tuple[str, str, str]] = {
            name: (path, kind, API_VERSION[kind]) for name, (path, kind) in WATCHED.items()}
        self.watched.update(extra or {})
        self.cache: Dict[str, Dict[Key, Obj]] = {name: {} for name in self.watched}
        self.dirty = asyncio.Event()
        self.on_change = on_change
        self.stopping = False
        self._tombstones: Dict[Tuple[str, Key], int] = {}

    def remember(self, obj: Obj) -> None:
        """Write-through of an object the simulator itself wrote."""
        cache_name = CACHE_OF_KIND.get(obj.get("kind", ""))
        if cache_name:
            self.apply(cache_name, "MODIFIED", obj)

    def forget(self, cache_name: str, obj: Obj) -> None:
        self.apply(cache_name, "DELETED", obj)

    def apply(self, cache_name: str, event_type: str, obj: Obj) -> None:
        key = key_of(obj)
        rv = rv_of(obj)
        cache = self.cache[cache_name]
        tomb = self._tombstones.get((cache_name, key))
        if event_type == "DELETED":
            current = cache.get(key)
            if current is not None and (current.get("metadata") or {}).get("uid") != \
                    (obj.get("metadata") or {}).get("uid") and rv_of(current) > rv:
                return
            cache.pop(key, None)
            self._tombstones[(cache_name, key)] = max(rv, tomb or 0)
        else:
            if tomb is not None and rv <= tomb:
                return
            current = cache.get(key)
            if current is not None and rv_of(current) >= rv:
                return
            cache[key] = obj
        if self.on_change is not None:
            self.on_change(cache_name, event_type, obj)
        self.dirty.set()

    async def run(self, name: str, first: "asyncio.Future[None]") -> None:
        path, kind, api_version = self.watched[name]
        session = self.client.session
        assert session is not None
        base = self.client.url + path
        while not self.stopping:
            try:
                async with session.get(base) as resp:
                    if resp.status >= 400:
                        raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
                    listing = await resp.json()
                rv = listing["metadata"]["resourceVersion"]
                fresh = {key_of(o): o for o in listing.get("items") or []}
                for key in list(self.cache[name]):
                    if key not in fresh:
                        self.apply(name, "DELETED", self.cache[name][key])
                for obj in fresh.values():
                    obj.setdefault("kind", kind)
                    obj.setdefault("apiVersion", api_version)
                    self.apply(name, "MODIFIED", obj)
                if not first.done():
                    first.set_result(None)
                params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true",
                          "timeoutSeconds": "300"}
                async with session.get(base, params=params) as resp:
                    async for line in resp.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break  # 410 Gone: relist
                        if event["type"] == "BOOKMARK":
                            continue
                        self.apply(name, event["type"], event["object"])
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, ValueError, KeyError, asyncio.TimeoutError):
                if self.stopping:
                    return
                await asyncio.sleep(0.05)
