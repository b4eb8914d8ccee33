"""A container's environment as the kubelet builds it (makeEnvironmentVariables): service links of the
pod's namespace (`enableServiceLinks`, default on: a Service called `vllm` gives every pod there
`VLLM_PORT=tcp://...`), the image's Env, `envFrom`, then `env` with `$(VAR)` expansion, `valueFrom`
secretKeyRef / configMapKeyRef / fieldRef / resourceFieldRef. A missing Secret, ConfigMap or key that is
not `optional` is a CreateContainerConfigError with the kubelet's message."""

from __future__ import annotations

import base64
import re
from typing import Any, Dict, Optional

from .objects import Obj, container_requests


class ConfigError(Exception):
    """The container cannot be created: CreateContainerConfigError with this message."""


def field_value(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    simple = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
              "status.podIP": status.get("podIP", ""), "status.hostIP": status.get("hostIP", ""),
              "status.podIPs": status.get("podIP", ""), "status.hostIPs": status.get("hostIP", "")}
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get(path.split(".")[1]) or {}).items()))
    return ""


def _service_links(services: Dict[Any, Obj], namespace: str) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for (ns, name), svc in sorted(services.items()):
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if ns != namespace and not (ns == "default" and name == "kubernetes"):
            continue
        if not ip or ip == "None" or not spec.get("ports"):
            continue
        prefix = name.upper().replace("-", "_")
        first = spec["ports"][0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first["port"])
        env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for port in spec["ports"]:
            proto = port.get("protocol", "TCP")
            base = f"{prefix}_PORT_{port['port']}_{proto}"
            env[base] = f"{proto.lower()}://{ip}:{port['port']}"
            env[base + "_PROTO"] = proto.lower()
            env[base + "_PORT"] = str(port["port"])
            env[base + "_ADDR"] = ip
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
    return env


def _expand(value: str, env: Dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _key_ref(kind: str, cache: Dict[Any, Obj], namespace: str, ref: Obj) -> Optional[str]:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    obj = cache.get((namespace, name))
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    if kind == "Secret":
        data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    else:
        data = dict(obj.get("data") or {})
    if key not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def container_env(pod: Obj, container: Obj, caches: Dict[str, Dict[Any, Obj]],
                  image_env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    namespace = pod["metadata"].get("namespace", "")
    env: Dict[str, str] = dict(image_env or {})
    if (pod.get("spec") or {}).get("enableServiceLinks", True):
        env.update(_service_links(caches["services"], namespace))
    else:
        env.update({k: v for k, v in _service_links(caches["services"], namespace).items()
                    if k.startswith("KUBERNETES_")})
    env.setdefault("HOSTNAME", pod["metadata"].get("name", ""))
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, cache_name, key in (("ConfigMap", "configmaps", "configMapRef"), ("Secret", "secrets", "secretRef")):
            ref = source.get(key)
            if ref is None:
                continue
            obj = caches[cache_name].get((namespace, ref.get("name", "")))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            data = obj.get("data") or {}
            for name, value in data.items():
                env[prefix + name] = base64.b64decode(value).decode(errors="replace") if kind == "Secret" else value
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = _expand(str(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        value: Optional[str] = None
        if "secretKeyRef" in source:
            value = _key_ref("Secret", caches["secrets"], namespace, source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref("ConfigMap", caches["configmaps"], namespace, source["configMapKeyRef"])
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            resource = source["resourceFieldRef"].get("resource", "")
            value = str(int(container_requests(container).get(resource.split(".", 1)[-1], 0)))
        if value is not None:
            env[name] = value
    return env
