"""kube-controller-manager's Deployment controller: Deployment -> ReplicaSets (pod-template-hash), Recreate
and RollingUpdate, revisions, status and conditions, and the progress deadline: without progress for
`progressDeadlineSeconds` (default 600, simulated) a rollout gets `Progressing=False`,
reason `ProgressDeadlineExceeded`, as kubectl rollout status and kubernetes.core report it."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .context import Context
from .objects import (Obj, compact, condition, deep_copy, labels_of, now_iso, owner_ref, pod_active, pod_finished,
                      pod_ready, scaled_value, template_hash, terminating)

COMPONENT = "deployment-controller"
REVISION = "deployment.kubernetes.io/revision"


class DeploymentController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # deployment uid -> (real time of the last progress, the counts it was measured on)
        self._progress: Dict[str, Tuple[float, Tuple[int, ...]]] = {}

    async def sync(self, deploy: Obj) -> None:
        if terminating(deploy):
            return
        spec = deploy.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        pod_hash = template_hash(spec.get("template") or {})
        owned = self.ctx.owned("replicasets", deploy)
        new_rs = next((rs for rs in owned if labels_of(rs).get("pod-template-hash") == pod_hash), None)
        old = [rs for rs in owned if rs is not new_rs]
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        revision = max([int((rs["metadata"].get("annotations") or {}).get(REVISION, 0)) for rs in owned] + [0])
        if spec.get("paused"):
            await self._status(deploy, new_rs, owned, paused=True)
            return
        if new_rs is None:
            initial = 0 if (strategy == "Recreate" and any(self._rs_pods(rs) for rs in old)) else replicas
            if strategy == "RollingUpdate" and old:
                surge = scaled_value(((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", "25%"),
                                     replicas, True)
                current = sum(int((rs.get("spec") or {}).get("replicas", 0)) for rs in old)
                initial = max(0, min(replicas, replicas + surge - current))
            new_rs = await self._create_replicaset(deploy, pod_hash, initial, revision + 1)
            if new_rs is None:
                return
            self._progress.pop(deploy["metadata"]["uid"], None)
            self.ctx.events(deploy, "ScalingReplicaSet", f"Scaled up replica set {new_rs['metadata']['name']} "
                                                         f"from 0 to {initial}", component=COMPONENT)
            owned = owned + [new_rs]
        elif (new_rs["metadata"].get("annotations") or {}).get(REVISION) != str(revision) and old:
            await self.ctx.client.patch("apps/v1", "replicasets", new_rs, {"metadata": {"annotations": {
                REVISION: str(revision + 1)}}})
        if strategy == "Recreate":
            await self._recreate(deploy, new_rs, old, replicas)
        else:
            await self._rolling(deploy, new_rs, old, replicas)
        await self._status(deploy, new_rs, self.ctx.owned("replicasets", deploy))

    def _rs_pods(self, rs: Obj) -> List[Obj]:
        """Pods of a ReplicaSet that still exist and have not finished (terminating ones included)."""
        return [p for p in self.ctx.owned("pods", rs) if not pod_finished(p)]

    async def _create_replicaset(self, deploy: Obj, pod_hash: str, replicas: int, revision: int) -> Optional[Obj]:
        spec = deploy["spec"]
        template = deep_copy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = deep_copy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{deploy['metadata']['name']}-{pod_hash}",
                             "namespace": deploy["metadata"]["namespace"],
                             "labels": template["metadata"]["labels"],
                             "annotations": {REVISION: str(revision),
                                             "deployment.kubernetes.io/desired-replicas": str(spec.get("replicas", 1)),
                                             "deployment.kubernetes.io/max-replicas": str(spec.get("replicas", 1))},
                             "ownerReferences": [owner_ref(deploy, "Deployment", "apps/v1")]},
                "spec": {"replicas": replicas, "selector": selector, "template": template,
                         "minReadySeconds": spec.get("minReadySeconds", 0)}}
        created = await self.ctx.client.create("apps/v1", "replicasets", deploy["metadata"]["namespace"], body)
        if created is not None:
            await self.ctx.client.patch("apps/v1", "deployments", deploy,
                                        {"metadata": {"annotations": {REVISION: str(revision)}}})
        return created

    async def _scale(self, deploy: Obj, rs: Obj, replicas: int) -> None:
        current = int((rs.get("spec") or {}).get("replicas", 0))
        if current == replicas:
            return
        await self.ctx.client.patch("apps/v1", "replicasets", rs, {"spec": {"replicas": replicas}, "metadata": {
            "annotations": {"deployment.kubernetes.io/desired-replicas": str(deploy["spec"].get("replicas", 1))}}})
        verb = "up" if replicas > current else "down"
        self.ctx.events(deploy, "ScalingReplicaSet", f"Scaled {verb} replica set {rs['metadata']['name']} from "
                                                     f"{current} to {replicas}", component=COMPONENT)

    async def _recreate(self, deploy: Obj, new_rs: Obj, old: List[Obj], replicas: int) -> None:
        for rs in old:
            await self._scale(deploy, rs, 0)
        if any(self._rs_pods(rs) for rs in old):
            return  # Recreate: every old pod must be gone before a new one is created
        await self._scale(deploy, new_rs, replicas)

    async def _rolling(self, deploy: Obj, new_rs: Obj, old: List[Obj], replicas: int) -> None:
        rolling = ((deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {})
        surge = scaled_value(rolling.get("maxSurge", "25%"), replicas, True)
        unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), replicas, False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        if not old:
            await self._scale(deploy, new_rs, replicas)
            return
        total = sum(int((rs.get("spec") or {}).get("replicas", 0)) for rs in [new_rs] + old)
        new_count = int((new_rs.get("spec") or {}).get("replicas", 0))
        if new_count < replicas and total < replicas + surge:
            await self._scale(deploy, new_rs, min(replicas, new_count + replicas + surge - total))
        if new_count > replicas:
            await self._scale(deploy, new_rs, replicas)
        ready_total = sum(sum(1 for p in self.ctx.owned("pods", rs) if pod_active(p) and pod_ready(p))
                          for rs in [new_rs] + old)
        allowed = max(0, ready_total - (replicas - unavailable))
        for rs in sorted(old, key=lambda r: r["metadata"].get("creationTimestamp", "")):
            count = int((rs.get("spec") or {}).get("replicas", 0))
            if count == 0:
                continue
            ready = sum(1 for p in self.ctx.owned("pods", rs) if pod_active(p) and pod_ready(p))
            unhealthy = max(0, count - ready)
            reduce = min(count, unhealthy + allowed)
            allowed -= max(0, reduce - unhealthy)
            if reduce:
                await self._scale(deploy, rs, count - reduce)

    # ------------------------------------------------------------------ status and the progress deadline
    def _progressing(self, deploy: Obj, new_rs: Optional[Obj], counts: Tuple[int, ...], complete: bool,
                     paused: bool) -> Tuple[str, str, bool]:
        """(reason, message, status) of the Progressing condition."""
        uid = deploy["metadata"]["uid"]
        name = new_rs["metadata"]["name"] if new_rs else ""
        if complete:
            self._progress.pop(uid, None)
            return "NewReplicaSetAvailable", f'ReplicaSet "{name}" has successfully progressed.', True
        if paused:
            self._progress.pop(uid, None)
            return "DeploymentPaused", "Deployment is paused", False
        now = self.ctx.clock.now()
        last = self._progress.get(uid)
        if last is None or last[1] != counts:
            self._progress[uid] = (now, counts)
            last = self._progress[uid]
        deadline = (deploy.get("spec") or {}).get("progressDeadlineSeconds", 600)
        if deadline is not None:
            remaining = last[0] + self.ctx.clock.real(float(deadline)) - now
            if remaining <= 0:
                return "ProgressDeadlineExceeded", f'ReplicaSet "{name}" has timed out progressing.', False
            self.ctx.requeue(remaining + 0.001, key="progress/" + uid)
        return "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.', True

    async def _status(self, deploy: Obj, new_rs: Optional[Obj], owned: List[Obj], paused: bool = False) -> None:
        spec = deploy.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        rs_status = [(rs, rs.get("status") or {}) for rs in owned]
        total = sum(int(s.get("replicas", 0)) for _rs, s in rs_status)
        # as calculateStatus does: unavailable counts against the replicas the ReplicaSets *want*
        wanted = sum(int((rs.get("spec") or {}).get("replicas", 0)) for rs, _s in rs_status)
        ready = sum(int(s.get("readyReplicas", 0)) for _rs, s in rs_status)
        available = sum(int(s.get("availableReplicas", 0)) for _rs, s in rs_status)
        updated = int((new_rs.get("status") or {}).get("replicas", 0)) if new_rs else 0
        rolling = ((spec.get("strategy") or {}).get("rollingUpdate") or {})
        max_unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), replicas, False) \
            if (spec.get("strategy") or {}).get("type") != "Recreate" else 0
        previous = (deploy.get("status") or {}).get("conditions") or []
        available_ok = available >= replicas - max_unavailable
        conditions = [condition("Available", available_ok,
                                "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                                "Deployment has minimum availability." if available_ok else
                                "Deployment does not have minimum availability.", previous)]
        complete = new_rs is not None and updated == replicas and available == replicas and total == replicas
        old_pods = total - updated
        counts = (deploy["metadata"].get("generation", 1), updated, ready, available, -old_pods)
        reason, message, progressing = self._progressing(deploy, new_rs, counts, complete, paused)
        conditions.append(condition("Progressing", progressing, reason, message, previous))
        failure = next((c for c in ((new_rs or {}).get("status") or {}).get("conditions") or []
                        if c.get("type") == "ReplicaFailure" and c.get("status") == "True"), None)
        if failure:
            conditions.append(condition("ReplicaFailure", True, "FailedCreate", failure.get("message", ""), previous))
        for cond in conditions:
            old = next((c for c in previous if c.get("type") == cond["type"]), None)
            same = old is not None and all(old.get(k) == cond.get(k) for k in ("status", "reason", "message"))
            cond["lastUpdateTime"] = old.get("lastUpdateTime", now_iso()) if same else now_iso()
        status = compact({"observedGeneration": deploy["metadata"].get("generation", 1), "replicas": total,
                          "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
                          "unavailableReplicas": max(0, wanted - available), "conditions": conditions},
                         ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                          "unavailableReplicas"))
        if status != (deploy.get("status") or {}):
            await self.ctx.client.put_status("apps/v1", "deployments", deploy, status)

    def forget(self, uid: str) -> None:
        self._progress.pop(uid, None)
