# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply, diff, prune and wait for Kubernetes objects, over the official ``kubernetes`` client.

Used by ``baremetal.gpu.vllm_deploy`` (and ``vllm_health`` for the service proxy). The client gives
configuration, authentication and TLS (kubeconfig, in-cluster, token); requests go through its
``ApiClient`` as plain JSON so that objects stay plain dicts.

* Server-side apply with field manager ``baremetal-gpu``; an object is *changed* only when the server's
  object changed (before and after compared, ignoring status and bookkeeping metadata), never merely
  because it was sent. Check mode applies with ``dryRun=All``.
* Prune deletes objects carrying the collection's managed-by label that are no longer wanted.
* Rollout waits use one watch per kind and namespace (never sleep loops) and a monotonic deadline;
  readiness is a small predicate per kind in ``READY`` (after kubernetes.core's waiter, with the same
  precision: a rollout is done only once the controller has observed the new generation).
* On timeout the error names each pod that is not ready, its phase and container states, its last
  events and last log lines.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import math
import time

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover
    from urllib import quote

try:
    import kubernetes  # noqa: F401 pylint: disable=unused-import
    from kubernetes import config as kube_config
    from kubernetes.client import ApiClient, Configuration

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the modules with missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

FIELD_MANAGER = "baremetal-gpu"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_SELECTOR = MANAGED_BY_LABEL + "=" + FIELD_MANAGER
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

# Kinds prune may delete by default: not Namespaces (everything in them would go) nor
# PersistentVolumeClaims (the weights cache would go); pass them explicitly to prune them too.
PRUNE_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("networking.k8s.io/v1", "Ingress"),
    ("policy/v1", "PodDisruptionBudget"),
)

# Apply order when the manifests do not say: what others depend on first.
_KIND_ORDER = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "Secret", "ConfigMap",
               "PersistentVolumeClaim", "Service")

# Metadata the server maintains; ignored when deciding whether an object changed.
_VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid",
                      "selfLink")

# Options shared by every module that talks to a cluster (documented in doc_fragments/kube_auth.py).
AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", default=True),
    ca_cert=dict(type="path"),
)


class KubeError(Exception):
    """An API request failed; ``status`` is the HTTP status, ``body`` the Status object when there is one."""

    def __init__(self, status, message, body=None, reason=None):
        self.status = status
        self.body = body
        self.reason = reason or ((body or {}).get("reason") if isinstance(body, dict) else None)
        super(KubeError, self).__init__(message)


class RolloutTimeout(Exception):
    """Objects did not become ready before the deadline; ``report`` says which and what their pods show."""

    def __init__(self, message, report):
        self.report = report
        super(RolloutTimeout, self).__init__(message)


# --- pure helpers ---------------------------------------------------------------------------------

def ref(obj):
    """'Kind namespace/name' (or 'Kind name') for messages."""
    meta = obj.get("metadata") or {}
    where = "%s/%s" % (meta.get("namespace"), meta.get("name")) if meta.get("namespace") else meta.get("name")
    return "%s %s" % (obj.get("kind"), where)


def comparable(obj):
    """The object as its owner sees it: no status, no server bookkeeping."""
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _VOLATILE_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop("deployment.kubernetes.io/revision", None)
    if not annotations:
        meta.pop("annotations", None)
    return out


def object_changed(before, after):
    """Whether applying turned ``before`` (None: absent) into a different ``after``."""
    if before is None:
        return after is not None
    if after is None:
        return True
    # Content, not resourceVersion: a dry run answers with the old resourceVersion, and a status update
    # by a controller between the list and the apply bumps it without any change of ours.
    return comparable(before) != comparable(after)


def masked(obj):
    """A copy safe to print: Secret values replaced (keys kept, so a diff still shows which changed)."""
    if obj is None or obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for field in ("data", "stringData"):
        if isinstance(out.get(field), dict):
            out[field] = dict((k, "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER") for k in out[field])
    annotations = (out.get("metadata") or {}).get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    return out


