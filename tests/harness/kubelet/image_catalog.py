"""The public images the simulated node knows without a registry: which tags exist, their ENTRYPOINT/CMD,
size and the tools they carry (a command an image lacks fails like on a real node).

Sources: vllm/vllm-openai tags = "v" + each vLLM release (plugins/module_utils/compat_data.py, from PyPI),
optionally with a CUDA variant suffix; entrypoint `python3 -m vllm.entrypoints.openai.api_server` (vLLM's
docker/Dockerfile, vllm-openai stage) for tags before v0.12.0 and `vllm serve` from then on, as
tests/harness/oci_registry.py records them for the images it builds; compressed sizes as Docker Hub shows
them (rounded). Library images: their Dockerfiles (busybox/alpine CMD sh, python CMD python3, nginx
docker-entrypoint.sh nginx -g "daemon off;", the pause image /pause, NVIDIA's device plugin image
nvidia-device-plugin and config-manager on a distroless base).

A repository this table does not know is taken to exist with any tag (the simulator cannot know every
registry); a tag of a repository it knows but does not list fails like a real pull (`not found`)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Tuple

try:
    from ansible_collections.baremetal.gpu.plugins.module_utils import compat_data
except ImportError:  # run outside pytest (scripts/fake-cluster): the checkout's collection link
    sys.path.append(str(Path(__file__).resolve().parents[3] / ".collections"))
    from ansible_collections.baremetal.gpu.plugins.module_utils import compat_data

MB = 1000 * 1000
COREUTILS = frozenset({"sh", "dash", "bash", "true", "false", "echo", "printf", "cat", "test", "[", "sleep", "date",
                       "env", "ls", "mkdir", "touch", "rm", "cp", "grep", "head", "tail", "id", "kill", "ps"})
BUSYBOX = frozenset((COREUTILS - {"bash", "dash"}) | {"ash", "wget", "vi", "nc", "busybox"})
DEBIAN = COREUTILS
PYTHON = DEBIAN | {"python", "python3", "pip", "pip3"}
VLLM_TOOLS = PYTHON | {"vllm", "curl", "nvidia-smi", "git", "uv", "huggingface-cli"}


@dataclass
class ImageInfo:
    """What the node knows of an image once pulled: its config (entrypoint, cmd, env) and size."""

    reference: str  # as the pod names it
    repository: str  # normalised, e.g. docker.io/library/busybox
    tag: str
    entrypoint: List[str] = field(default_factory=list)
    cmd: List[str] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)
    size: int = 50 * MB
    digest: str = ""
    tools: Optional[FrozenSet[str]] = None  # None: not known (every command taken as present)


def normalise(reference: str) -> Tuple[str, str, str]:
    """(registry host, repository path, tag or @digest) of an image reference, as containerd resolves it."""
    ref = reference.strip()
    digest = ""
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    first, _sep, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", ref
    tag = ""
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    if host == "docker.io" and "/" not in path:
        path = "library/" + path
    return host, path, ("@" + digest) if digest else (tag or "latest")


def full_name(reference: str) -> str:
    host, path, tag = normalise(reference)
    return f"{host}/{path}{tag if tag.startswith('@') else ':' + tag}"


def _vllm_tags() -> List[str]:
    tags = ["latest"]
    for release in compat_data.VLLM_RELEASES:
        tags.append("v" + release)
        tags.extend(f"v{release}-{suffix}" for suffix in compat_data.VLLM_TAG_CUDA_SUFFIXES)
    return tags


def _vllm_entrypoint(tag: str) -> List[str]:
    match = re.match(r"v(\d+)\.(\d+)", tag)
    if match and (int(match.group(1)), int(match.group(2))) < (0, 12):
        return ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    return ["vllm", "serve"]


VERSION_TAG = r"(latest|stable|[0-9][0-9A-Za-z.\-_]*)"
# repository -> (tag pattern, entrypoint, cmd, size in bytes, tools)
KNOWN: Dict[str, Tuple[str, List[str], List[str], int, Optional[FrozenSet[str]]]] = {
    "docker.io/vllm/vllm-openai": ("|".join(re.escape(t) for t in _vllm_tags()), [], [], 8900 * MB, VLLM_TOOLS),
    "docker.io/library/busybox": (VERSION_TAG, [], ["sh"], 2 * MB, BUSYBOX),
    "docker.io/library/alpine": (VERSION_TAG, [], ["/bin/sh"], 4 * MB, BUSYBOX),
    "docker.io/library/python": (VERSION_TAG, [], ["python3"], 380 * MB, PYTHON),
    "docker.io/library/nginx": (VERSION_TAG, ["/docker-entrypoint.sh"], ["nginx", "-g", "daemon off;"], 70 * MB,
                                DEBIAN | {"nginx", "/docker-entrypoint.sh", "curl"}),
    "docker.io/library/postgres": (VERSION_TAG, ["docker-entrypoint.sh"], ["postgres"], 150 * MB,
                                   DEBIAN | {"postgres", "psql", "pg_isready", "docker-entrypoint.sh"}),
    "registry.k8s.io/pause": (r"3\.[0-9]+", ["/pause"], [], 300 * 1000, frozenset({"/pause", "pause"})),
    "docker.io/rancher/mirrored-pause": (r"3\.[0-9]+", ["/pause"], [], 300 * 1000, frozenset({"/pause", "pause"})),
    "nvcr.io/nvidia/k8s-device-plugin": (r"v0\.1[4-9]\.[0-9]+(-ubi8|-ubuntu20\.04)?", [], ["nvidia-device-plugin"],
                                         160 * MB, frozenset({"nvidia-device-plugin", "config-manager",
                                                              "gpu-feature-discovery", "mps-control-daemon"})),
}


def known_image(reference: str) -> Tuple[bool, Optional[ImageInfo]]:
    """(repository known?, the image when it exists). Unknown repositories: (False, a generic image)."""
    host, path, tag = normalise(reference)
    repository = f"{host}/{path}"
    entry = KNOWN.get(repository)
    if entry is None:
        return False, ImageInfo(reference, repository, tag)
    pattern, entrypoint, cmd, size, tools = entry
    if not tag.startswith("@") and not re.fullmatch(pattern, tag):
        return True, None
    if repository == "docker.io/vllm/vllm-openai":
        entrypoint = _vllm_entrypoint(tag)
    return True, ImageInfo(reference, repository, tag, list(entrypoint), list(cmd), {}, size, "", tools)
