"""kube-controller-manager's StatefulSet controller: ordinal pods (OrderedReady or Parallel), a claim per
volumeClaimTemplate and ordinal (bound later by the provisioner, as k3s's local-path does), rolling
updates from the highest ordinal, status."""

from __future__ import annotations

from .context import Context
from .objects import Obj, compact, deep_copy, ordinal_of, pod_ready, template_hash, terminating
from .pod_creation import PodCreator

COMPONENT = "statefulset-controller"


class StatefulSetController:
    def __init__(self, ctx: Context, creator: PodCreator) -> None:
        self.ctx = ctx
        self.creator = creator

    async def sync(self, sts: Obj) -> None:
        if terminating(sts):
            return
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        wanted = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        pods = {p["metadata"]["name"]: p for p in self.ctx.owned("pods", sts)}
        for ordinal in range(wanted):
            pod_name = f"{name}-{ordinal}"
            pod = pods.get(pod_name)
            if pod is None:
                await self._ensure_claims(sts, ordinal)
                labels = {"controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": pod_name,
                          "apps.kubernetes.io/pod-index": str(ordinal)}
                created = await self.creator.create(sts, "StatefulSet", spec.get("template") or {}, name=pod_name,
                                                    extra_labels=labels,
                                                    spec_overrides=self._claim_volumes(sts, ordinal, pod_name))
                if created:
                    self.ctx.events(sts, "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {name} "
                                                             "successful", component=COMPONENT)
                if ordered or created is None:
                    break
                continue
            if ordered and (not pod_ready(pod) or terminating(pod)):
                break
        for pod_name, pod in sorted(pods.items(), key=lambda kv: -ordinal_of(kv[0])):
            if ordinal_of(pod_name) >= wanted and not terminating(pod):
                await self.ctx.client.delete("v1", "pods", pod)
                self.ctx.events(sts, "SuccessfulDelete", f"delete Pod {pod_name} in StatefulSet {name} successful",
                                component=COMPONENT)
                if ordered:
                    break
        current = [p for p in self.ctx.owned("pods", sts) if ordinal_of(p["metadata"]["name"]) < wanted]
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate" and current and all(pod_ready(p) and not terminating(p) for p in current):
            stale = [p for p in current
                     if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != revision]
            if stale:
                victim = max(stale, key=lambda p: ordinal_of(p["metadata"]["name"]))
                await self.ctx.client.delete("v1", "pods", victim)
        await self._status(sts, revision)

    async def _status(self, sts: Obj, revision: str) -> None:
        pods_now = [p for p in self.ctx.owned("pods", sts) if not terminating(p)]
        updated = sum(1 for p in pods_now
                      if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == revision)
        ready = sum(1 for p in pods_now if pod_ready(p))
        previous = sts.get("status") or {}
        current_revision = revision if updated == len(pods_now) else previous.get("currentRevision", revision)
        status = compact({"observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(pods_now),
                          "readyReplicas": ready, "currentReplicas": updated if current_revision == revision else
                          len(pods_now) - updated, "updatedReplicas": updated, "currentRevision": current_revision,
                          "updateRevision": revision, "collisionCount": 0, "availableReplicas": ready},
                         ("readyReplicas", "currentReplicas", "updatedReplicas"))
        if status != previous:
            await self.ctx.client.put_status("apps/v1", "statefulsets", sts, status)

    @staticmethod
    def _claim_volumes(sts: Obj, ordinal: int, pod_name: str) -> Obj:
        templates = (sts.get("spec") or {}).get("volumeClaimTemplates") or []
        overrides: Obj = {"hostname": pod_name}
        if sts["spec"].get("serviceName"):
            overrides["subdomain"] = sts["spec"]["serviceName"]
        if not templates:
            return overrides
        volumes = list(((sts["spec"].get("template") or {}).get("spec") or {}).get("volumes") or [])
        for claim in templates:
            claim_name = claim["metadata"]["name"]
            volumes.append({"name": claim_name, "persistentVolumeClaim": {
                "claimName": f"{claim_name}-{sts['metadata']['name']}-{ordinal}"}})
        overrides["volumes"] = volumes
        return overrides

    async def _ensure_claims(self, sts: Obj, ordinal: int) -> None:
        namespace = sts["metadata"]["namespace"]
        for claim in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            claim_name = f"{claim['metadata']['name']}-{sts['metadata']['name']}-{ordinal}"
            if (namespace, claim_name) in self.ctx.cache("persistentvolumeclaims"):
                continue
            body = deep_copy(claim)
            body.update({"apiVersion": "v1", "kind": "PersistentVolumeClaim"})
            body.pop("status", None)
            body["metadata"] = {"name": claim_name, "namespace": namespace,
                                "labels": dict(((sts["spec"].get("selector") or {}).get("matchLabels") or {}))}
            await self.ctx.client.create("v1", "persistentvolumeclaims", namespace, body)