def secret_values(manifests):
    """Every secret value (raw and base64) in ``manifests``, for AnsibleModule.no_log_values."""
    import base64

    values = set()
    for obj in manifests or []:
        if not isinstance(obj, dict) or obj.get("kind") != "Secret":
            continue
        for value in (obj.get("data") or {}).values():
            if value:
                values.add(str(value))
                try:
                    values.add(base64.b64decode(value).decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    pass
        for value in (obj.get("stringData") or {}).values():
            if value:
                values.add(str(value))
                values.add(base64.b64encode(str(value).encode("utf-8")).decode("ascii"))
    return sorted(v for v in values if len(v) >= 3)


def apply_order(manifests):
    """Stable order: Namespaces and what others depend on first, the rest as given."""
    def rank(item):
        index, obj = item
        kind = obj.get("kind")
        return (_KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER), index)
    return [item[1] for item in sorted(enumerate(manifests), key=rank)]


def _condition(obj, type_):
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def generation_observed(obj):
    """The controller has seen the object's latest spec (status.observedGeneration caught up)."""
    return (obj.get("status") or {}).get("observedGeneration", 0) >= (obj.get("metadata") or {}).get("generation", 0)


def deployment_ready(obj):
    """All replicas updated, available and nothing old left, for the generation the controller observed."""
    status = obj.get("status") or {}
    wanted = (obj.get("spec") or {}).get("replicas", 1)
    if not generation_observed(obj):
        return False
    return (status.get("updatedReplicas", 0) == wanted and status.get("replicas", 0) == wanted
            and status.get("availableReplicas", 0) == wanted and not status.get("unavailableReplicas"))


def deployment_failed(obj):
    """The controller gave up (progressDeadlineSeconds passed): a message, else None."""
    cond = _condition(obj, "Progressing")
    if cond and cond.get("status") == "False" and cond.get("reason") == "ProgressDeadlineExceeded":
        return cond.get("message") or "progress deadline exceeded"
    return None


def daemonset_ready(obj):
    status = obj.get("status") or {}
    if not generation_observed(obj):
        return False
    desired = status.get("desiredNumberScheduled", 0)
    return (status.get("updatedNumberScheduled", 0) == desired and status.get("numberReady", 0) == desired
            and status.get("numberAvailable", 0) == desired)


def statefulset_ready(obj):
    status = obj.get("status") or {}
    wanted = (obj.get("spec") or {}).get("replicas", 1)
    if not generation_observed(obj):
        return False
    return (status.get("readyReplicas", 0) == wanted and status.get("updatedReplicas", 0) == wanted
            and status.get("currentRevision") == status.get("updateRevision"))


def job_complete(obj):
    cond = _condition(obj, "Complete")
    return bool(cond and cond.get("status") == "True")


def job_failed(obj):
    cond = _condition(obj, "Failed")
    if cond and cond.get("status") == "True":
        return cond.get("message") or cond.get("reason") or "job failed"
    return None


def pod_ready(obj):
    cond = _condition(obj, "Ready")
    return bool(cond and cond.get("status") == "True")


READY = {
    "Deployment": deployment_ready,
    "DaemonSet": daemonset_ready,
    "StatefulSet": statefulset_ready,
    "Job": job_complete,
    "Pod": pod_ready,
}

FAILED = {
    "Deployment": deployment_failed,
    "Job": job_failed,
}


def ready_summary(obj):
    """'1/1 available, generation 3 observed' style summary of a workload's status."""
    status = obj.get("status") or {}
    kind = obj.get("kind")
    if kind == "Deployment":
        return "%s/%s available, %s updated, %s total, generation %s observed %s" % (
            status.get("availableReplicas", 0), (obj.get("spec") or {}).get("replicas", 1),
            status.get("updatedReplicas", 0), status.get("replicas", 0),
            (obj.get("metadata") or {}).get("generation"), status.get("observedGeneration"))
    if kind == "DaemonSet":
        return "%s/%s ready" % (status.get("numberReady", 0), status.get("desiredNumberScheduled", 0))
    return json.dumps(status, sort_keys=True)[:200]


