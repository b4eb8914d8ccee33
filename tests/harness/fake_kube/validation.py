"""Validation (422 Invalid) as kube-apiserver's registry strategies do it for Kubernetes 1.32.

`validate(kind, obj, old, required)` returns field errors (`Status.details.causes`) for a decoded,
defaulted object: the schema's required fields that are missing (found by `decode.py`) plus the
hand-written rules of pkg/apis/core/validation, apps, rbac, coordination and node validation that
the collection's objects meet. Messages are the upstream ones (`field.ErrorList` texts):

- names: DNS-1123 subdomain / label, DNS-1035 label (Services), path segment (RBAC);
  labels, annotations, finalizers, owner references;
- pod specs (Pods and every template): containers and init containers (names, image,
  `imagePullPolicy`, ports 1-65535 and port names, env names, volumeMounts naming a volume that
  exists, probes, `resources` with extended resources such as `nvidia.com/gpu`: integers, no
  overcommit, a request needs a limit), volumes, restartPolicy, dnsPolicy, tolerations;
- workloads: selector matches template labels, template `restartPolicy` Always, replicas,
  Deployment strategy; Jobs: restartPolicy OnFailure/Never;
- Services (type, ports, names, targetPort, nodePort), ConfigMap/Secret keys, Leases (duration,
  transitions), RuntimeClass handler, RBAC rules, roleRef and subjects.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import quantity
from .errors import field_error
from .selectors import match_label_selector

Errors = List[Dict[str, str]]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")

MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
               "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
               "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
MSG_NAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                 "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                 "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
MSG_QUALIFIED = ("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                 "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
                 "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain "
                 "prefix and '/' (e.g. 'example.com/MyName')")
MSG_LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
MSG_CONFIG_KEY = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
                  "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
MSG_ENV_NAME = "a valid environment variable name must consist only of printable ASCII characters other than '='"
MSG_PORT_RANGE = "must be between 1 and 65535, inclusive"
MSG_NEGATIVE = "must be greater than or equal to 0"
MSG_IMMUTABLE = "field is immutable"

STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}
# resources whose overcommit is allowed: native (no domain, or *kubernetes.io/) and not hugepages
NATIVE_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
WORKLOADS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"}


# ------------------------------------------------------------------ field.Error constructors


def go_value(value: Any) -> str:
    """A value as field.Error prints it (%v for numbers and bools, %q for strings, %#v otherwise)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return "map[string]string{" + ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in
                                                sorted(value.items())) + "}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
    return json.dumps(value, sort_keys=True)


def required(path: str, detail: str = "") -> Dict[str, str]:
    return field_error(path, "Required value" + (f": {detail}" if detail else ""), "FieldValueRequired")


def invalid(path: str, value: Any, detail: str, rendered: Optional[str] = None) -> Dict[str, str]:
    shown = rendered if rendered is not None else go_value(value)
    return field_error(path, f"Invalid value: {shown}" + (f": {detail}" if detail else ""), "FieldValueInvalid")


def not_supported(path: str, value: Any, supported: Iterable[str]) -> Dict[str, str]:
    values = ", ".join(json.dumps(v) for v in supported)
    detail = f": supported values: {values}" if values else ""
    return field_error(path, f"Unsupported value: {go_value(value)}{detail}", "FieldValueNotSupported")


def not_found(path: str, value: Any) -> Dict[str, str]:
    return field_error(path, f"Not found: {go_value(value)}", "FieldValueNotFound")


def duplicate(path: str, value: Any) -> Dict[str, str]:
    return field_error(path, f"Duplicate value: {go_value(value)}", "FieldValueDuplicate")


def forbidden(path: str, detail: str) -> Dict[str, str]:
    return field_error(path, f"Forbidden: {detail}", "FieldValueForbidden")


# ------------------------------------------------------------------ k8s.io/apimachinery/pkg/util/validation


def dns1123_label(value: str) -> List[str]:
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not DNS1123_LABEL.match(value):
        out.append(MSG_LABEL)
    return out


