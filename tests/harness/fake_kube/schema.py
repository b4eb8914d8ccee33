"""How lists and maps merge: the slice of the Kubernetes OpenAPI extensions that patches need.

Real apiservers read `x-kubernetes-patch-merge-key` / `x-kubernetes-list-type` /
`x-kubernetes-list-map-keys` from the schema of each kind. The same field names carry the same
semantics across all built-in kinds, so the fake keys the rules by the field-name path (list
indices left out) and its tail, which covers every kind in the resource table.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

Path = Tuple[str, ...]

_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

# (path suffix, merge key). The first matching suffix wins, so specific rules come first.
_MERGE_KEYS: Tuple[Tuple[Path, str], ...] = tuple(
    [((c, "ports"), "containerPort") for c in _CONTAINER_LISTS]
    + [((c,), "name") for c in _CONTAINER_LISTS]
    + [
        (("env",), "name"),
        (("volumes",), "name"),
        (("volumeMounts",), "mountPath"),
        (("volumeDevices",), "devicePath"),
        (("imagePullSecrets",), "name"),
        (("hostAliases",), "ip"),
        (("conditions",), "type"),
        (("ownerReferences",), "uid"),
        (("topologySpreadConstraints",), "topologyKey"),
        (("resourceClaims",), "name"),
        (("containerStatuses",), "name"),
        (("initContainerStatuses",), "name"),
    ]
)

# primitive lists merged as sets
_SET_LISTS: Tuple[Path, ...] = (("metadata", "finalizers"),)

# maps replaced as a whole (x-kubernetes-map-type: atomic / structType atomic)
_ATOMIC_MAPS: Tuple[Path, ...] = (
    ("spec", "selector"),  # LabelSelector of workloads; Service selector is atomic too
    ("matchLabels",),
    ("nodeSelectorTerms",),
)


def _ends_with(path: Sequence[str], suffix: Path) -> bool:
    return len(path) >= len(suffix) and tuple(path[len(path) - len(suffix):]) == suffix


def merge_key(path: Sequence[str]) -> Optional[str]:
    """The strategic-merge / apply key of the list at `path` (field names only), or None if atomic."""
    path = tuple(path)
    if path == ("spec", "ports"):  # Service ports
        return "port"
    if path == ("status", "addresses"):  # Node addresses
        return "type"
    for suffix, key in _MERGE_KEYS:
        if _ends_with(path, suffix):
            if suffix == ("conditions",) and "status" not in path:
                continue  # only status conditions are keyed by type
            return key
    return None


def is_set_list(path: Sequence[str]) -> bool:
    return tuple(path) in _SET_LISTS or _ends_with(path, ("finalizers",))


def is_atomic_map(path: Sequence[str]) -> bool:
    path = tuple(path)
    return path in _ATOMIC_MAPS or any(_ends_with(path, p) for p in _ATOMIC_MAPS[1:])
