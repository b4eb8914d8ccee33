"""Images on a node, as the kubelet's image manager and containerd handle them.

- `imagePullPolicy`: Never (absent: `ErrImageNeverPull`), IfNotPresent (present: no pull), Always (pull,
  which for a present image only resolves it).
- A pull resolves the reference against the registries the node is configured with (`registries`, like
  k3s's registries.yaml mirrors: {"docker.io": "http://127.0.0.1:5000"}; a reference naming a registry
  host directly goes there), over the distribution HTTP API (HEAD/GET manifest, index -> linux/amd64,
  config blob for ENTRYPOINT/CMD/Env), then upstream in image_catalog's table. A tag nobody has fails with
  containerd's `not found`; the kubelet then reports `ErrImagePull`, and `ImagePullBackOff` while the
  per-image back-off (10 s doubling to 300 s) lasts.
- Pull time: image size / `pull_bandwidth` (MB/s, simulated), plus a registry round trip; pulls are
  serialised per node (the kubelet's serializeImagePulls default).
- `present`: what the node has already: "*" (every image that exists counts as pre-pulled: a node whose
  images were pulled ahead, the fake cluster's default) or a list of references."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Iterable, Optional, Tuple, Union

from .image_catalog import ImageInfo, full_name, known_image, normalise
from .timing import BackOff, SimClock, go_duration

ALL_PRESENT = "*"
RESOLVE_SECONDS = 0.2  # simulated registry round trips of a pull
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"])


class PullError(Exception):
    """reason: ErrImagePull, ImagePullBackOff, ErrImageNeverPull; message: the container's waiting message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class NotFound(Exception):
    pass


