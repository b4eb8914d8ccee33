# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small JSON client for the Kubernetes API over the official ``kubernetes`` library's public interface.

Configuration, authentication and TLS come from the library (``kube_auth.py`` builds its
``Configuration``); every request goes through ``kubernetes.dynamic.DynamicClient.request``, the
interface kubernetes.core itself is built on and the same across client releases, with plain dicts in
and out. Discovery is ours: one GET per group/version, kept in memory (no cache file).

``MIN_KUBERNETES`` is the oldest client the modules accept (kubernetes.core's own floor);
``requirement_error()`` says, before anything is sent, when the installed one is missing or older.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import os
import time

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover
    from urllib import quote

from ansible_collections.baremetal.gpu.plugins.module_utils import kube_auth
from ansible_collections.baremetal.gpu.plugins.module_utils.versions import compare

MIN_KUBERNETES = "24.2.0"
REQUIREMENT = "kubernetes>=%s" % MIN_KUBERNETES

try:
    import kubernetes
    KUBERNETES_VERSION = str(getattr(kubernetes, "__version__", "0"))
except ImportError as exc:  # reported by requirement_error()
    KUBERNETES_VERSION = None
    KUBERNETES_IMPORT_ERROR = exc
try:
    from kubernetes import config as kube_config
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.client.rest import ApiException
    from kubernetes.dynamic import DynamicClient

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # missing, or a release without kubernetes.dynamic: requirement_error() says which
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc
    ApiException = None


def requirement_error(installed=None):
    """None when the kubernetes library is usable, else what is wrong and what to install.

    ``installed`` is the version to judge (default: the imported library's).
    """
    version = installed if installed is not None else KUBERNETES_VERSION
    if version is None:
        return ("the kubernetes Python library is not installed for the Python that runs this module "
                "(pip install '%s'): %s" % (REQUIREMENT, KUBERNETES_IMPORT_ERROR))
    if compare(version, MIN_KUBERNETES) < 0:
        return ("the kubernetes Python library %s is too old: baremetal.gpu needs kubernetes >= %s "
                "(pip install '%s')" % (version, MIN_KUBERNETES, REQUIREMENT))
    if installed is None and not HAS_KUBERNETES:
        return "the kubernetes Python library %s is incomplete: %s" % (version, KUBERNETES_IMPORT_ERROR)
    return None


def ref(obj):
    """'Kind namespace/name' (or 'Kind name') for messages."""
    meta = obj.get("metadata") or {}
    where = "%s/%s" % (meta.get("namespace"), meta.get("name")) if meta.get("namespace") else meta.get("name")
    return "%s %s" % (obj.get("kind"), where)


class KubeError(Exception):
    """An API request failed; ``status`` is the HTTP status (0: nothing answered), ``body`` the Status object."""

    def __init__(self, status, message, body=None, reason=None):
        self.status = status
        self.body = body
        self.reason = reason or ((body or {}).get("reason") if isinstance(body, dict) else None)
        super(KubeError, self).__init__(message)


class _NoDiscovery(object):
    """Stands in for DynamicClient's discoverer: this client discovers what it needs itself, in memory."""

    def __init__(self, client, cache_file):
        pass


def _text(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")


def _status_message(text):
    """The ``message`` of a Status body, else the text itself (shortened)."""
    try:
        decoded = json.loads(text)
    except ValueError:
        return text[:300], None
    if isinstance(decoded, dict):
        return decoded.get("message") or text[:300], decoded
    return text[:300], None


class Kube:
    """JSON client with discovery by group/version; ``requests`` counts the API calls made."""

    def __init__(self, api_client, request_timeout=30):
        self.api = api_client
        self._dynamic = DynamicClient(api_client, discoverer=_NoDiscovery)
        self.request_timeout = request_timeout
        self._resources = {}
        self.requests = 0

    @classmethod
    def from_params(cls, params, environ=None):
        """A client from module options (``kube_auth.AUTH_ARG_SPEC``) and the ``K8S_AUTH_*`` environment."""
        problem = requirement_error()
        if problem:
            raise KubeError(0, problem)
        try:
            configuration = kube_auth.configuration(params, os.environ if environ is None else environ,
                                                    kube_config, Configuration)
        except kube_auth.KubeConfigError as exc:
            raise KubeError(0, str(exc))
        return cls(ApiClient(configuration))

    def close(self):
        try:
            self.api.close()
        except Exception:  # closing is best effort
            pass

    # ---- transport
    def _send(self, method, path, query, body, content_type, timeout):
        """The library's response object for a 2xx answer; ApiException for any other status."""
        self.requests += 1
        return self._dynamic.request(
            method, path, body=body, serialize=False,
            query_params=[(k, v) for k, v in (query or []) if v is not None],
            header_params={"Accept": "application/json"}, content_type=content_type or "application/json",
            _request_timeout=timeout or self.request_timeout)

    def call(self, method, path, query=None, body=None, content_type=None, timeout=None):
        """One request; ``(status, text)`` whatever the status. KubeError(0) when nothing answered."""
        try:
            response = self._send(method, path, query, body, content_type, timeout)
        except ApiException as exc:
            return exc.status or 0, _text(exc.body)
        except Exception as exc:  # urllib3 connection errors, timeouts
            raise KubeError(0, "%s %s: %s" % (method, path, exc))
        try:
            return response.status, _text(response.data)
        finally:
            response.release_conn()

    def request(self, method, path, query=None, body=None, content_type=None, timeout=None):
        """One JSON request; returns the decoded body, raises KubeError on any non-2xx status."""
        status, text = self.call(method, path, query, body, content_type, timeout)
        if status >= 300 or status < 200:
            message, decoded = _status_message(text)
            raise KubeError(status, "%s %s: %s %s" % (method, path, status, message), decoded)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text

    def open_stream(self, method, path, query=None, timeout=None):
        """An open response to read as a stream (watches, logs to follow); KubeError for a non-2xx answer."""
        try:
            return self._send(method, path, query, None, None, timeout)
        except ApiException as exc:
            message, decoded = _status_message(_text(exc.body))
            raise KubeError(exc.status or 0, "%s %s: %s %s" % (method, path, exc.status, message), decoded)
        except Exception as exc:
            raise KubeError(0, "%s %s: %s" % (method, path, exc))

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

    def apply(self, obj, field_manager, force=True, dry_run=False):
        """Server-side apply of ``obj`` (as ``DynamicClient.server_side_apply`` sends it)."""
        meta = obj.get("metadata") or {}
        path = self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        query = [("fieldManager", field_manager), ("force", "true" if force else None),
                 ("dryRun", "All" if dry_run else None)]
        return self.request("PATCH", path, query, body=obj, content_type="application/apply-patch+yaml")

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
        status, text = self.call("GET", path, query, timeout=10)
        if status >= 300:
            raise KubeError(status, _status_message(text)[0])
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
        stream = self.open_stream("GET", path, query, timeout=(5, remaining + 1.0))
        buffer = b""
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