def dns1123_subdomain(value: str) -> List[str]:
    out = []
    if len(value) > 253:
        out.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(value):
        out.append(MSG_SUBDOMAIN)
    return out


def dns1035_label(value: str) -> List[str]:
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not DNS1035_LABEL.match(value):
        out.append(MSG_DNS1035)
    return out


def path_segment(value: str) -> List[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in "/%" if c in value]


def qualified_name(value: str) -> List[str]:
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        found = ["prefix part " + m for m in dns1123_subdomain(prefix)]
        if found:
            return found + _name_part(name)
    else:
        return [MSG_QUALIFIED]
    return _name_part(name)


def _name_part(name: str) -> List[str]:
    if not name:
        return ["name part must be non-empty"]
    out = []
    if len(name) > 63:
        out.append("name part must be no more than 63 characters")
    if not QUALIFIED_NAME_PART.match(name):
        out.append(MSG_NAME_PART)
    return out


def label_value(value: str) -> List[str]:
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not LABEL_VALUE.match(value):
        out.append(MSG_LABEL_VALUE)
    return out


def port_name(value: str) -> List[str]:
    out = []
    if len(value) > 15:
        out.append("must be no more than 15 characters")
    if not PORT_NAME_CHARS.match(value):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        out.append("must not contain consecutive hyphens")
    if not any(c.isalpha() for c in value):
        out.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        out.append("must not begin or end with a hyphen")
    return out


def port_num_or_name(value: Any, path: str) -> Errors:
    if isinstance(value, int) and not isinstance(value, bool):
        return [] if 1 <= value <= 65535 else [invalid(path, value, MSG_PORT_RANGE)]
    if isinstance(value, str):
        if not value:
            return [required(path)]
        return [invalid(path, value, m) for m in port_name(value)]
    return [required(path)]


# ------------------------------------------------------------------ object metadata

NAME_RULES: Dict[str, Callable[[str], List[str]]] = {
    "Namespace": dns1123_label, "Service": dns1035_label,
    **{k: path_segment for k in RBAC_KINDS},
}


def _masked_prefix(name: str) -> str:
    """generateName is validated as if a valid suffix were appended (a trailing '-' is fine)."""
    return name + "a" if name else name


def validate_labels(labels: Any, path: str) -> Errors:
    errors: Errors = []
    for key, value in (labels or {}).items():
        errors += [invalid(path, key, m) for m in qualified_name(str(key))]
        errors += [invalid(path, value, m) for m in label_value(str(value))]
    return errors


def validate_meta(kind: str, obj: Dict[str, Any], namespaced: bool) -> Errors:
    meta = obj.get("metadata") or {}
    rule = NAME_RULES.get(kind, dns1123_subdomain)
    errors: Errors = []
    name, generate = meta.get("name") or "", meta.get("generateName") or ""
    if generate:
        errors += [invalid("metadata.generateName", generate, m) for m in rule(_masked_prefix(generate))]
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    else:
        errors += [invalid("metadata.name", name, m) for m in rule(name)]
    if namespaced and not meta.get("namespace"):
        errors.append(required("metadata.namespace"))
    errors += validate_labels(meta.get("labels"), "metadata.labels")
    for key in (meta.get("annotations") or {}):
        errors += [invalid("metadata.annotations", key, m) for m in qualified_name(key.lower())]
    size = sum(len(k) + len(str(v)) for k, v in (meta.get("annotations") or {}).items())
    if size > 256 * 1024:
        errors.append(field_error("metadata.annotations", f"Too long: must have at most {256 * 1024} bytes",
                                  "FieldValueTooLong"))
    for index, finalizer in enumerate(meta.get("finalizers") or []):
        where = f"metadata.finalizers[{index}]"
        found = qualified_name(str(finalizer))
        errors += [invalid(where, finalizer, m) for m in found]
        if not found and "/" not in str(finalizer) and finalizer not in STANDARD_FINALIZERS:
            errors.append(invalid(where, finalizer, "name is neither a standard finalizer name nor is it fully "
                                                    "qualified"))
    controllers = []
    for ref in meta.get("ownerReferences") or []:
        for key, what in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not ref.get(key):
                errors.append(invalid(f"metadata.ownerReferences.{key}", "", f"{what} must not be empty"))
        if ref.get("controller"):
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        errors.append(invalid("metadata.ownerReferences", meta.get("ownerReferences"),
                              "Only one reference can have Controller set to true. Found \"true\" in references "
                              f"for {' and '.join(controllers)}", rendered="[]v1.OwnerReference{...}"))
    return errors


