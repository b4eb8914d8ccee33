# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A GPU node's own, least-privilege access to the cluster: what its switcher (the ``gpu_mode`` module and the
``gpu-mode`` CLI, both running on the node) may do there, and nothing more.

Per GPU node ``<node>``, in the namespace of its model servers:

* ServiceAccount ``gpu-mode-<node>``;
* Role ``gpu-mode-<node>`` with ``rules(node, deployments, standby)``: the node's ConfigMap and Lease by name,
  its mode-bound Deployments by name, and what a switch reads and does to pods (see ``rules``);
* RoleBinding ``gpu-mode-<node>`` (the Role to the ServiceAccount);
* only when some mode of the node keeps workloads in standby: ClusterRole and ClusterRoleBinding
  ``gpu-mode-<node>`` to read the node's own Node object (its ``nvidia.com/gpu`` slots and memory: the fit of
  a mode whose sleepers stay resident); Nodes are cluster-scoped, so a Role cannot grant it;
* Secret ``gpu-mode-<node>-token`` of type ``kubernetes.io/service-account-token``: the cluster's token
  controller puts a token into it that does not expire and stays valid while the Secret exists (deleting the
  Secret revokes it; ``rotate`` replaces it);

and a kubeconfig for the node built from that token, the cluster's CA (ConfigMap ``kube-root-ca.crt``, which
every namespace has) and the API server URL as the node reaches it. The kubeconfig is a credential: callers
never print it and write it only where root alone can read it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import time

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import modes, state

FIELD_MANAGER = "baremetal-gpu-mode-access"
TOKEN_TYPE = "kubernetes.io/service-account-token"
SERVICE_ACCOUNT_ANNOTATION = "kubernetes.io/service-account.name"
NODE_ANNOTATION = "baremetal.gpu/node"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
RBAC = "rbac.authorization.k8s.io"
# Not the vllm role's managed-by value: its prune (label app.kubernetes.io/managed-by=baremetal-gpu) must never
# take a node's credentials away.
LABELS = {"app.kubernetes.io/name": "gpu-mode", "app.kubernetes.io/component": "node-access",
          "app.kubernetes.io/part-of": "baremetal-gpu", "app.kubernetes.io/managed-by": FIELD_MANAGER}


class AccessError(Exception):
    """The node's access cannot be set up; the message says why and what to do."""


def names(node):
    """Names of a node's access objects: ServiceAccount, Role and RoleBinding share one, the token Secret has its own."""
    base = modes.configmap_name(node)
    return {"account": base, "role": base, "binding": base, "secret": base + "-token", "configmap": base,
            "lease": base}


