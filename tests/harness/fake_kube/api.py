"""`FakeKubeAPI`: the fake API server in a background thread, over HTTPS, with its cluster PKI.

    with FakeKubeAPI() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")          # admin, like k3s.yaml
        router = api.write_kubeconfig(tmp_path / "router", "ml",
                                      user="system:serviceaccount:ml:router")  # act as a ServiceAccount
        with api.urlopen("/api/v1/namespaces/ml/pods") as response: ...      # urllib, trusted and authenticated
        KubeletSimulator(api.url, token=api.token_value)                     # trusts the CA through tls.trusted_context

Knobs (constructor arguments; when left None, the environment variable, else the real default):

| argument | env | default | what |
| --- | --- | --- | --- |
| watch_cache_size | BAREMETAL_GPU_FAKE_KUBE_WATCH_CACHE_SIZE | 100 | events per resource a watch can resume from, at least |
| event_fresh_seconds | BAREMETAL_GPU_FAKE_KUBE_EVENT_FRESH_SECONDS | 75 | the watch cache grows to keep this much history |
| compaction_interval | BAREMETAL_GPU_FAKE_KUBE_COMPACTION_INTERVAL | 300 | etcd compaction period (s) |
| bookmark_interval | BAREMETAL_GPU_FAKE_KUBE_BOOKMARK_INTERVAL | 60 | seconds between watch bookmarks |
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import threading
import urllib.request
from typing import Any, Dict, List, Optional, Tuple, Union

import yaml
from aiohttp import web

from . import tls
from .auth import STATIC_TOKEN_USER, Authenticator
from .controllers import TokenController
from .errors import ApiError
from .rbac import Authorizer
from .registry import Registry
from .resources import Resource, ResourceTable
from .server import KubeHTTP
from .store import Store
from .tokens import TokenIssuer

ENV_PREFIX = "BAREMETAL_GPU_FAKE_KUBE_"


def _knob(value: Optional[float], name: str, default: float) -> float:
    if value is not None:
        return value
    env = os.environ.get(ENV_PREFIX + name)
    return float(env) if env else default


class FakeKubeAPI:
    """A Kubernetes API server (k3s 1.32 flavour) in a background thread, for tests and fake-cluster.

    `disable=("runtimes",)` is `k3s server --disable=runtimes`: no packaged RuntimeClasses (`nvidia`...).
    `anonymous_auth=True` is kube-apiserver's default instead of k3s' `--anonymous-auth=false`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: Optional[str] = "fake-kube-token",
                 watch_cache_size: Optional[int] = None, watch_cache_max: int = 100 * 1024,
                 event_fresh_seconds: Optional[float] = None, compaction_interval: Optional[float] = None,
                 bookmark_interval: Optional[float] = None, bookmark_deadline_margin: float = 2.0,
                 anonymous_auth: bool = False, disable: Tuple[str, ...] = ()) -> None:
        self.host = host
        self.port = port
        self.bookmark_interval = _knob(bookmark_interval, "BOOKMARK_INTERVAL", 60.0)
        self.bookmark_deadline_margin = bookmark_deadline_margin
        self.token_value = token
        self.pki = tls.ClusterPKI(host)
        self.issuer = TokenIssuer(self.pki.service_account_key)
        self.table = ResourceTable()
        self.store = Store(int(_knob(watch_cache_size, "WATCH_CACHE_SIZE", 100)), watch_cache_max,
                           _knob(event_fresh_seconds, "EVENT_FRESH_SECONDS", 75.0),
                           _knob(compaction_interval, "COMPACTION_INTERVAL", 300.0))
        self.registry = Registry(self.store, self.table, ca_pem=self.pki.server_ca.pem.decode())
        self.registry.bootstrap(disable)
        self.store.start_watch_caches()
        static = {token: STATIC_TOKEN_USER} if token else {}
        self.authenticator = Authenticator(self.registry, self.issuer, static, anonymous_auth)
        self.authorizer = Authorizer(self.registry)
        self.pod_network: Dict[Tuple[str, int], str] = {}
        self.proxy_turn = 0
        self.watches: set = set()
        self.stopping = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None
        self._http: Optional[KubeHTTP] = None
        self._token_controller = TokenController(self)

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def ca_file(self) -> str:
        """PEM file of the cluster CA that signed the serving certificate."""
        return self.pki.ca_file

    @property
    def ca_pem(self) -> str:
        return self.pki.server_ca.pem.decode()

    @property
    def loop(self) -> Optional[asyncio.AbstractEventLoop]:
        return self._loop

    def ssl_context(self) -> ssl.SSLContext:
        """A client-side context that trusts this cluster's CA (no client certificate)."""
        return self.pki.client_context()

    def admin_ssl_context(self) -> ssl.SSLContext:
        """Trusts the CA and presents the admin client certificate (system:admin, system:masters)."""
        return self.pki.client_context(self.pki.admin_cert, self.pki.admin_key)

    def start(self) -> str:
        ready = threading.Event()
        errors: List[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup())
            except BaseException as err:  # report bind errors to start()
                errors.append(err)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-kube-api", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        tls.trust(self.url, self.pki)
        self._token_controller.start()
        return self.url

    async def _startup(self) -> None:
        self._http = KubeHTTP(self)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._http.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True,
                           ssl_context=self.pki.server_context())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        self.stopping = True
        for watcher in list(self.watches):
            watcher.offer(None)
        if self._http and self._http.session:
            await self._http.session.close()
        if self._runner:
            await self._runner.cleanup()

    def stop(self) -> None:
        self._token_controller.stop()
        if self._loop is None or self._thread is None:
            self.pki.cleanup()
            return
        tls.distrust(self.url)
        if self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                future.result(10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None
        self.pki.cleanup()

    def __enter__(self) -> "FakeKubeAPI":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ credentials and clients
    def service_account_token(self, namespace: str, name: str, expiration_seconds: int = 3600,
                              audiences: Optional[List[str]] = None) -> str:
        """A bound token for an existing ServiceAccount, as the TokenRequest API issues it."""
        res = self.resource("ServiceAccount")
        account = self.registry.get(res, namespace, name)
        return self.issuer.bound_token(account, audiences, expiration_seconds)[0]

    def write_kubeconfig(self, path: Any, namespace: str = "default", context: str = "fake",
                         user: Optional[str] = None, token: Optional[str] = None,
                         ca_pem: Optional[str] = None) -> str:
        """A kubeconfig for this server, written as k3s writes /etc/rancher/k3s/k3s.yaml.

        - default: the admin client certificate (CN system:admin, O system:masters);
        - `user="system:serviceaccount:<ns>:<name>"` (or `"<ns>/<name>"`): a token minted for that
          existing ServiceAccount through the TokenRequest machinery (1 hour);
        - `token="..."`: that bearer token as it is (the static token, a bad one, ...);
        - `ca_pem`: trust another CA than the cluster's (to show verification failing).
        """
        credentials: Dict[str, Any]
        if token is not None:
            credentials = {"token": token}
        elif user is not None:
            account = user[len("system:serviceaccount:"):] if user.startswith("system:serviceaccount:") else user
            sa_namespace, _sep, sa_name = account.replace("/", ":").partition(":")
            credentials = {"token": self.service_account_token(sa_namespace, sa_name)}
        else:
            credentials = {"client-certificate-data": base64.b64encode(self.pki.admin_cert).decode(),
                           "client-key-data": base64.b64encode(self.pki.admin_key).decode()}
        authority = (ca_pem or self.ca_pem).encode()
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {
                "certificate-authority-data": base64.b64encode(authority).decode(), "server": self.url}}],
            "users": [{"name": f"{context}-user", "user": credentials}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-user",
                                                       "namespace": namespace}}],
            "current-context": context,
        }
        with open(os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
        return str(path)

    def auth_headers(self, token: Optional[str] = None) -> Dict[str, str]:
        chosen = token if token is not None else self.token_value
        return {"Authorization": f"Bearer {chosen}"} if chosen else {}

    def urlopen(self, target: Union[str, urllib.request.Request], timeout: float = 10,
                token: Optional[str] = None, data: Optional[bytes] = None) -> Any:
        """urllib.request.urlopen against this server: CA trusted, static token (or `token`) sent.
        `target` is a Request or a URL; a path (`/api/v1/...`) is joined to `api.url`."""
        if isinstance(target, str):
            target = urllib.request.Request(self.url + target if target.startswith("/") else target, data=data)
        for key, value in self.auth_headers(token).items():
            if not target.has_header(key):
                target.add_header(key, value)
        return urllib.request.urlopen(target, timeout=timeout, context=self.ssl_context())

    # ------------------------------------------------------------ in-process helpers
    def resource(self, kind: str, api_version: Optional[str] = None) -> Resource:
        if api_version:
            res = self.table.by_kind(api_version, kind)
            if res is None:
                raise KeyError(f"{api_version}/{kind}")
            return res
        return self.table.kind_named(kind)

    def create(self, obj: Dict[str, Any], manager: str = "test") -> Dict[str, Any]:
        res = self.resource(obj["kind"], obj.get("apiVersion"))
        return self.registry.create(res, (obj.get("metadata") or {}).get("namespace") or
                                    ("default" if res.namespaced else None), obj, manager)

    def get(self, kind: str, name: str, namespace: Optional[str] = None) -> Dict[str, Any]:
        res = self.resource(kind)
        return self.registry.get(res, namespace or ("default" if res.namespaced else None), name)

    def list(self, kind: str, namespace: Optional[str] = None, label_selector: Optional[str] = None
             ) -> List[Dict[str, Any]]:
        return self.registry.list(self.resource(kind), namespace, label_selector)[0]

    def add_node(self, name: str, gpus: int = 0, labels: Optional[Dict[str, str]] = None,
                 cpu: str = "8", memory: str = "32Gi") -> Dict[str, Any]:
        """A Ready node with no kubelet behind it (pods bound to it never start)."""
        capacity = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
        if gpus:
            capacity["nvidia.com/gpu"] = str(gpus)
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}
        status = {"capacity": capacity, "allocatable": dict(capacity),
                  "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
        return self.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": node_labels},
                            "status": status})

    def register_backend(self, ip: str, port: int, url: str) -> None:
        self.pod_network[(ip, int(port))] = url


__all__ = ["FakeKubeAPI", "ApiError"]
