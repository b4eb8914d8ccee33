"""kube-controller-manager's Endpoints controller: the pods a Service selects, ready ones under
`addresses`, the others under `notReadyAddresses`; named target ports resolved per pod."""

from __future__ import annotations

from typing import Dict, List

from tests.harness.fake_kube.selectors import match_label_selector

from .client import api_path
from .context import Context
from .objects import Obj, key_of, pod_ready, terminating

COMPONENT = "endpoint-controller"


class EndpointsController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def sync(self, svc: Obj) -> None:
        spec = svc.get("spec") or {}
        selector = spec.get("selector")
        if not selector or spec.get("type") == "ExternalName":
            return
        namespace, name = key_of(svc)
        ready, not_ready = [], []
        ports_by_pod: Dict[str, List[Obj]] = {}
        pods = sorted((p for k, p in self.ctx.cache("pods").items() if k[0] == namespace
                       and match_label_selector({"matchLabels": selector}, p["metadata"].get("labels"))
                       and not terminating(p) and (p.get("status") or {}).get("podIP")),
                      key=lambda p: p["metadata"]["name"])
        for pod in pods:
            address = {"ip": pod["status"]["podIP"], "nodeName": pod["spec"].get("nodeName", ""),
                       "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod["metadata"]["name"],
                                     "uid": pod["metadata"]["uid"]}}
            (ready if pod_ready(pod) else not_ready).append(address)
            ports = []
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                if isinstance(target, str) and not target.isdigit():
                    target = next((p.get("containerPort") for c in pod["spec"].get("containers") or []
                                   for p in c.get("ports") or [] if p.get("name") == target), None)
                if target is None:
                    continue
                entry = {"port": int(target), "protocol": port.get("protocol", "TCP")}
                if port.get("name"):
                    entry["name"] = port["name"]
                ports.append(entry)
            ports_by_pod[pod["metadata"]["name"]] = ports
        subsets = []
        if ready or not_ready:
            subset: Obj = {"ports": next(iter(ports_by_pod.values()), [])}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
        desired: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                        "metadata": {"name": name, "namespace": namespace,
                                     "labels": dict(svc["metadata"].get("labels") or {})}}
        if subsets:
            desired["subsets"] = subsets
        current = self.ctx.cache("endpoints").get((namespace, name))
        if current is None:
            await self.ctx.client.create("v1", "endpoints", namespace, desired, COMPONENT)
            return
        if current.get("subsets") != desired.get("subsets") or \
                (current["metadata"].get("labels") or {}) != desired["metadata"]["labels"]:
            desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.ctx.client.request("PUT", api_path("v1", "endpoints", namespace, name), desired,
                                          params={"fieldManager": COMPONENT})
