"""PersistentVolumeClaims as on k3s: the `local-path` StorageClass (default, WaitForFirstConsumer) that a
k3s server installs, its provisioner (rancher.io/local-path: a hostPath PV on the chosen node, bound to
the claim), the retroactive default-class assignment, and the scheduler's volume checks:

- a claim that does not exist: `persistentvolumeclaim "x" not found` (pod Pending);
- a claim being deleted: `persistentvolumeclaim "x" is being deleted`;
- an unbound claim of an Immediate (or missing) class: `pod has unbound immediate PersistentVolumeClaims`;
- an unbound WaitForFirstConsumer claim: the scheduler picks the node, the provisioner binds it there;
- a bound claim whose PV is pinned to another node: `volume node affinity conflict`."""

from __future__ import annotations

from typing import List, Optional, Tuple

from .client import api_path
from .context import Context
from .objects import Obj, node_matches_term, terminating

COMPONENT = "persistentvolume-controller"
PROVISIONER = "rancher.io/local-path"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
LOCAL_PATH_CLASS = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "local-path", "annotations": {DEFAULT_CLASS: "true"}},
    "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}


def claim_names(pod: Obj) -> List[str]:
    return [v["persistentVolumeClaim"]["claimName"] for v in (pod.get("spec") or {}).get("volumes") or []
            if v.get("persistentVolumeClaim")]


class VolumeBinding:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._said: dict = {}  # claim uid -> the last event reason given (said once per state)

    def _once(self, claim: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        if self._said.get(claim["metadata"]["uid"]) != reason:
            self._said[claim["metadata"]["uid"]] = reason
            self.ctx.events(claim, reason, message, type_, component=COMPONENT)

    async def install_storage_class(self) -> None:
        await self.ctx.client.create("storage.k8s.io/v1", "storageclasses", None, LOCAL_PATH_CLASS, "k3s")

    def _class_of(self, claim: Obj) -> Optional[Obj]:
        name = (claim.get("spec") or {}).get("storageClassName")
        if name is None:
            return self.default_class()
        return self.ctx.cache("storageclasses").get(("", name))

    def default_class(self) -> Optional[Obj]:
        for sc in self.ctx.cache("storageclasses").values():
            if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true":
                return sc
        return None

    # ------------------------------------------------------------------ scheduler side
    def prefilter(self, pod: Obj) -> Optional[str]:
        """A reason no node can take the pod whatever the node (the message's prefix), or None."""
        namespace = pod["metadata"].get("namespace", "")
        for name in claim_names(pod):
            claim = self.ctx.cache("persistentvolumeclaims").get((namespace, name))
            if claim is None:
                return f'persistentvolumeclaim "{name}" not found'
            if terminating(claim):
                return f'persistentvolumeclaim "{name}" is being deleted'
        return None

    def node_misfit(self, pod: Obj, node: Obj) -> Optional[str]:
        namespace = pod["metadata"].get("namespace", "")
        for name in claim_names(pod):
            claim = self.ctx.cache("persistentvolumeclaims").get((namespace, name)) or {}
            volume = (claim.get("spec") or {}).get("volumeName")
            if volume:
                pv = self.ctx.cache("persistentvolumes").get(("", volume))
                terms = ((((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}) \
                    .get("nodeSelectorTerms") or []
                if terms and not any(node_matches_term(t, node) for t in terms):
                    return "node(s) had volume node affinity conflict"
                continue
            sc = self._class_of(claim)
            if sc is None or sc.get("volumeBindingMode", "Immediate") != "WaitForFirstConsumer":
                return "pod has unbound immediate PersistentVolumeClaims"
        return None

    async def select_node(self, pod: Obj, node_name: str) -> None:
        """At bind time: mark the pod's unbound WaitForFirstConsumer claims with the chosen node."""
        namespace = pod["metadata"].get("namespace", "")
        for name in claim_names(pod):
            claim = self.ctx.cache("persistentvolumeclaims").get((namespace, name))
            if claim and not (claim.get("spec") or {}).get("volumeName") and \
                    (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE) != node_name:
                await self.ctx.client.patch("v1", "persistentvolumeclaims", claim, {"metadata": {"annotations": {
                    SELECTED_NODE: node_name}}}, manager="kube-scheduler")

    # ------------------------------------------------------------------ provisioner side
    async def sync(self, claim: Obj) -> None:
        spec = claim.get("spec") or {}
        if spec.get("volumeName") or terminating(claim):
            return
        if spec.get("storageClassName") is None:
            default = self.default_class()
            if default is not None:  # retroactive default StorageClass assignment
                await self.ctx.client.patch("v1", "persistentvolumeclaims", claim, {"spec": {
                    "storageClassName": default["metadata"]["name"]}}, manager=COMPONENT)
            return
        sc = self._class_of(claim)
        if sc is None:
            self._once(claim, "ProvisioningFailed", f'storageclass.storage.k8s.io "{spec["storageClassName"]}" '
                                                    "not found", "Warning")
            return
        if sc.get("provisioner") != PROVISIONER:
            return  # nobody provisions it: it stays Pending, as on a cluster without that provisioner
        node = (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE)
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not node:
            self._once(claim, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
            return
        if not node:
            nodes = sorted(self.ctx.cache("nodes"))
            if not nodes:
                return
            node = nodes[0][1]
        await self._provision(claim, sc, node)

    async def _provision(self, claim: Obj, sc: Obj, node: str) -> None:
        uid = claim["metadata"]["uid"]
        namespace, name = claim["metadata"]["namespace"], claim["metadata"]["name"]
        pv_name = f"pvc-{uid}"
        spec = claim.get("spec") or {}
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        pv = {"apiVersion": "v1", "kind": "PersistentVolume",
              "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER,
                                                            "local.path.provisioner/selected-node": node}},
              "spec": {"capacity": {"storage": size}, "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                       "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                       "storageClassName": sc["metadata"]["name"], "volumeMode": "Filesystem",
                       "hostPath": {"path": f"/var/lib/rancher/k3s/storage/{pv_name}_{namespace}_{name}",
                                    "type": "DirectoryOrCreate"},
                       "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace,
                                    "name": name, "uid": uid},
                       "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                           {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}
        self.ctx.events(claim, "Provisioning", f'External provisioner is provisioning volume for claim '
                                               f'"{namespace}/{name}"', component=f"{PROVISIONER}_local-path")
        created = await self.ctx.client.create("v1", "persistentvolumes", None, pv, PROVISIONER)
        if created is not None:
            created["status"] = {"phase": "Bound"}
            await self.ctx.client.request("PUT", api_path("v1", "persistentvolumes", None, pv_name, "status"),
                                          created)
        bound = await self.ctx.client.patch("v1", "persistentvolumeclaims", claim, {
            "spec": {"volumeName": pv_name}, "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                                                          "pv.kubernetes.io/bound-by-controller":
                                                                              "yes"}}}, manager=COMPONENT)
        if bound is not None:
            status = {"phase": "Bound", "accessModes": pv["spec"]["accessModes"], "capacity": {"storage": size}}
            await self.ctx.client.patch("v1", "persistentvolumeclaims", bound, {"status": status}, "status",
                                        COMPONENT)
            self.ctx.events(claim, "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}",
                            component=f"{PROVISIONER}_local-path")

    @staticmethod
    def bound(claim: Obj) -> Tuple[bool, str]:
        spec = claim.get("spec") or {}
        return bool(spec.get("volumeName")) and (claim.get("status") or {}).get("phase") == "Bound", \
            spec.get("volumeName", "")
