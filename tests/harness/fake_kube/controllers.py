"""Controllers of kube-controller-manager that belong with the API server here because they only
mint credentials: the service-account token controller.

A Secret of type `kubernetes.io/service-account-token` annotated
`kubernetes.io/service-account.name: <sa>` gets, shortly after it is created (not in the create
response), `data.token` (a legacy token, tokens.py), `data.ca.crt`, `data.namespace` and the
`kubernetes.io/service-account.uid` annotation. A Secret naming a ServiceAccount that does not
exist is deleted, as the controller does.

Garbage collection, the namespace controller's work aside, is NOT here: deleting an owner leaves its
dependents to the garbage collector of the simulated controller manager (the kubelet simulator).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Optional, Tuple

from .errors import ApiError
from .store import Event, clone

if TYPE_CHECKING:  # pragma: no cover
    from .api import FakeKubeAPI

TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME = "kubernetes.io/service-account.name"
SA_UID = "kubernetes.io/service-account.uid"
MANAGER = "kube-controller-manager"


def _needs_token(obj: Optional[dict]) -> bool:
    if not obj or obj.get("type") != TOKEN_TYPE or (obj.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return not (obj.get("data") or {}).get("token")


class TokenController:
    def __init__(self, api: "FakeKubeAPI") -> None:
        self.api = api
        self.secrets = api.table.lookup("", "v1", "secrets")
        self.accounts = api.table.lookup("", "v1", "serviceaccounts")
        self.running = False

    def start(self) -> None:
        self.running = True
        self.api.store.add_listener(self._on_event)
        for secret in self.api.store.items(self.secrets):
            if _needs_token(secret):
                self._schedule(secret)

    def stop(self) -> None:
        self.running = False
        self.api.store.remove_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.resource is self.secrets and event.type != "DELETED" and _needs_token(event.obj):
            self._schedule(event.obj)

    def _schedule(self, secret: dict) -> None:
        loop = self.api.loop
        key = (secret["metadata"]["namespace"], secret["metadata"]["name"])
        if loop is not None and self.running:
            try:
                loop.call_soon_threadsafe(self._sync, key)
            except RuntimeError:  # loop closed: the server is stopping
                pass

    def _sync(self, key: Tuple[str, str]) -> None:
        registry, store = self.api.registry, self.api.store
        namespace, name = key
        try:
            with store.lock:
                secret = store.peek(self.secrets, namespace, name)
                if not _needs_token(secret):
                    return
                annotations = secret["metadata"].get("annotations") or {}
                account = store.peek(self.accounts, namespace, annotations.get(SA_NAME, ""))
                if account is None or (annotations.get(SA_UID) and annotations[SA_UID] != account["metadata"]["uid"]):
                    registry.delete(self.secrets, namespace, name, {})
                    return
                token = self.api.issuer.legacy_token(account, name)
                new = clone(secret)
                new["metadata"].setdefault("annotations", {})[SA_UID] = account["metadata"]["uid"]
                data = new.setdefault("data", {})
                data["token"] = base64.b64encode(token.encode()).decode()
                data["ca.crt"] = base64.b64encode(self.api.ca_pem.encode()).decode()
                data["namespace"] = base64.b64encode(namespace.encode()).decode()
                registry.write_as_controller(self.secrets, secret, new, MANAGER)
        except ApiError:
            pass  # deleted or changed meanwhile: the next event brings it back here