def rules(node, deployments, standby=False):
    """The Role of GPU node ``node`` whose mode-bound Deployments are ``deployments``: exactly the requests a
    switch, ``gpu-mode status`` and ``gpu-mode list`` of that node make. ``standby``: some mode of the node
    keeps workloads asleep, so a switch also POSTs vLLM's sleep and wake-up endpoints through the pod proxy.

    RBAC can name objects (resourceNames) for get, update, patch and delete, but not for create, list and
    watch of a collection: those are granted namespace-wide where needed. An empty resourceNames would mean
    every object, so a node without mode-bound Deployments gets no Deployment rule by name at all.
    """
    own = names(node)
    out = [
        # the node's modes, the recorded mode and history (read; written by server-side apply = patch)
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [own["configmap"]],
         "verbs": ["get", "patch"]},
        # the per-node switch lock: read, take over, renew and release (PUT = update) ...
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [own["lease"]],
         "verbs": ["get", "update"]},
        # ... and its first creation, which RBAC cannot restrict to a name
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        # which mode-bound Deployments exist, their replicas and readiness (one list of the namespace)
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
        # pods: the outgoing ones, watched until gone; the new ones, watched until Ready; the drain takes
        # outgoing pods out of their Service by removing a label (patch); a rollback kills the failed target's
        # pods at once (delete with grace 0)
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch", "delete"]},
        # vLLM's /metrics through the pod proxy (drain), /health and /v1/models through the Service proxy
        {"apiGroups": [""], "resources": ["pods/proxy", "services/proxy"], "verbs": ["get"]},
        # a Service's selector: which pod labels put a pod behind it
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]},
        # why a target failed to start: its pod's events and last log lines
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    if standby:
        # hot standby: POST /sleep, /wake_up and /collective_rpc to the sleepers' engines through the pod proxy
        # (create); pods are named by their ReplicaSet, so RBAC cannot name them
        out.append({"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["create"]})
    bound = sorted(set(deployments or []))
    if bound:
        # scaling the node's own mode-bound Deployments (server-side apply of spec.replicas = patch)
        out.insert(4, {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": bound,
                       "verbs": ["get", "patch"]})
    return out


def _meta(name, namespace, node):
    return {"name": name, "namespace": namespace, "labels": dict(LABELS), "annotations": {NODE_ANNOTATION: node}}


def node_read_manifests(node, namespace, account=None, labels=None):
    """ClusterRole and ClusterRoleBinding that let a ServiceAccount read the node's own Node, nothing else: the
    node's switcher (``gpu-mode-<node>``) by default, or ``account`` (another switcher of that node, such as its
    router), whose name the two objects then take."""
    name = account or names(node)["role"]
    meta = {"name": name, "labels": dict(labels or LABELS), "annotations": {NODE_ANNOTATION: node}}
    return [
        {"apiVersion": RBAC + "/v1", "kind": "ClusterRole", "metadata": dict(meta),
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "resourceNames": [node], "verbs": ["get"]}]},
        {"apiVersion": RBAC + "/v1", "kind": "ClusterRoleBinding", "metadata": dict(meta),
         "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]


def manifests(node, namespace, deployments, standby=False):
    """ServiceAccount, Role, RoleBinding and token Secret of ``node`` (as applied; the token controller fills the
    Secret's data), and with ``standby`` the read of its own Node (``node_read_manifests``)."""
    own = names(node)
    return (node_read_manifests(node, namespace) if standby else []) + [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(own["account"], namespace, node),
         "automountServiceAccountToken": False},
        {"apiVersion": RBAC + "/v1", "kind": "Role", "metadata": _meta(own["role"], namespace, node),
         "rules": rules(node, deployments, standby)},
        {"apiVersion": RBAC + "/v1", "kind": "RoleBinding", "metadata": _meta(own["binding"], namespace, node),
         "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": own["role"]},
         "subjects": [{"kind": "ServiceAccount", "name": own["account"], "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
         "metadata": dict(_meta(own["secret"], namespace, node),
                          annotations={NODE_ANNOTATION: node, SERVICE_ACCOUNT_ANNOTATION: own["account"]})},
    ]


def _remove_node_read(kube, node, check_mode):
    return remove_node_read(kube, names(node)["role"], check_mode)


def remove_node_read(kube, name, check_mode):
    """Delete the ClusterRole and ClusterRoleBinding ``name`` (``node_read_manifests``) where they exist:
    ``[{kind, namespace, name, action: deleted}]`` (nothing for the ones that were not there)."""
    out = []
    for kind in ("ClusterRoleBinding", "ClusterRole"):
        if kube.delete(RBAC + "/v1", kind, name, None, dry_run=check_mode) is not None:
            out.append({"kind": kind, "namespace": None, "name": name, "action": "deleted"})
    return out


def read_modes(kube, namespace, node):
    """The node's mode book and recorded state, from its ConfigMap (the vllm role writes it)."""
    configmap = kube.get("v1", "ConfigMap", modes.configmap_name(node), namespace)
    if configmap is None:
        raise AccessError("ConfigMap %s/%s does not exist: the vllm role (site.yml) writes each GPU node's modes "
                          "there; run it first, with gpu_modes set for %s (host_vars or group_vars of gpu_nodes)"
                          % (namespace, modes.configmap_name(node), node))
    try:
        book = modes.book_from_configmap(configmap)
    except modes.ModeError as exc:
        raise AccessError(str(exc))
    return book, state.read(configmap)


def token_of(secret):
    """The token the token controller put into a Secret, or None."""
    value = ((secret or {}).get("data") or {}).get("token")
    if not value:
        return None
    return base64.b64decode(value).decode("utf-8")


def wait_token(kube, namespace, name, timeout, clock=time.monotonic):
    """Watch the token Secret until the token controller has filled it; returns the Secret."""
    from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError

    deadline = clock() + float(timeout)
    selector = "metadata.name=%s" % name
    while True:
        items, rv = kube.list("v1", "Secret", namespace, field_selector=selector)
        if items and token_of(items[0]):
            return items[0]
        if clock() >= deadline:
            raise AccessError("Secret %s/%s got no token within %.0f s: is kube-controller-manager (its token "
                              "controller) running?" % (namespace, name, float(timeout)))
        try:
            for _type, obj in kube.watch("v1", "Secret", namespace, rv, deadline, field_selector=selector,
                                         clock=clock):
                if token_of(obj):
                    return obj
        except KubeError as exc:
            if exc.status != 410:
                raise


def cluster_ca(kube, namespace, secret=None, ca_pem=None):
    """PEM of the CA the node must trust: given, else the cluster's (ConfigMap kube-root-ca.crt), else the
    token Secret's ca.crt."""
    if ca_pem:
        return ca_pem
    root = kube.get("v1", "ConfigMap", ROOT_CA_CONFIGMAP, namespace)
    pem = ((root or {}).get("data") or {}).get("ca.crt")
    if pem:
        return pem
    value = ((secret or {}).get("data") or {}).get("ca.crt")
    if value:
        return base64.b64decode(value).decode("utf-8")
    raise AccessError("no cluster CA: neither ConfigMap %s/%s nor the token Secret has ca.crt; give the CA "
                      "the node should trust explicitly" % (namespace, ROOT_CA_CONFIGMAP))


def kubeconfig(server, ca_pem, token, node, namespace):
    """The node's kubeconfig (JSON, which every kubeconfig reader accepts), byte-for-byte stable for the same
    inputs so that writing it again changes nothing."""
    user = names(node)["account"]
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "baremetal-gpu", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem.encode("utf-8")).decode("ascii")}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "baremetal-gpu", "user": user, "namespace": namespace}}],
        "current-context": user,
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def ensure(kube, node, namespace, server, ca_pem=None, rotate=False, token_timeout=60.0, check_mode=False):
    """Create or update the node's access objects; returns ``{"changed", "objects", "rules", "book", "recorded",
    "kubeconfig"}`` (kubeconfig None in check mode while the token does not exist yet)."""
    from ansible_collections.baremetal.gpu.plugins.module_utils import kube_apply

    book, recorded = read_modes(kube, namespace, node)
    bound = modes.bound_deployments(book)
    sleepers = bool(modes.standby_deployments(book))
    wanted = manifests(node, namespace, bound, sleepers)
    own = names(node)
    rotated = False
    if rotate:
        rotated = kube.delete("v1", "Secret", own["secret"], namespace, dry_run=check_mode) is not None
    results, _applied = kube_apply.apply_all(kube, wanted, field_manager=FIELD_MANAGER, check_mode=check_mode,
                                             default_namespace=namespace)
    if rotated:
        for result in results:
            if result["kind"] == "Secret":
                result.update(action="rotated", changed=True)
    objects = [dict((k, r[k]) for k in ("kind", "namespace", "name", "action")) for r in results]
    if not sleepers:  # no standby (any more): no read of the Node either
        objects.extend(_remove_node_read(kube, node, check_mode))
    changed = any(r["changed"] for r in results) or any(o["action"] == "deleted" for o in objects)
    config = None
    existing = kube.get("v1", "Secret", own["secret"], namespace)
    if not check_mode or (existing is not None and token_of(existing) and not rotate):
        secret = wait_token(kube, namespace, own["secret"], token_timeout)
        config = kubeconfig(server, cluster_ca(kube, namespace, secret, ca_pem), token_of(secret), node, namespace)
    return {"changed": changed, "objects": objects, "rules": rules(node, bound, sleepers), "book": book,
            "recorded": recorded, "kubeconfig": config}


def remove(kube, node, namespace, check_mode=False):
    """Delete the node's access objects (the token stops working at once); returns ``{"changed", "objects"}``."""
    own = names(node)
    out = _remove_node_read(kube, node, check_mode)
    for api_version, kind, name in ((RBAC + "/v1", "RoleBinding", own["binding"]), (RBAC + "/v1", "Role", own["role"]),
                                    ("v1", "Secret", own["secret"]), ("v1", "ServiceAccount", own["account"])):
        gone = kube.delete(api_version, kind, name, namespace, dry_run=check_mode) is None
        out.append({"kind": kind, "namespace": namespace, "name": name, "action": "absent" if gone else "deleted"})
    return {"changed": any(o["action"] == "deleted" for o in out), "objects": out}
