"""A pod's volumes as the kubelet's volume manager mounts them, resolved into in-memory file stores that
container programs read and write (through programs.sandbox.FileView):

- configMap / secret: one file per key (or per `items` entry); a missing object, or a missing key named in
  `items`, fails the mount (`FailedMount`: `MountVolume.SetUp failed for volume "v" : secret "x" not found`)
  unless `optional: true`, and the pod stays ContainerCreating until it appears;
- emptyDir: one store per pod, shared by its containers;
- hostPath: the node's own filesystem (a dict per node), checked by `type` (Directory, File, ...OrCreate);
- persistentVolumeClaim: the bound PV's hostPath on the node (local-path), kept across pods;
- projected (configMap, secret, downwardAPI, serviceAccountToken) and downwardAPI.
Other volume types (nfs, csi, ...) fail to mount: the simulated node has no driver for them."""

from __future__ import annotations

import base64
import posixpath
from typing import Any, Dict, Iterator, List, MutableMapping, Optional, Tuple

from .objects import Obj


class MountError(Exception):
    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


class HostFiles:
    """A node's filesystem: full path -> bytes, plus the directories that exist."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.dirs = {"/"}

    def makedirs(self, path: str) -> None:
        path = posixpath.normpath(path)
        while path not in self.dirs:
            self.dirs.add(path)
            path = posixpath.dirname(path)

    def is_dir(self, path: str) -> bool:
        path = posixpath.normpath(path)
        return path in self.dirs or any(f.startswith(path.rstrip("/") + "/") for f in self.files)


class HostSubtree(MutableMapping):
    """The files under one host directory, as a dict of relative paths (what a hostPath mount shows)."""

    def __init__(self, host: HostFiles, root: str) -> None:
        self.host = host
        self.root = posixpath.normpath(root).rstrip("/") or "/"

    def _full(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def __getitem__(self, rel: str) -> bytes:
        return self.host.files[self._full(rel)]

    def __setitem__(self, rel: str, value: bytes) -> None:
        full = self._full(rel)
        self.host.makedirs(posixpath.dirname(full))
        self.host.files[full] = value

    def __delitem__(self, rel: str) -> None:
        del self.host.files[self._full(rel)]

    def __iter__(self) -> Iterator[str]:
        prefix = self.root.rstrip("/") + "/"
        return iter([f[len(prefix):] for f in list(self.host.files) if f.startswith(prefix)])

    def __len__(self) -> int:
        return len(list(iter(self)))


def _decode(data: Dict[str, str], binary: bool) -> Dict[str, bytes]:
    return {k: (base64.b64decode(v) if binary else str(v).encode()) for k, v in (data or {}).items()}


def _keyed_files(kind: str, obj: Optional[Obj], name: str, items: List[Obj], optional: bool,
                 volume: str) -> Dict[str, bytes]:
    if obj is None:
        if optional:
            return {}
        raise MountError(volume, f'{kind.lower()} "{name}" not found')
    if kind == "Secret":
        data = _decode(obj.get("data") or {}, True)
        data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
    else:
        data = _decode(obj.get("data") or {}, False)
        data.update(_decode(obj.get("binaryData") or {}, True))
    if not items:
        return data
    out = {}
    for item in items:
        if item.get("key") not in data:
            if optional:
                continue
            raise MountError(volume, f"{kind.lower()} references non-existent {kind.lower()} key: {item.get('key')}"
                             if kind == "ConfigMap" else f"references non-existent secret key: {item.get('key')}")
        out[item.get("path", item["key"])] = data[item["key"]]
    return out


def _downward(pod: Obj, items: List[Obj]) -> Dict[str, bytes]:
    from .container_env import field_value  # pylint: disable=import-outside-toplevel

    return {item["path"]: field_value(pod, (item.get("fieldRef") or {}).get("fieldPath", "")).encode()
            for item in items if item.get("fieldRef")}


class PodVolumes:
    """Resolves a pod's volumes; `mounts(container)` gives a container's mount path -> store."""

    def __init__(self, pod: Obj, cache: Any, host: HostFiles) -> None:
        self.pod = pod
        self.cache = cache  # cache name -> {(namespace, name): obj}
        self.host = host
        self.stores: Dict[str, MutableMapping] = {}
        self._empty: Dict[str, Dict[str, bytes]] = {}

    def _get(self, cache_name: str, name: str) -> Optional[Obj]:
        return self.cache[cache_name].get((self.pod["metadata"].get("namespace", ""), name))

    def resolve(self) -> List[MountError]:
        """(Re)resolve every volume; the errors of those that cannot be mounted (empty when all are)."""
        errors = []
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            try:
                self.stores[volume["name"]] = self._one(volume)
            except MountError as err:
                errors.append(err)
        return errors

    def refresh(self) -> None:
        """The kubelet's periodic sync of configMap, secret, projected and downwardAPI volumes: their files
        follow the objects (in place: mounts see the new content; an object gone keeps the last content)."""
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            if not any(k in volume for k in ("configMap", "secret", "projected", "downwardAPI")):
                continue
            store = self.stores.get(volume["name"])
            try:
                fresh = self._one(volume)
            except MountError:
                continue
            if isinstance(store, dict) and store != fresh:
                store.clear()
                store.update(fresh)

    def _one(self, volume: Obj) -> MutableMapping:
        name = volume["name"]
        if "configMap" in volume:
            src = volume["configMap"]
            return _keyed_files("ConfigMap", self._get("configmaps", src.get("name", "")), src.get("name", ""),
                                src.get("items") or [], bool(src.get("optional")), name)
        if "secret" in volume:
            src = volume["secret"]
            return _keyed_files("Secret", self._get("secrets", src.get("secretName", "")), src.get("secretName", ""),
                                src.get("items") or [], bool(src.get("optional")), name)
        if "emptyDir" in volume:
            return self._empty.setdefault(name, {})
        if "hostPath" in volume:
            return self._host_path(name, volume["hostPath"].get("path", "/"), volume["hostPath"].get("type", ""))
        if "persistentVolumeClaim" in volume:
            claim_name = volume["persistentVolumeClaim"].get("claimName", "")
            claim = self._get("persistentvolumeclaims", claim_name)
            if claim is None:
                raise MountError(name, f'persistentvolumeclaim "{claim_name}" not found')
            pv = self.cache["persistentvolumes"].get(("", (claim.get("spec") or {}).get("volumeName", "")))
            if pv is None or (claim.get("status") or {}).get("phase") != "Bound":
                raise MountError(name, f'PVC {claim["metadata"]["namespace"]}/{claim_name} is not bound')
            path = ((pv.get("spec") or {}).get("hostPath") or (pv.get("spec") or {}).get("local") or {}).get("path")
            return self._host_path(name, path or f"/var/lib/rancher/k3s/storage/{pv['metadata']['name']}",
                                   "DirectoryOrCreate")
        if "projected" in volume:
            return self._projected(name, volume["projected"].get("sources") or [])
        if "downwardAPI" in volume:
            return _downward(self.pod, volume["downwardAPI"].get("items") or [])
        kind = next((k for k in volume if k != "name"), "unknown")
        raise MountError(name, f"the simulated node has no volume plugin for {kind} volumes")

    def _host_path(self, volume: str, path: str, type_: str) -> MutableMapping:
        path = posixpath.normpath(path)
        exists_dir = self.host.is_dir(path)
        exists_file = path in self.host.files
        if type_ == "DirectoryOrCreate" and not exists_file:
            self.host.makedirs(path)
        elif type_ == "FileOrCreate" and not exists_dir and not exists_file:
            self.host.files[path] = b""
        elif type_ == "Directory" and not exists_dir:
            raise MountError(volume, f"hostPath type check failed: {path} is not a directory")
        elif type_ in ("File", "Socket", "CharDevice", "BlockDevice") and not exists_file:
            raise MountError(volume, f"hostPath type check failed: {path} is not a {type_.lower()}")
        return HostSubtree(self.host, path)

    def _projected(self, volume: str, sources: List[Obj]) -> Dict[str, bytes]:
        out: Dict[str, bytes] = {}
        for source in sources:
            if "configMap" in source:
                src = source["configMap"]
                out.update(_keyed_files("ConfigMap", self._get("configmaps", src.get("name", "")),
                                        src.get("name", ""), src.get("items") or [], bool(src.get("optional")), volume))
            elif "secret" in source:
                src = source["secret"]
                out.update(_keyed_files("Secret", self._get("secrets", src.get("name", "")), src.get("name", ""),
                                        src.get("items") or [], bool(src.get("optional")), volume))
            elif "serviceAccountToken" in source:
                out[source["serviceAccountToken"].get("path", "token")] = b"simulated-service-account-token"
            elif "downwardAPI" in source:
                out.update(_downward(self.pod, source["downwardAPI"].get("items") or []))
        return out

    def mounts(self, container: Obj) -> Tuple[Dict[str, MutableMapping], set]:
        """mount path -> store for one container (subPath mounts show that subtree), and the read-only ones."""
        mounts: Dict[str, MutableMapping] = {}
        read_only = set()
        for mount in container.get("volumeMounts") or []:
            store = self.stores.get(mount["name"])
            if store is None:
                continue
            path = posixpath.normpath(mount["mountPath"])
            if mount.get("subPath"):
                store = _SubPath(store, mount["subPath"])
            mounts[path] = store
            if mount.get("readOnly") or mount["name"] in self._read_only_volumes():
                read_only.add(path)
        return mounts, read_only

    def _read_only_volumes(self) -> set:
        return {v["name"] for v in (self.pod.get("spec") or {}).get("volumes") or []
                if any(k in v for k in ("configMap", "secret", "projected", "downwardAPI"))}


class _SubPath(MutableMapping):
    """A subPath mount: the subtree `sub` of a volume, or the single file `sub` ("" is that file)."""

    def __init__(self, store: MutableMapping, sub: str) -> None:
        self.store = store
        self.sub = sub.strip("/")
        self.prefix = self.sub + "/"

    def _key(self, rel: str) -> str:
        return self.sub if rel == "" else self.prefix + rel

    def __getitem__(self, rel: str) -> bytes:
        return self.store[self._key(rel)]

    def __setitem__(self, rel: str, value: bytes) -> None:
        self.store[self._key(rel)] = value

    def __delitem__(self, rel: str) -> None:
        del self.store[self._key(rel)]

    def __iter__(self) -> Iterator[str]:
        keys = list(self.store)
        return iter(([""] if self.sub in keys else []) + [k[len(self.prefix):] for k in keys
                                                          if k.startswith(self.prefix)])

    def __len__(self) -> int:
        return len(list(iter(self)))