def validate_meta_update(obj: Dict[str, Any], old: Dict[str, Any]) -> Errors:
    meta, old_meta = obj.get("metadata") or {}, old.get("metadata") or {}
    errors: Errors = []
    new_gen, old_gen = meta.get("generation"), old_meta.get("generation")
    if isinstance(new_gen, int) and isinstance(old_gen, int) and new_gen < old_gen:
        errors.append(invalid("metadata.generation", new_gen, "must not be decremented"))
    if old_meta.get("deletionTimestamp"):
        extra = sorted(set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or []))
        if extra:
            errors.append(forbidden("metadata.finalizers", "no new finalizers can be added if the object is being "
                                                           f"deleted, found new finalizers {go_value(extra)}"))
    return errors


# ------------------------------------------------------------------ pods


def _is_native(resource: str) -> bool:
    return "/" not in resource or "kubernetes.io/" in resource


def _overcommit_allowed(resource: str) -> bool:
    return _is_native(resource) and not resource.startswith("hugepages-")


def validate_resources(resources: Any, path: str) -> Errors:
    """ValidateContainerResourceRequirements (pkg/apis/core/validation)."""
    if not isinstance(resources, dict):
        return []
    errors: Errors = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    parsed_limits = {}
    for name, value in limits.items():
        where = f"{path}.limits[{name}]"
        errors += _resource_name(name, where)
        errors += _quantity_value(name, value, where)
        parsed_limits[name] = quantity.parse(value)
    for name, value in requests.items():
        where = f"{path}.requests[{name}]"
        errors += _resource_name(name, where)
        errors += _quantity_value(name, value, where)
        request = quantity.parse(value)
        if name in limits:
            limit = parsed_limits[name]
            if request.value != limit.value and not _overcommit_allowed(name):
                errors.append(invalid(where, str(request), f"must be equal to {name} limit of {limit}"))
            elif request.value > limit.value:
                errors.append(invalid(where, str(request), f"must be less than or equal to {name} limit of "
                                                           f"{limit}"))
        elif not _overcommit_allowed(name):
            errors.append(required(f"{path}.limits[{name}]", "Limit must be set for non overcommitable resources"))
    return errors


def _resource_name(name: str, path: str) -> Errors:
    found = qualified_name(name)
    if found:
        return [invalid(path, name, m) for m in found]
    if "/" not in name and name not in NATIVE_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
        return [invalid(path, name, "must be a standard resource for containers")]
    return []


def _quantity_value(name: str, value: Any, path: str) -> Errors:
    parsed = quantity.parse(value)
    errors: Errors = []
    if parsed.value < 0:
        errors.append(invalid(path, str(parsed), MSG_NEGATIVE))
    integer_resource = not _is_native(name) and not name.startswith("requests.")
    if integer_resource and not parsed.is_integer():
        errors.append(invalid(path, value, "must be an integer", rendered=quantity.go_repr(value)))
    return errors


PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def validate_probe(probe: Any, path: str, kind: str) -> Errors:
    if not isinstance(probe, dict):
        return []
    errors: Errors = []
    handlers = [h for h in PROBE_HANDLERS if probe.get(h) is not None]
    if not handlers:
        errors.append(required(path, "must specify a handler type"))
    for extra in handlers[1:]:
        errors.append(forbidden(f"{path}.{extra}", "may not specify more than 1 handler type"))
    http = probe.get("httpGet")
    if isinstance(http, dict):
        errors += port_num_or_name(http.get("port"), f"{path}.httpGet.port")
        scheme = http.get("scheme")
        if scheme not in ("HTTP", "HTTPS"):
            errors.append(not_supported(f"{path}.httpGet.scheme", scheme, ["HTTP", "HTTPS"]))
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        errors += port_num_or_name(tcp.get("port"), f"{path}.tcpSocket.port")
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold",
                "terminationGracePeriodSeconds"):
        value = probe.get(key)
        if isinstance(value, int) and value < 0:
            errors.append(invalid(f"{path}.{key}", value, MSG_NEGATIVE))
    if kind in ("livenessProbe", "startupProbe") and probe.get("successThreshold") not in (None, 1):
        errors.append(invalid(f"{path}.successThreshold", probe["successThreshold"], "must be 1"))
    return errors


def _enum(value: Any, path: str, allowed: List[str], required_when_empty: bool = True) -> Errors:
    if value in (None, ""):
        return [required(path)] if required_when_empty else []
    if value not in allowed:
        return [not_supported(path, value, allowed)]
    return []


def validate_container(container: Dict[str, Any], path: str, volumes: Dict[str, Any],
                       port_names: Dict[str, str], init: bool) -> Errors:
    errors: Errors = []
    name = container.get("name")
    if name:
        errors += [invalid(f"{path}.name", name, m) for m in dns1123_label(name)]
    image = container.get("image")
    if not image:
        errors.append(required(f"{path}.image"))
    elif image != image.strip():
        errors.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    for index, port in enumerate(container.get("ports") or []):
        where = f"{path}.ports[{index}]"
        number = port.get("containerPort")
        if number:
            if not 1 <= number <= 65535:
                errors.append(invalid(f"{where}.containerPort", number, MSG_PORT_RANGE))
        host = port.get("hostPort")
        if host and not 1 <= host <= 65535:
            errors.append(invalid(f"{where}.hostPort", host, MSG_PORT_RANGE))
        errors += _enum(port.get("protocol"), f"{where}.protocol", ["SCTP", "TCP", "UDP"])
        pname = port.get("name")
        if pname:
            errors += [invalid(f"{where}.name", pname, m) for m in port_name(pname)]
            if pname in port_names:
                errors.append(duplicate(f"{where}.name", pname))
            port_names[pname] = where
    for index, env in enumerate(container.get("env") or []):
        where = f"{path}.env[{index}]"
        env_name = env.get("name") or ""
        if env_name and (any(not 32 <= ord(c) <= 126 for c in env_name) or "=" in env_name):
            errors.append(invalid(f"{where}.name", env_name, MSG_ENV_NAME))
        source = env.get("valueFrom")
        if isinstance(source, dict):
            chosen = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                      if source.get(k) is not None]
            if env.get("value"):
                errors.append(invalid(f"{where}.valueFrom", "", "may not be specified when `value` is not empty",
                                      rendered='""'))
            if not chosen:
                errors.append(invalid(f"{where}.valueFrom", "", "must specify one of: `fieldRef`, "
                                                                "`resourceFieldRef`, `configMapKeyRef` or "
                                                                "`secretKeyRef`", rendered='""'))
            elif len(chosen) > 1:
                errors.append(invalid(f"{where}.valueFrom", "", "may not have more than one field specified at "
                                                                "a time", rendered='""'))
    mount_paths = set()
    for index, mount in enumerate(container.get("volumeMounts") or []):
        where = f"{path}.volumeMounts[{index}]"
        mname = mount.get("name")
        if mname and mname not in volumes:
            errors.append(not_found(f"{where}.name", mname))
        mpath = mount.get("mountPath")
        if mpath:
            if mpath in mount_paths:
                errors.append(invalid(f"{where}.mountPath", mpath, "must be unique"))
            mount_paths.add(mpath)
    errors += validate_resources(container.get("resources"), f"{path}.resources")
    for probe_kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if init and container.get(probe_kind) is not None and container.get("restartPolicy") != "Always":
            errors.append(forbidden(f"{path}.{probe_kind}",
                                    "may not be set for init containers without restartPolicy=Always"))
            continue
        errors += validate_probe(container.get(probe_kind), f"{path}.{probe_kind}", probe_kind)
    errors += _enum(container.get("imagePullPolicy"), f"{path}.imagePullPolicy", ["Always", "IfNotPresent",
                                                                                  "Never"])
    errors += _enum(container.get("terminationMessagePolicy"), f"{path}.terminationMessagePolicy",
                    ["FallbackToLogsOnError", "File"])
    return errors


