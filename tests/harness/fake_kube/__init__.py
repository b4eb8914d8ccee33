"""A fake Kubernetes API server for tests, k3s 1.32 flavour: real HTTPS, real Status errors, watches,
server-side apply with managedFields, RBAC, and a service proxy, driven by one resource table.

    from tests.harness.fake_kube import FakeKubeAPI

What a real API server refuses, it refuses, with the upstream texts:
- decoding (decode.py, quantity.py, gotime.py): Go type errors, `resource.Quantity` grammar (`16GB`),
  `metav1.Time` vs `MicroTime` layouts, base64: 400 BadRequest;
- validation (validation.py, preconditions.py): 422 Invalid with `details.causes[].field`, for
  created, replaced, patched, applied and dry-run objects; stale `resourceVersion` preconditions
  (409) on every write; a Lease PUT without `resourceVersion` (422);
- admission (admission.py): NamespaceLifecycle, ServiceAccount, RuntimeClass (403);
- authentication and authorization (tls.py, auth.py, tokens.py, rbac.py): HTTPS with a cluster CA
  made at start, client certificates, the static token, service-account tokens; 401 without valid
  credentials; RBAC with the default ClusterRoles (403);
- watches and lists (store.py, watching.py, listing.py): a watch cache per resource and etcd
  compaction, so old resourceVersions get 410 Gone; bookmarks every minute.

The split between this package and the simulated controller manager (the kubelet simulator):
the API server stores, validates, admits and authorizes; it never acts on its own. Deleting an
owner follows the propagation policy on the API side only (deletion.py: the owner goes, or waits
behind the `foregroundDeletion` / `orphan` finalizer); deleting its dependents and removing those
finalizers is the garbage collector's job, a controller of the simulator, as kube-controller-manager
does it on a real cluster. The same holds for ReplicaSets, Deployments, scheduling and pods. The
exceptions are the two controllers that only mint or clean up what the API itself owns:
the service-account token controller (controllers.py) and the namespace controller's emptying of
a namespace being deleted (deletion.py).
"""

from .api import FakeKubeAPI
from .errors import ApiError
from .resources import RESOURCES, Resource, ResourceTable

__all__ = ["ApiError", "FakeKubeAPI", "RESOURCES", "Resource", "ResourceTable"]
