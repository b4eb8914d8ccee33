# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install, update and remove one GPU node's router in the cluster (the ``baremetal.gpu.gpu_router`` module).

The objects are ``manifests.build()`` for the node's modes as the cluster stores them (ConfigMap
``gpu-mode-<node>``, written by the vllm role): its mode-bound Deployments name the Role's resources, its
standby modes add the read of its own Node. They are server-side applied with their own field manager; an
object is changed only when the server's object changed, so a second run changes nothing. Objects of an
earlier install that are no longer wanted (a renamed Service, the Node read after the last standby mode went)
are deleted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.baremetal.gpu.plugins.module_utils import kube_apply
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import access, modes
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router import manifests

FIELD_MANAGER = "baremetal-gpu-router"
INSTANCE_LABEL = "app.kubernetes.io/instance"
RBAC = manifests.RBAC


class InstallError(Exception):
    """The router cannot be installed as asked; the message says why and what to do."""


def node_image(kube, namespace, book, recorded):
    """An image the node already has: the model server image of its recorded (else default) mode's workloads,
    else of any of its mode-bound Deployments."""
    order = []
    for mode in (recorded.get("mode"), book.get("default")):
        spec = book["modes"].get(mode or "") or {}
        order.extend(sorted(spec.get("workloads") or {}))
    order.extend(modes.bound_deployments(book))
    live = dict((d["metadata"]["name"], d) for d in kube.items("apps/v1", "Deployment", namespace))
    for name in order:
        containers = ((((live.get(name) or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
        if containers and containers[0].get("image"):
            return containers[0]["image"]
    raise InstallError("no image for the router: none of the mode-bound Deployments of node %s exists in namespace "
                       "%s; run the vllm role first, or name an image the node has (image)" % (book.get("node"), namespace))


def wanted(kube, node, namespace, image=None, settings=None, **options):
    """``(objects, facts)``: the router's objects for the node as the cluster describes it now."""
    try:
        book, recorded = access.read_modes(kube, namespace, node)
    except access.AccessError as exc:
        raise InstallError(str(exc))
    standby = bool(modes.standby_deployments(book))
    image = image or node_image(kube, namespace, book, recorded)
    objects = manifests.build(node, namespace, modes.bound_deployments(book), image, settings, standby=standby,
                              **options)
    return objects, {"image": image, "standby": standby, "modes": sorted(book["modes"]),
                     "default_mode": book.get("default"), "recorded_mode": recorded.get("mode")}


def _refuse_foreign_service(kube, node, namespace, service):
    live = kube.get("v1", "Service", service, namespace)
    labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    if live is not None and labels.get(INSTANCE_LABEL) != manifests.name_of(node):
        raise InstallError(
            "Service %s/%s exists and is not this router's (labels %s): taking it over would fight its owner (the "
            "vllm role applies the models' Service again on every run, and the switcher drains and health-checks "
            "the models through it). Give the catalog's workloads another Service name (their service.name), run "
            "the vllm role, then install the router under %s" % (namespace, service, labels, service))


def _stale(kube, node, namespace, objects, standby, check_mode):
    """Delete what an earlier install made that is not wanted now."""
    out = []
    own = manifests.name_of(node)
    keep = set(o["metadata"]["name"] for o in objects if o["kind"] == "Service")
    for service in kube.items("v1", "Service", namespace, label_selector="%s=%s" % (INSTANCE_LABEL, own)):
        name = service["metadata"]["name"]
        if name not in keep and kube.delete("v1", "Service", name, namespace, dry_run=check_mode) is not None:
            out.append({"kind": "Service", "namespace": namespace, "name": name, "action": "deleted"})
    if not standby:
        out.extend(access.remove_node_read(kube, own, check_mode))
    return out


def wait_ready(kube, namespace, name, timeout, clock=None):
    """Watch the router's Deployment until every replica runs the applied template and is ready."""
    import time

    from ansible_collections.baremetal.gpu.plugins.module_utils.kube_client import KubeError

    clock = clock or time.monotonic
    deadline = clock() + float(timeout)
    selector = "metadata.name=" + name

    def done(deployment):
        spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
        want = int(spec.get("replicas", 1))
        return (status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
                and status.get("updatedReplicas", 0) == want and status.get("readyReplicas", 0) == want
                and status.get("replicas", 0) == want)

    last = None
    while True:
        items, version = kube.list("apps/v1", "Deployment", namespace, field_selector=selector)
        if items:
            last = items[0]
            if done(last):
                return last
        if clock() >= deadline:
            raise InstallError("Deployment %s/%s is not ready after %.0f s (status %s): see `kubectl -n %s describe pods "
                               "-l %s=%s` and the pods' logs"
                               % (namespace, name, float(timeout), (last or {}).get("status"), namespace, INSTANCE_LABEL,
                                  name))
        try:
            for _type, obj in kube.watch("apps/v1", "Deployment", namespace, version, deadline,
                                         field_selector=selector, clock=clock):
                if done(obj):
                    return obj
        except KubeError as exc:
            if exc.status != 410:
                raise


def ensure(kube, node, namespace, image=None, settings=None, wait=True, wait_timeout=120.0, check_mode=False,
           **options):
    """Apply the router's objects; returns ``{"changed", "objects", "facts"}``."""
    objects, facts = wanted(kube, node, namespace, image, settings, **options)
    service = dict(manifests.DEFAULTS, **options)["service"]
    _refuse_foreign_service(kube, node, namespace, service)
    results, _applied = kube_apply.apply_all(kube, objects, field_manager=FIELD_MANAGER, check_mode=check_mode,
                                             default_namespace=namespace)
    out = [dict((k, r[k]) for k in ("kind", "namespace", "name", "action")) for r in results]
    out.extend(_stale(kube, node, namespace, objects, facts["standby"], check_mode))
    changed = any(r["changed"] for r in results) or any(o["action"] == "deleted" for o in out)
    if wait and not check_mode:
        wait_ready(kube, namespace, manifests.name_of(node), wait_timeout)
    return {"changed": changed, "objects": out, "facts": facts}


def remove(kube, node, namespace, check_mode=False):
    """Delete every object of the node's router; returns ``{"changed", "objects"}``."""
    own = manifests.name_of(node)
    out = []
    for api_version, kind in (("apps/v1", "Deployment"), ("policy/v1", "PodDisruptionBudget"), ("v1", "ConfigMap"),
                              (RBAC + "/v1", "RoleBinding"), (RBAC + "/v1", "Role"), ("v1", "ServiceAccount")):
        gone = kube.delete(api_version, kind, own, namespace, dry_run=check_mode) is None
        out.append({"kind": kind, "namespace": namespace, "name": own, "action": "absent" if gone else "deleted"})
    for service in kube.items("v1", "Service", namespace, label_selector="%s=%s" % (INSTANCE_LABEL, own)):
        name = service["metadata"]["name"]
        if kube.delete("v1", "Service", name, namespace, dry_run=check_mode) is not None:
            out.append({"kind": "Service", "namespace": namespace, "name": name, "action": "deleted"})
    out.extend(access.remove_node_read(kube, own, check_mode))
    return {"changed": any(o["action"] == "deleted" for o in out), "objects": out}