class RegistryClient:
    """The few distribution API calls a pull needs, with anonymous Bearer tokens (Docker Hub's flow)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self._token: Dict[str, str] = {}

    def _get(self, path: str, repo: str, accept: str = "") -> Tuple[bytes, str]:
        for _attempt in range(2):
            request = urllib.request.Request(self.base + path, headers={"Accept": accept} if accept else {})
            if repo in self._token:
                request.add_header("Authorization", "Bearer " + self._token[repo])
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    return resp.read(), resp.headers.get("Content-Type", "")
            except urllib.error.HTTPError as err:
                if err.code == 401 and repo not in self._token:
                    self._token[repo] = self._anonymous_token(err.headers.get("WWW-Authenticate", ""))
                    continue
                if err.code == 404:
                    raise NotFound() from None
                if err.code in (401, 403):
                    raise PermissionError("pull access denied, repository does not exist or may require "
                                          "authorization: server message: insufficient_scope: authorization "
                                          "failed") from None
                raise OSError(f"unexpected status from GET request to {self.base + path}: {err.code}") from None
        raise PermissionError("pull access denied")

    def _anonymous_token(self, header: str) -> str:
        params = dict(part.split("=", 1) for part in header.replace("Bearer ", "", 1).split(",") if "=" in part)
        params = {k.strip(): v.strip().strip('"') for k, v in params.items()}
        realm = params.pop("realm", "")
        url = realm + "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=self.timeout) as resp:
            doc = json.loads(resp.read())
        return doc.get("token") or doc.get("access_token") or ""

    def image(self, repo: str, tag: str) -> Tuple[dict, int, str]:
        """(image config, total size, digest) of repo:tag for linux/amd64."""
        reference = tag[1:] if tag.startswith("@") else tag
        body, ctype = self._get(f"/v2/{repo}/manifests/{reference}", repo, MANIFEST_TYPES)
        doc = json.loads(body)
        digest = ""
        if "manifests" in doc:
            entry = next((m for m in doc["manifests"] if (m.get("platform") or {}).get("architecture") == "amd64"
                          and (m.get("platform") or {}).get("os") == "linux"), None)
            if entry is None:
                raise NotFound()
            digest = entry["digest"]
            body, ctype = self._get(f"/v2/{repo}/manifests/{digest}", repo, MANIFEST_TYPES)
            doc = json.loads(body)
        config_blob, _ctype = self._get(f"/v2/{repo}/blobs/{doc['config']['digest']}", repo)
        size = sum(int(layer.get("size", 0)) for layer in doc.get("layers") or []) + int(doc["config"].get("size", 0))
        return json.loads(config_blob), size, digest or doc["config"]["digest"]


class ImageService:
    def __init__(self, clock: SimClock, present: Union[str, Iterable[str]] = ALL_PRESENT,
                 registries: Optional[Dict[str, str]] = None, pull_bandwidth: float = 50.0) -> None:
        self.clock = clock
        self.all_present = present == ALL_PRESENT
        self.registries = dict(registries or {})
        self.pull_bandwidth = pull_bandwidth
        self.images: Dict[str, ImageInfo] = {}
        self.backoff = BackOff(clock)
        self._failed_at: Dict[str, float] = {}
        self._last_error: Dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._wanted_present = [] if self.all_present else list(present)  # type: ignore[arg-type]

    async def preload(self) -> None:
        for reference in self._wanted_present:
            try:
                info = await asyncio.get_running_loop().run_in_executor(None, self._resolve, reference)
            except (NotFound, PermissionError, OSError):
                continue
            self.images[full_name(reference)] = info

    def lookup(self, reference: str) -> Optional[ImageInfo]:
        return self.images.get(full_name(reference))

    def _resolve(self, reference: str) -> ImageInfo:
        """The image as a registry would serve it (blocking: run in a thread)."""
        host, path, tag = normalise(reference)
        direct = host not in ("docker.io",) and host not in self.registries
        endpoints = [self.registries[host]] if host in self.registries else []
        if direct and (host.startswith("127.0.0.1") or host.startswith("localhost")):
            endpoints = [f"http://{host}"]
        for endpoint in endpoints:
            try:
                config, size, digest = RegistryClient(endpoint).image(path, tag)
            except NotFound:
                continue
            except urllib.error.URLError as err:
                raise OSError(f"failed to do request: Head \"{endpoint}/v2/{path}/manifests/{tag}\": "
                              f"dial tcp {host}: connect: {getattr(err, 'reason', err)}") from None
            inner = config.get("config") or {}
            env = dict(item.split("=", 1) for item in inner.get("Env") or [] if "=" in item)
            _known, table = known_image(reference)
            return ImageInfo(reference, f"{host}/{path}", tag, list(inner.get("Entrypoint") or []),
                             list(inner.get("Cmd") or []), env, size, digest, table.tools if table else None)
        if endpoints and direct:
            raise NotFound()
        _known, info = known_image(reference)
        if info is None:
            raise NotFound()
        return info

    async def ensure(self, reference: str, policy: str, pod_uid: str, event) -> ImageInfo:
        """The image for a container, pulling it as the policy says; `event(type, reason, message)` records
        the kubelet's events. Raises PullError."""
        present = self.all_present_info(reference) if self.all_present else self.lookup(reference)
        if policy == "Never":
            if present is None:
                message = f'Container image "{reference}" is not present with pull policy of Never'
                event("Warning", "ErrImageNeverPull", message)
                raise PullError("ErrImageNeverPull", message)
            return present
        if policy != "Always" and present is not None:
            event("Normal", "Pulled", f'Container image "{reference}" already present on machine')
            return present
        key = f"{pod_uid}_{reference}"
        failed = self._failed_at.get(key)
        if failed is not None and self.backoff.in_backoff_since(key, failed):
            message = f'Back-off pulling image "{reference}"'
            event("Normal", "BackOff", message)
            raise PullError("ImagePullBackOff", f"{message}: ErrImagePull: {self._last_error.get(key, '')}")
        event("Normal", "Pulling", f'Pulling image "{reference}"')
        started = time.monotonic()
        async with self._lock:
            waited = time.monotonic() - started
            try:
                info = await asyncio.get_running_loop().run_in_executor(None, self._resolve, reference)
            except (NotFound, PermissionError, OSError) as err:
                await self.clock.sleep(RESOLVE_SECONDS)
                error = self._error(reference, err)
                self._failed_at[key] = self.clock.now()
                self._last_error[key] = error
                self.backoff.next(key, self.clock.now())
                event("Warning", "Failed", f'Failed to pull image "{reference}": {error}')
                raise PullError("ErrImagePull", error) from None
            seconds = RESOLVE_SECONDS + (0 if present is not None else info.size / (self.pull_bandwidth * 1e6))
            await self.clock.sleep(seconds)
        self._failed_at.pop(key, None)
        self.images[full_name(reference)] = info
        took = self.clock.sim(time.monotonic() - started)
        pulling = go_duration(took - self.clock.sim(waited))
        event("Normal", "Pulled", f'Successfully pulled image "{reference}" in {pulling} ({go_duration(took)} '
                                  f"including waiting). Image size: {info.size} bytes.")
        return info

    def all_present_info(self, reference: str) -> Optional[ImageInfo]:
        """With every existing image pre-pulled: the image if it exists anywhere (resolved once)."""
        cached = self.lookup(reference)
        if cached is not None:
            return cached
        host, _path, _tag = normalise(reference)
        if host in self.registries or host.startswith("127.0.0.1") or host.startswith("localhost"):
            return None  # a registry image is pulled (and then cached) like on a real node
        _known, info = known_image(reference)
        if info is not None:
            self.images[full_name(reference)] = info
        return info

    @staticmethod
    def _error(reference: str, err: Exception) -> str:
        name = full_name(reference)
        if isinstance(err, NotFound):
            return (f'rpc error: code = NotFound desc = failed to pull and unpack image "{name}": failed to resolve '
                    f'reference "{name}": {name}: not found')
        return (f'rpc error: code = Unknown desc = failed to pull and unpack image "{name}": failed to resolve '
                f'reference "{name}": {err}')
