"""kube-controller-manager's garbage collector, asynchronous as the real one (the API server only marks and
removes the owner; the collector acts on what its informers see afterwards):

- an object whose owners (ownerReferences, by uid) are all gone is deleted in the background; references
  to owners that are gone while others remain are removed;
- an owner being deleted in the foreground (finalizer `foregroundDeletion`) has its dependents deleted
  first; the finalizer is removed once no dependent with `blockOwnerDeletion` exists any more (a
  terminating pod still exists until the kubelet has stopped it);
- an owner being deleted with `orphan` (finalizer `orphan`) has the references to it removed from its
  dependents, then the finalizer.

Before deleting a dependent it checks the owner is really gone with a live GET, as the real collector does.
Like the real one it watches every kind the API server serves (discovery: its resource table), so owners
and dependents of any kind (Jobs, Ingresses, PodDisruptionBudgets...) are collected and finalized."""

from __future__ import annotations

from typing import Dict, List, Tuple

from tests.harness.fake_kube.resources import ResourceTable

from .client import api_path
from .context import Context
from .informers import WATCHED
from .objects import Obj, terminating, uid_of

COMPONENT = "garbage-collector-controller"
NOT_COLLECTED = ("nodes", "events")  # caches the collector leaves alone (a node is never a dependent here)
IGNORED_KINDS = ("Event", "Lease")  # kinds it does not watch: high churn, never owners in practice


def extra_informers() -> Dict[str, Tuple[str, str, str]]:
    """The kinds the API serves beyond the simulator's own informers: name -> (path, kind, apiVersion)."""
    watched = {kind for _path, kind in WATCHED.values()}
    out = {}
    for res in ResourceTable().resources:
        if res.virtual or res.kind in watched or res.kind in IGNORED_KINDS or "watch" not in res.verbs:
            continue
        base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
        out[f"gc:{res.group}/{res.plural}"] = (f"{base}/{res.plural}", res.kind, res.api_version)
    return out


LIVE_RECHECK = 2.0  # real seconds before an owner found alive by a live GET is looked up again


class GarbageCollector:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.mapper = ResourceTable()
        self._seen_alive: Dict[str, float] = {}  # owner uid -> when a live GET last found it

    def _objects(self) -> List[Tuple[str, Obj]]:
        return [(name, obj) for name in self.ctx.informers.cache if name not in NOT_COLLECTED
                for obj in list(self.ctx.cache(name).values())]

    def _where(self, obj: Obj) -> Tuple[str, str]:
        """(apiVersion, plural) of an object of any kind."""
        res = self.mapper.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if res is None:
            raise ValueError(f"the API serves no {obj.get('apiVersion')} {obj.get('kind')}")
        return res.api_version, res.plural

    async def sync(self) -> None:
        objects = self._objects()
        by_uid: Dict[str, Obj] = {uid_of(o): o for _n, o in objects}
        dependents: Dict[str, List[Obj]] = {}
        for _name, obj in objects:
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents.setdefault(ref.get("uid", ""), []).append(obj)
        for _name, obj in objects:
            finalizers = obj["metadata"].get("finalizers") or []
            if terminating(obj) and "foregroundDeletion" in finalizers:
                await self.ctx.guard("gc foreground", obj, self._foreground(obj, dependents.get(uid_of(obj), [])),
                                     COMPONENT)
            if terminating(obj) and "orphan" in finalizers:
                await self.ctx.guard("gc orphan", obj, self._orphan(obj, dependents.get(uid_of(obj), [])), COMPONENT)
        for _name, obj in objects:
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not terminating(obj):
                await self.ctx.guard("gc", obj, self._dangling(obj, refs, by_uid), COMPONENT)

    async def _remove_finalizer(self, obj: Obj, finalizer: str) -> None:
        rest = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        body = {"metadata": {"finalizers": rest or None, "resourceVersion": obj["metadata"]["resourceVersion"]}}
        await self.ctx.client.patch(*self._where(obj), obj, body, manager=COMPONENT)

    async def _foreground(self, owner: Obj, deps: List[Obj]) -> None:
        uid = uid_of(owner)
        blocking = 0
        for dep in deps:
            ref = next(r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") == uid)
            if ref.get("blockOwnerDeletion"):
                blocking += 1
            if not terminating(dep):
                await self.ctx.client.delete(*self._where(dep), dep,
                                             policy="Foreground" if ref.get("blockOwnerDeletion") else "Background")
        if blocking == 0:
            await self._remove_finalizer(owner, "foregroundDeletion")

    async def _orphan(self, owner: Obj, deps: List[Obj]) -> None:
        uid = uid_of(owner)
        for dep in deps:
            refs = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            await self.ctx.client.patch(*self._where(dep), dep, {"metadata": {"ownerReferences": refs or None}},
                                        manager=COMPONENT)
        await self._remove_finalizer(owner, "orphan")

    async def _owner_gone(self, dep: Obj, ref: Obj, by_uid: Dict[str, Obj]) -> bool:
        if ref.get("uid") in by_uid:
            return False
        checked = self._seen_alive.get(ref.get("uid", ""))
        if checked is not None and self.ctx.clock.now() - checked < LIVE_RECHECK:
            return False
        res = self.mapper.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if res is None:
            return False  # a kind nobody serves: leave it alone
        namespace = dep["metadata"].get("namespace") if res.namespaced else None
        live = await self.ctx.client.request("GET", api_path(res.api_version, res.plural, namespace, ref["name"]))
        if live is None or uid_of(live) != ref.get("uid"):
            return True
        self._seen_alive[ref.get("uid", "")] = self.ctx.clock.now()
        self.ctx.requeue(LIVE_RECHECK, key="gc-recheck")
        return False

    async def _dangling(self, dep: Obj, refs: List[Obj], by_uid: Dict[str, Obj]) -> None:
        gone = [r for r in refs if await self._owner_gone(dep, r, by_uid)]
        if not gone:
            return
        if len(gone) == len(refs):
            await self.ctx.client.delete(*self._where(dep), dep)
            return
        keep = [r for r in refs if r not in gone]
        await self.ctx.client.patch(*self._where(dep), dep, {"metadata": {"ownerReferences": keep}},
                                    manager=COMPONENT)