VOLUME_SOURCES = ("hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
                  "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
                  "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
                  "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
                  "image")


def validate_pod_spec(spec: Any, path: str, template: bool = False) -> Errors:
    if not isinstance(spec, dict):
        return []
    errors: Errors = []
    volumes: Dict[str, Any] = {}
    for index, volume in enumerate(spec.get("volumes") or []):
        where = f"{path}.volumes[{index}]"
        vname = volume.get("name")
        if vname:
            errors += [invalid(f"{where}.name", vname, m) for m in dns1123_label(vname)]
            if vname in volumes:
                errors.append(duplicate(f"{where}.name", vname))
            volumes[vname] = volume
        sources = [s for s in VOLUME_SOURCES if volume.get(s) is not None]
        if not sources:
            errors.append(required(where, "must specify a volume type"))
        for extra in sources[1:]:
            errors.append(forbidden(f"{where}.{extra}", "may not specify more than 1 volume type"))
    names: Dict[str, str] = {}
    port_names: Dict[str, str] = {}
    for key, init in (("initContainers", True), ("containers", False)):
        for index, container in enumerate(spec.get(key) or []):
            where = f"{path}.{key}[{index}]"
            cname = container.get("name")
            if cname and cname in names:
                errors.append(duplicate(f"{where}.name", cname))
            if cname:
                names[cname] = where
            errors += validate_container(container, where, volumes, port_names, init)
    errors += _enum(spec.get("restartPolicy"), f"{path}.restartPolicy", ["Always", "Never", "OnFailure"])
    errors += _enum(spec.get("dnsPolicy"), f"{path}.dnsPolicy", ["ClusterFirst", "ClusterFirstWithHostNet",
                                                                 "Default", "None"])
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        errors.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, MSG_NEGATIVE))
    for key in ("serviceAccountName", "runtimeClassName", "priorityClassName"):
        if spec.get(key):
            errors += [invalid(f"{path}.{key}", spec[key], m) for m in dns1123_subdomain(spec[key])]
    errors += validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    for index, toleration in enumerate(spec.get("tolerations") or []):
        where = f"{path}.tolerations[{index}]"
        operator = toleration.get("operator") or "Equal"
        if operator not in ("Equal", "Exists"):
            errors.append(not_supported(f"{where}.operator", operator, ["Equal", "Exists"]))
        if operator == "Exists" and toleration.get("value"):
            errors.append(invalid(f"{where}.operator", toleration, "value must be empty when `operator` is "
                                                                   "'Exists'", rendered="core.Toleration{...}"))
        if not toleration.get("key") and operator != "Exists":
            errors.append(invalid(f"{where}.operator", operator, "operator must be Exists when `key` is empty, "
                                                                 "which means \"match all values and all keys\""))
        if toleration.get("key"):
            errors += [invalid(f"{where}.key", toleration["key"], m) for m in qualified_name(toleration["key"])]
        effect = toleration.get("effect")
        if effect:
            errors += _enum(effect, f"{where}.effect", ["NoExecute", "NoSchedule", "PreferNoSchedule"])
    return errors


# ------------------------------------------------------------------ apps, batch