def container_state_text(status):
    """'vllm: waiting CrashLoopBackOff (back-off 10s ...), 3 restarts, last exit 1 (Error)'."""
    state = status.get("state") or {}
    parts = []
    if "waiting" in state:
        waiting = state["waiting"] or {}
        parts.append("waiting %s%s" % (waiting.get("reason", ""),
                                       " (%s)" % waiting["message"] if waiting.get("message") else ""))
    elif "terminated" in state:
        term = state["terminated"] or {}
        parts.append("terminated %s exit %s" % (term.get("reason", ""), term.get("exitCode")))
    elif "running" in state:
        parts.append("running%s" % ("" if status.get("ready") else ", not ready"))
    if status.get("restartCount"):
        parts.append("%s restarts" % status["restartCount"])
    last = (status.get("lastState") or {}).get("terminated")
    if last:
        parts.append("last exit %s (%s)" % (last.get("exitCode"), last.get("reason", "")))
    return "%s: %s" % (status.get("name"), ", ".join(parts) or "no state yet")


def event_time(event):
    return (event.get("lastTimestamp") or event.get("eventTime") or
            (event.get("metadata") or {}).get("creationTimestamp") or "")


# --- the client -----------------------------------------------------------------------------------

class Kube:
    """A small JSON client over ``kubernetes.client.ApiClient`` with discovery by group/version."""

    def __init__(self, api_client, request_timeout=30):
        self.api = api_client
        self.request_timeout = request_timeout
        self._resources = {}
        self.requests = 0

    @classmethod
    def from_params(cls, params):
        """A client from module options (``AUTH_ARG_SPEC``); kubeconfig, else in-cluster config."""
        if not HAS_KUBERNETES:
            raise KubeError(0, "the kubernetes Python library is required: %s" % KUBERNETES_IMPORT_ERROR)
        import os

        host = params.get("host")
        kubeconfig = params.get("kubeconfig") or os.environ.get("K8S_AUTH_KUBECONFIG")
        if host and not kubeconfig:
            configuration = Configuration()
            configuration.host = host
            if params.get("api_key"):
                configuration.api_key = {"authorization": "Bearer " + params["api_key"]}
            configuration.verify_ssl = params.get("validate_certs", True)
            if params.get("ca_cert"):
                configuration.ssl_ca_cert = params["ca_cert"]
            return cls(ApiClient(configuration))
        try:
            if kubeconfig or os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")):
                configuration = Configuration()
                kube_config.load_kube_config(config_file=kubeconfig, context=params.get("context"),
                                             client_configuration=configuration)
            else:
                configuration = Configuration()
                kube_config.load_incluster_config(client_configuration=configuration)
        except Exception as exc:  # the loader raises ConfigException and plain errors alike
            raise KubeError(0, "cannot load the cluster configuration (%s): %s" % (kubeconfig or "default", exc))
        if host:
            configuration.host = host
        if params.get("api_key"):
            configuration.api_key = {"authorization": "Bearer " + params["api_key"]}
        if params.get("validate_certs") is False:
            configuration.verify_ssl = False
        if params.get("ca_cert"):
            configuration.ssl_ca_cert = params["ca_cert"]
        return cls(ApiClient(configuration))

    def close(self):
        try:
            self.api.close()
        except Exception:  # closing is best effort
            pass

    # ---- transport
    def raw(self, method, path, query=None, body=None, content_type=None, timeout=None):
        """One request; returns the client's RESTResponse (status, headers, read(); ``.response`` streams)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        query_params = [(k, v) for k, v in (query or []) if v is not None]
        method, url, headers, body, post = self.api.param_serialize(
            method, path, query_params=query_params, header_params=headers, body=body,
            auth_settings=["BearerToken"])
        self.requests += 1
        try:
            return self.api.call_api(method, url, header_params=headers, body=body, post_params=post,
                                     _request_timeout=timeout or self.request_timeout)
        except Exception as exc:  # urllib3 connection errors and the client's ApiException
            raise KubeError(0, "%s %s: %s" % (method, path, exc))

    def request(self, method, path, query=None, body=None, content_type=None, timeout=None):
        """One JSON request; returns the decoded body, raises KubeError on any non-2xx status."""
        resp = self.raw(method, path, query, body, content_type, timeout)
        data = resp.read()
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
        try:
            decoded = json.loads(text) if text else None
        except ValueError:
            decoded = None
        if resp.status >= 300:
            message = (decoded or {}).get("message") if isinstance(decoded, dict) else None
            raise KubeError(resp.status, "%s %s: %s %s" % (method, path, resp.status, message or text[:300]),
                            decoded if isinstance(decoded, dict) else None)
        return decoded if decoded is not None else text

    # ---- discovery
    def resource(self, api_version, kind):
        """(plural, namespaced) of a kind, from the server's discovery document for its group/version."""
        key = (api_version, kind)
        if key not in self._resources:
            path = "/api/v1" if api_version == "v1" else "/apis/" + api_version
            try:
                listing = self.request("GET", path)
            except KubeError as exc:
                if exc.status == 404:
                    raise KubeError(404, "the server does not serve %s (kind %s)" % (api_version, kind))
                raise
            for entry in listing.get("resources") or []:
                if "/" not in entry["name"]:
                    self._resources[(api_version, entry["kind"])] = (entry["name"], entry["namespaced"])
            if key not in self._resources:
                raise KubeError(404, "the server serves no kind %s in %s" % (kind, api_version))
        return self._resources[key]

    def path(self, api_version, kind, namespace=None, name=None, subresource=None):
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else "/apis/" + api_version
        if namespaced:
            if not namespace:
                raise KubeError(0, "%s %s needs a namespace" % (kind, name or ""))
            base += "/namespaces/" + quote(namespace, safe="")
        base += "/" + plural
        if name:
            base += "/" + quote(name, safe="")
        if subresource:
            base += "/" + subresource
        return base

    def namespaced(self, api_version, kind):
        return self.resource(api_version, kind)[1]

    # ---- verbs
    def get(self, api_version, kind, name, namespace=None):
        try:
            return self.request("GET", self.path(api_version, kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        """(items, resourceVersion) of a list call; items get apiVersion/kind (lists omit them)."""
        path = self.path(api_version, kind, namespace if self.namespaced(api_version, kind) else None)
        data = self.request("GET", path, [("labelSelector", label_selector), ("fieldSelector", field_selector)])
        items = data.get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items, (data.get("metadata") or {}).get("resourceVersion")

    def items(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        """The items of a list call."""
        return self.list(api_version, kind, namespace, label_selector, field_selector)[0]

    def apply(self, obj, field_manager=FIELD_MANAGER, force=True, dry_run=False):
        meta = obj.get("metadata") or {}
        path = self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        query = [("fieldManager", field_manager), ("force", "true" if force else None),
                 ("dryRun", "All" if dry_run else None)]
        return self.request("PATCH", path, query, body=obj, content_type=APPLY_CONTENT_TYPE)

    def delete(self, api_version, kind, name, namespace=None, dry_run=False):
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            return self.request("DELETE", self.path(api_version, kind, namespace, name),
                                [("dryRun", "All" if dry_run else None)], body=body)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def logs(self, namespace, pod, container=None, tail=20, previous=False):
        path = "/api/v1/namespaces/%s/pods/%s/log" % (quote(namespace, safe=""), quote(pod, safe=""))
        query = [("container", container), ("tailLines", str(tail)), ("previous", "true" if previous else None)]
        resp = self.raw("GET", path, query, timeout=10)
        text = resp.read()
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else (text or "")
        if resp.status >= 300:
            try:
                text = json.loads(text).get("message", text)
            except ValueError:
                pass
            raise KubeError(resp.status, text)
        return text.splitlines()[-tail:]

    def watch(self, api_version, kind, namespace, resource_version, deadline, label_selector=None,
              field_selector=None, clock=time.monotonic):
        """Yield (type, object) events from ``resource_version`` on until ``deadline`` (monotonic).

        Ends when the deadline passes or the server closes the watch; raises KubeError(410) when the
        resource version is too old (the caller lists again).
        """
        remaining = deadline - clock()
        if remaining <= 0:
            return
        path = self.path(api_version, kind, namespace if self.namespaced(api_version, kind) else None)
        query = [("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(max(1, int(math.ceil(remaining))))),
                 ("labelSelector", label_selector), ("fieldSelector", field_selector)]
        resp = self.raw("GET", path, query, timeout=(5, remaining + 1.0))
        if resp.status >= 300:
            data = resp.read()
            raise KubeError(resp.status, "watch %s: %s %s" % (path, resp.status, data[:300]))
        buffer = b""
        stream = resp.response
        try:
            for chunk in stream.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line.decode("utf-8"))
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise KubeError(status.get("code", 500), status.get("message", "watch error"), status)
                    yield event.get("type"), event.get("object") or {}
                if clock() >= deadline:
                    return
        except KubeError:
            raise
        except Exception as exc:  # read timeout at the deadline, connection closed
            if clock() < deadline and "timed out" not in str(exc).lower():
                raise KubeError(0, "watch %s: %s" % (path, exc))
        finally:
            # a watch cut short still has an open body: close the connection rather than pool it
            stream.close()


# --- apply / prune --------------------------------------------------------------------------------

def _key(obj):
    meta = obj.get("metadata") or {}
    return (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace") or "", meta.get("name"))


def validate_manifests(kube, manifests, default_namespace):
    """Check every manifest names apiVersion, kind, metadata.name; fill namespaces. Returns copies."""
    out = []
    seen = set()
    for index, obj in enumerate(manifests):
        if not isinstance(obj, dict):
            raise KubeError(0, "manifests[%d] is not a mapping" % index)
        missing = [k for k in ("apiVersion", "kind") if not obj.get(k)]
        if not (obj.get("metadata") or {}).get("name"):
            missing.append("metadata.name")
        if missing:
            raise KubeError(0, "manifests[%d] has no %s" % (index, ", ".join(missing)))
        obj = copy.deepcopy(obj)
        if kube.namespaced(obj["apiVersion"], obj["kind"]):
            obj["metadata"].setdefault("namespace", default_namespace)
        else:
            obj["metadata"].pop("namespace", None)
        if _key(obj) in seen:
            raise KubeError(0, "%s is listed twice" % ref(obj))
        seen.add(_key(obj))
        out.append(obj)
    return out


def _yaml_text(obj):
    return json.dumps(obj, indent=2, sort_keys=True) + "\n" if obj is not None else ""


def apply_all(kube, manifests, field_manager=FIELD_MANAGER, force=True, check_mode=False, want_diff=False,
              default_namespace="default", clock=time.monotonic):
    """Server-side apply every manifest; returns per-object results and the applied objects."""
    manifests = apply_order(validate_manifests(kube, manifests, default_namespace))
    live = {}
    listed = set()
    # One list per kind and namespace gives every "before" (and the namespaces that do not exist yet).
    for obj in manifests:
        group = (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace") or "")
        if group in listed:
            continue
        listed.add(group)
        try:
            items = kube.items(group[0], group[1], group[2] or None)
        except KubeError as exc:
            if exc.status != 404:  # some servers answer 404 for a list in a missing namespace
                raise
            items = []
        for item in items:
            live[_key(item)] = item
    new_namespaces = set(obj["metadata"]["name"] for obj in manifests
                         if obj["kind"] == "Namespace" and _key(obj) not in live)
    results = []
    applied = []
    for obj in manifests:
        started = clock()
        before = live.get(_key(obj))
        namespace = obj["metadata"].get("namespace")
        if check_mode and namespace and namespace in new_namespaces:
            after = obj  # the namespace does not exist yet: the server cannot dry-run into it
        else:
            after = kube.apply(obj, field_manager=field_manager, force=force, dry_run=check_mode)
        changed = object_changed(before, after)
        result = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "namespace": namespace or None,
            "name": obj["metadata"]["name"],
            "action": "created" if before is None else ("configured" if changed else "unchanged"),
            "changed": changed,
            "seconds": round(clock() - started, 4),
        }
        if isinstance(after, dict):
            result["resource_version"] = (after.get("metadata") or {}).get("resourceVersion")
            result["generation"] = (after.get("metadata") or {}).get("generation")
        if want_diff and changed:
            result["diff"] = {"before": _yaml_text(masked(comparable(before))),
                              "after": _yaml_text(masked(comparable(after))),
                              "before_header": ref(obj) + " (live)", "after_header": ref(obj) + " (applied)"}
        results.append(result)
        applied.append(after)
    return results, applied


def prune(kube, manifests, namespaces, kinds=PRUNE_KINDS, selector=MANAGED_BY_SELECTOR, check_mode=False,
          default_namespace="default"):
    """Delete objects matching ``selector`` in ``namespaces`` (kinds ``kinds``) that are not in ``manifests``."""
    wanted = set()
    for obj in manifests:
        meta = obj.get("metadata") or {}
        wanted.add((obj.get("kind"), meta.get("namespace") or default_namespace, meta.get("name")))
    pruned = []
    for api_version, kind in kinds:
        try:
            namespaced = kube.namespaced(api_version, kind)
        except KubeError:
            continue  # the server does not serve this kind: nothing of it to prune
        for namespace in (sorted(namespaces) if namespaced else [None]):
            try:
                items = kube.items(api_version, kind, namespace, label_selector=selector)
            except KubeError as exc:
                if exc.status == 404:  # the namespace does not exist (yet): nothing to prune there
                    continue
                raise
            for item in items:
                meta = item.get("metadata") or {}
                if meta.get("deletionTimestamp") or meta.get("ownerReferences"):
                    continue
                if (kind, meta.get("namespace") or default_namespace, meta.get("name")) in wanted:
                    continue
                kube.delete(api_version, kind, meta["name"], meta.get("namespace"), dry_run=check_mode)
                pruned.append({"apiVersion": api_version, "kind": kind, "namespace": meta.get("namespace"),
                               "name": meta["name"], "action": "pruned", "changed": True})
    return pruned


# --- rollout wait ---------------------------------------------------------------------------------

def wait_ready(kube, targets, timeout, clock=time.monotonic, log_lines=20, event_count=5):
    """Wait until every target ``(apiVersion, kind, namespace, name)`` is ready; returns per-target seconds.

    One watch per kind and namespace, from the resourceVersion of a list, so no change is missed; a
    monotonic deadline bounds the whole wait. Raises RolloutTimeout with diagnostics (pods, events,
    logs) on timeout or when the controller reports failure (progress deadline exceeded).
    """
    started = clock()
    deadline = started + timeout
    done = {}
    groups = {}
    for api_version, kind, namespace, name in targets:
        groups.setdefault((api_version, kind, namespace), set()).add(name)
    latest = {}
    for (api_version, kind, namespace), names in groups.items():
        ready_fn = READY.get(kind)
        failed_fn = FAILED.get(kind, lambda obj: None)
        if ready_fn is None:
            for name in names:
                done[(kind, namespace, name)] = 0.0
            continue
        pending = set(names)
        failure = None
        while pending and failure is None:
            items, rv = kube.list(api_version, kind, namespace)
            for item in items:
                name = (item.get("metadata") or {}).get("name")
                if name in pending:
                    latest[(kind, namespace, name)] = item
                    failure = failed_fn(item)
                    if ready_fn(item):
                        pending.discard(name)
                        done[(kind, namespace, name)] = round(clock() - started, 3)
            if not pending or failure or clock() >= deadline:
                break
            try:
                for event_type, obj in kube.watch(api_version, kind, namespace, rv, deadline, clock=clock):
                    name = (obj.get("metadata") or {}).get("name")
                    if event_type == "BOOKMARK" or name not in pending:
                        continue
                    if event_type == "DELETED":
                        failure = "%s %s/%s was deleted while waiting" % (kind, namespace, name)
                        break
                    obj.setdefault("apiVersion", api_version)
                    obj.setdefault("kind", kind)
                    latest[(kind, namespace, name)] = obj
                    failure = failed_fn(obj)
                    if failure:
                        break
                    if ready_fn(obj):
                        pending.discard(name)
                        done[(kind, namespace, name)] = round(clock() - started, 3)
                        if not pending:
                            break
            except KubeError as exc:
                if exc.status != 410:
                    raise
                continue  # resource version too old: list again
            if clock() >= deadline:
                break
        if pending:
            not_ready = [latest.get((kind, namespace, n)) or {"kind": kind, "metadata": {"name": n, "namespace": namespace}}
                         for n in sorted(pending)]
            report = [diagnose(kube, obj, log_lines=log_lines, event_count=event_count) for obj in not_ready]
            elapsed = clock() - started
            head = ("%s failed: %s" % (ref(not_ready[0]), failure)) if failure else (
                "%d object(s) not ready after %.1f s (timeout %s s)" % (len(not_ready), elapsed, timeout))
            raise RolloutTimeout(head + "\n" + "\n".join(r["text"] for r in report), report)
    return done


def _events_for(kube, namespace, kind, name, count):
    try:
        items = kube.items("v1", "Event", namespace,
                           field_selector="involvedObject.kind=%s,involvedObject.name=%s" % (kind, name))
    except KubeError:
        return []
    items.sort(key=event_time)
    return ["%s %s: %s%s" % (e.get("type", ""), e.get("reason", ""), e.get("message", ""),
                             " (x%s)" % e["count"] if (e.get("count") or 1) > 1 else "") for e in items[-count:]]


def diagnose(kube, obj, log_lines=20, event_count=5):
    """What a person would look at: the workload's status, its pods' phases, events and last log lines."""
    meta = obj.get("metadata") or {}
    namespace, name, kind = meta.get("namespace"), meta.get("name"), obj.get("kind")
    report = {"object": ref(obj), "status": ready_summary(obj) if obj.get("status") is not None else "no status",
              "events": _events_for(kube, namespace, kind, name, event_count), "pods": []}
    lines = ["%s: %s" % (report["object"], report["status"])]
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True" or cond.get("type") in ("ReplicaFailure",):
            lines.append("  condition %s=%s %s: %s" % (
                cond.get("type"), cond.get("status"), cond.get("reason", ""), cond.get("message", "")))
    for event in report["events"]:
        lines.append("  event: " + event)
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = []
    if match:
        try:
            pods = kube.items("v1", "Pod", namespace,
                              label_selector=",".join("%s=%s" % kv for kv in sorted(match.items())))
        except KubeError:
            pods = []
    if match and not pods:
        lines.append("  no pods (see the events above: scheduling, quota, image)")
    pods.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
    for pod in pods[:3]:
        pmeta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        info = {"name": pmeta.get("name"), "phase": status.get("phase", "Unknown"),
                "node": (pod.get("spec") or {}).get("nodeName"),
                "containers": [container_state_text(s) for s in
                               (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])],
                "events": _events_for(kube, namespace, "Pod", pmeta.get("name"), event_count),
                "logs": []}
        lines.append("  pod %s: phase %s%s%s" % (info["name"], info["phase"],
                                                 " on " + info["node"] if info["node"] else " (not scheduled)",
                                                 ", reason " + status["reason"] if status.get("reason") else ""))
        for cond in status.get("conditions") or []:
            if cond.get("status") != "True" and cond.get("message"):
                lines.append("    condition %s: %s %s" % (cond.get("type"), cond.get("reason", ""), cond["message"]))
        for text in info["containers"]:
            lines.append("    container " + text)
        for event in info["events"]:
            lines.append("    event: " + event)
        for cstatus in status.get("containerStatuses") or []:
            state = cstatus.get("state") or {}
            previous = bool(cstatus.get("restartCount")) and "running" not in state
            try:
                log = kube.logs(namespace, pmeta.get("name"), cstatus.get("name"), tail=log_lines, previous=previous)
            except KubeError as exc:
                log = []
                lines.append("    logs of %s unavailable: %s" % (cstatus.get("name"), exc))
            if log:
                info["logs"].extend(log)
                lines.append("    last %d log lines of %s%s:" % (len(log), cstatus.get("name"),
                                                                 " (previous run)" if previous else ""))
                lines.extend("      | " + line for line in log)
        report["pods"].append(info)
    report["text"] = "\n".join(lines)
    return report


def service_pods(kube, namespace, service):
    """Phase and readiness of the pods behind a Service (for health failure messages)."""
    svc = kube.get("v1", "Service", service, namespace)
    if svc is None:
        return "Service %s/%s does not exist" % (namespace, service)
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not selector:
        return "Service %s/%s has no selector" % (namespace, service)
    pods = kube.items("v1", "Pod", namespace, label_selector=",".join("%s=%s" % kv for kv in sorted(selector.items())))
    if not pods:
        return "no pods behind Service %s/%s" % (namespace, service)
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        states = "; ".join(container_state_text(s) for s in status.get("containerStatuses") or [])
        out.append("pod %s %s%s%s" % ((pod.get("metadata") or {}).get("name"), status.get("phase", "Unknown"),
                                      " ready" if pod_ready(pod) else " not ready", " (%s)" % states if states else ""))
    return "; ".join(out)
