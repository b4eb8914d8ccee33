"""Creating pods from a controller's template, as the ReplicaSet, StatefulSet and DaemonSet controllers do:
a refused create (admission: a missing ServiceAccount or RuntimeClass, validation, quota) becomes a
`FailedCreate` Warning event on the owner and a `ReplicaFailure` condition, and is retried with the
controller's back-off (5 ms doubling to 1000 s, simulated) instead of on every reconcile pass."""

from __future__ import annotations

from typing import Dict, Optional

from .client import CONTROLLER, RequestFailed, api_path
from .context import RETRY_BASE, RETRY_CAP, Context
from .objects import Obj, deep_copy, owner_ref


class PodCreator:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._failure: Dict[str, str] = {}  # owner uid -> last "Error creating: ..." message
        self._attempts: Dict[str, int] = {}
        self._not_before: Dict[str, float] = {}

    def failure(self, owner_uid: str) -> Optional[str]:
        return self._failure.get(owner_uid)

    def clear(self, owner_uid: str) -> None:
        self._failure.pop(owner_uid, None)
        self._attempts.pop(owner_uid, None)
        self._not_before.pop(owner_uid, None)

    def waiting(self, owner_uid: str) -> bool:
        """True while the owner's last failed create is in back-off."""
        return self.ctx.clock.now() < self._not_before.get(owner_uid, 0.0)

    async def create(self, owner: Obj, kind: str, template: Obj, generate_name: Optional[str] = None,
                     name: Optional[str] = None, extra_labels: Optional[Dict[str, str]] = None,
                     spec_overrides: Optional[Obj] = None) -> Optional[Obj]:
        uid = owner["metadata"]["uid"]
        if self.waiting(uid):
            return None
        template = deep_copy(template)
        tmeta = template.get("metadata") or {}
        pod_meta: Obj = {"namespace": owner["metadata"]["namespace"],
                         "labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
                         "ownerReferences": [owner_ref(owner, kind, "apps/v1")]}
        if tmeta.get("annotations"):
            pod_meta["annotations"] = tmeta["annotations"]
        if name:
            pod_meta["name"] = name
        else:
            pod_meta["generateName"] = generate_name
        spec = template.get("spec") or {}
        spec.update(spec_overrides or {})
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
        namespace = owner["metadata"]["namespace"]
        try:
            created = await self.ctx.client.request("POST", api_path("v1", "pods", namespace), body,
                                                    params={"fieldManager": CONTROLLER}, missing_ok=False)
        except RequestFailed as failed:
            if failed.status == 409 and name:
                return None  # already there (our cache lags): the next pass sees it
            message = f"Error creating: {failed.reason_message}"
            self._failure[uid] = message
            attempts = self._attempts.get(uid, 0)
            self._attempts[uid] = attempts + 1
            delay = max(0.001, self.ctx.clock.real(min(RETRY_BASE * 2 ** attempts, RETRY_CAP)))
            self._not_before[uid] = self.ctx.clock.now() + delay
            self.ctx.events(owner, "FailedCreate", message, "Warning", component=f"{kind.lower()}-controller")
            self.ctx.requeue(delay)
            return None
        self.clear(uid)
        return created