def validate_template_for_replicas(template: Any, path: str) -> Errors:
    """ValidatePodTemplateSpecForReplicaSet / Deployment / StatefulSet / DaemonSet."""
    spec = (template or {}).get("spec") or {}
    errors: Errors = []
    policy = spec.get("restartPolicy")
    if policy != "Always":
        errors.append(not_supported(f"{path}.spec.restartPolicy", policy or "", ["Always"]))
    if spec.get("activeDeadlineSeconds") is not None:
        errors.append(forbidden(f"{path}.spec.activeDeadlineSeconds",
                                "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return errors


def _int_or_percent(value: Any, path: str) -> Errors:
    if isinstance(value, str):
        if not re.match(r"^[0-9]+%$", value):
            return [invalid(path, value, "a valid percent string must be a numeric string followed by an ending "
                                         "'%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]
        if int(value[:-1]) > 100 and path.endswith("maxUnavailable"):
            return [invalid(path, value, "must not be greater than 100%")]
    elif isinstance(value, int) and value < 0:
        return [invalid(path, value, MSG_NEGATIVE)]
    return []


def _is_zero(value: Any) -> bool:
    return value in (0, "0%")


def validate_workload(kind: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]]) -> Errors:
    spec = obj.get("spec") or {}
    errors: Errors = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector:
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errors.append(invalid("spec.selector", selector, f"empty selector is invalid for {kind.lower()}",
                                  rendered="v1.LabelSelector{MatchLabels:map[string]string(nil), "
                                           "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"))
        elif not match_label_selector(selector, labels):
            errors.append(invalid("spec.template.metadata.labels", labels,
                                  "`selector` does not match template `labels`"))
        errors += validate_labels(selector.get("matchLabels"), "spec.selector.matchLabels")
    errors += validate_labels(labels, "spec.template.metadata.labels")
    if template:
        errors += validate_template_for_replicas(template, "spec.template")
        errors += validate_pod_spec(template.get("spec"), "spec.template.spec", template=True)
    for key in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            errors.append(invalid(f"spec.{key}", value, MSG_NEGATIVE))
    if kind == "Deployment":
        strategy = spec.get("strategy") or {}
        stype = strategy.get("type")
        errors += _enum(stype, "spec.strategy.type", ["Recreate", "RollingUpdate"])
        rolling = strategy.get("rollingUpdate")
        if stype == "Recreate" and rolling is not None:
            errors.append(forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is "
                                                                   "'Recreate'"))
        if stype == "RollingUpdate" and isinstance(rolling, dict):
            surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
            errors += _int_or_percent(surge, "spec.strategy.rollingUpdate.maxSurge")
            errors += _int_or_percent(unavailable, "spec.strategy.rollingUpdate.maxUnavailable")
            if _is_zero(surge) and _is_zero(unavailable):
                errors.append(invalid("spec.strategy.rollingUpdate.maxUnavailable", unavailable,
                                      "may not be 0 when `maxSurge` is 0"))
        deadline = spec.get("progressDeadlineSeconds")
        if isinstance(deadline, int):
            if deadline <= int(spec.get("minReadySeconds") or 0):
                errors.append(invalid("spec.progressDeadlineSeconds", deadline,
                                      "must be greater than minReadySeconds"))
    if kind == "StatefulSet":
        errors += _enum(spec.get("podManagementPolicy"), "spec.podManagementPolicy", ["OrderedReady", "Parallel"])
        errors += _enum((spec.get("updateStrategy") or {}).get("type"), "spec.updateStrategy.type",
                        ["OnDelete", "RollingUpdate"])
    if kind == "DaemonSet":
        errors += _enum((spec.get("updateStrategy") or {}).get("type"), "spec.updateStrategy.type",
                        ["OnDelete", "RollingUpdate"])
    if old is not None and selector and (old.get("spec") or {}).get("selector") != selector:
        errors.append(invalid("spec.selector", selector, MSG_IMMUTABLE, rendered="v1.LabelSelector{...}"))
    return errors


def validate_job(obj: Dict[str, Any]) -> Errors:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    errors = validate_pod_spec(template.get("spec"), "spec.template.spec", template=True)
    policy = (template.get("spec") or {}).get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        errors.append(required("spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'))
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            errors.append(invalid(f"spec.{key}", value, MSG_NEGATIVE))
    return errors


# ------------------------------------------------------------------ core: services, config, leases, ...


def validate_service(obj: Dict[str, Any], old: Optional[Dict[str, Any]]) -> Errors:
    spec = obj.get("spec") or {}
    errors: Errors = []
    stype = spec.get("type")
    errors += _enum(stype, "spec.type", ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"])
    ports = spec.get("ports") or []
    if stype != "ExternalName" and spec.get("clusterIP") != "None" and not ports:
        errors.append(required("spec.ports"))
    names = set()
    for index, port in enumerate(ports):
        where = f"spec.ports[{index}]"
        pname = port.get("name") or ""
        if len(ports) > 1 and not pname:
            errors.append(required(f"{where}.name"))
        elif pname:
            errors += [invalid(f"{where}.name", pname, m) for m in dns1123_label(pname)]
            if pname in names:
                errors.append(duplicate(f"{where}.name", pname))
            names.add(pname)
        number = port.get("port") or 0
        if not 1 <= number <= 65535:
            errors.append(invalid(f"{where}.port", number, MSG_PORT_RANGE))
        errors += _enum(port.get("protocol"), f"{where}.protocol", ["SCTP", "TCP", "UDP"])
        target = port.get("targetPort")
        if target is not None:
            errors += port_num_or_name(target, f"{where}.targetPort")
        node_port = port.get("nodePort")
        if node_port and stype == "ClusterIP":
            errors.append(forbidden(f"{where}.nodePort", "may not be used when `type` is 'ClusterIP'"))
    errors += validate_labels(spec.get("selector"), "spec.selector")
    affinity = spec.get("sessionAffinity")
    if stype != "ExternalName":
        errors += _enum(affinity, "spec.sessionAffinity", ["ClientIP", "None"])
    if old is not None:
        old_ip = (old.get("spec") or {}).get("clusterIP")
        if old_ip and spec.get("clusterIP") != old_ip:
            errors.append(invalid("spec.clusterIPs[0]", [spec.get("clusterIP") or ""], "may not change once set",
                                  rendered=json.dumps([spec.get("clusterIP") or ""])))
    return errors


def validate_config_keys(obj: Dict[str, Any], kind: str, old: Optional[Dict[str, Any]]) -> Errors:
    errors: Errors = []
    for section in ("data", "binaryData", "stringData"):
        for key in (obj.get(section) or {}):
            if not CONFIG_KEY.match(key) or len(key) > 253:
                errors.append(invalid(f"{section}[{key}]", key, MSG_CONFIG_KEY))
            elif key in (".", "..") or key.startswith(".."):
                errors.append(invalid(f"{section}[{key}]", key, "must not be '.' or '..'" if key in (".", "..")
                                      else "must not start with '..'"))
    if kind == "Secret":
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if obj.get("type") == "kubernetes.io/service-account-token" and \
                not annotations.get("kubernetes.io/service-account.name"):
            errors.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
        if old is not None and old.get("type") != obj.get("type"):
            errors.append(invalid("type", obj.get("type"), MSG_IMMUTABLE))
    if old is not None and old.get("immutable"):
        for section in ("data", "binaryData"):
            if (obj.get(section) or {}) != (old.get(section) or {}):
                errors.append(forbidden(section, "field is immutable when `immutable` is set"))
        if not obj.get("immutable"):
            errors.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    return errors


def validate_lease(obj: Dict[str, Any]) -> Errors:
    spec = obj.get("spec") or {}
    errors: Errors = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errors.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        errors.append(invalid("spec.leaseTransitions", transitions, MSG_NEGATIVE))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        errors.append(forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
    return errors


def validate_rbac(kind: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]]) -> Errors:
    errors: Errors = []
    if kind in ("Role", "ClusterRole"):
        for index, rule in enumerate(obj.get("rules") or []):
            where = f"rules[{index}]"
            if not rule.get("verbs"):
                errors.append(required(f"{where}.verbs", "verbs must contain at least one value"))
            if rule.get("nonResourceURLs"):
                if kind == "Role":
                    errors.append(invalid(f"{where}.nonResourceURLs", rule["nonResourceURLs"],
                                          "namespaced rules cannot apply to non-resource URLs"))
                if rule.get("apiGroups") or rule.get("resources"):
                    errors.append(invalid(f"{where}.nonResourceURLs", rule["nonResourceURLs"],
                                          "rules cannot apply to both regular resources and non-resource URLs"))
                continue
            if not rule.get("apiGroups"):
                errors.append(required(f"{where}.apiGroups", "resource rules must supply at least one api group"))
            if not rule.get("resources"):
                errors.append(required(f"{where}.resources", "resource rules must supply at least one resource"))
        return errors
    ref = obj.get("roleRef") or {}
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        errors.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", ["rbac.authorization.k8s.io"]))
    allowed_kinds = ["ClusterRole"] if kind == "ClusterRoleBinding" else ["Role", "ClusterRole"]
    if ref.get("kind") not in allowed_kinds:
        errors.append(not_supported("roleRef.kind", ref.get("kind") or "", allowed_kinds))
    if ref.get("name"):
        errors += [invalid("roleRef.name", ref["name"], m) for m in path_segment(ref["name"])]
    for index, subject in enumerate(obj.get("subjects") or []):
        where = f"subjects[{index}]"
        skind = subject.get("kind")
        if not subject.get("name"):
            errors.append(required(f"{where}.name"))
        if skind == "ServiceAccount":
            if subject.get("apiGroup"):
                errors.append(not_supported(f"{where}.apiGroup", subject["apiGroup"], [""]))
            if kind == "ClusterRoleBinding" and not subject.get("namespace"):
                errors.append(required(f"{where}.namespace"))
        elif skind in ("User", "Group"):
            if subject.get("apiGroup") != "rbac.authorization.k8s.io":
                errors.append(not_supported(f"{where}.apiGroup", subject.get("apiGroup") or "",
                                            ["rbac.authorization.k8s.io"]))
        else:
            errors.append(not_supported(f"{where}.kind", skind or "", ["ServiceAccount", "User", "Group"]))
    if old is not None and (old.get("roleRef") or {}) != ref:
        errors.append(invalid("roleRef", ref, "cannot change roleRef", rendered="rbac.RoleRef{...}"))
    return errors


# ------------------------------------------------------------------ entry point


def validate(kind: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]] = None, namespaced: bool = False,
             missing: Optional[List[str]] = None) -> Errors:
    """Every field error of `obj` (defaulted); `missing` are required paths decode() found absent."""
    errors = validate_meta(kind, obj, namespaced)
    if old is not None:
        errors += validate_meta_update(obj, old)
    errors += [required(path) for path in missing or []]
    try:
        errors += _kind_rules(kind, obj, old)
    except (AttributeError, TypeError, KeyError) as err:  # a shape decode() let through: say so, stay isolated
        errors.append(invalid("", None, f"could not validate: {err!r}"))
    return errors


def _kind_rules(kind: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]]) -> Errors:
    if kind in WORKLOADS:
        return validate_workload(kind, obj, old)
    if kind == "Pod":
        return validate_pod_spec(obj.get("spec"), "spec")
    if kind == "Job":
        return validate_job(obj)
    if kind == "CronJob":
        job = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        return [dict(e, field="spec.jobTemplate." + e["field"]) for e in validate_job({"spec": job})]
    if kind == "Service":
        return validate_service(obj, old)
    if kind in ("ConfigMap", "Secret"):
        return validate_config_keys(obj, kind, old)
    if kind == "Lease":
        return validate_lease(obj)
    if kind in RBAC_KINDS:
        return validate_rbac(kind, obj, old)
    if kind == "RuntimeClass":
        handler = obj.get("handler") or ""
        return [invalid("handler", handler, m) for m in dns1123_label(handler)]
    return []
