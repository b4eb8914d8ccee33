"""Decoding a body into the kind's typed object, as kube-apiserver's JSON decoder does.

A real server unmarshals every request body into Go structs before anything else looks at it. What
does not fit fails the request with 400 BadRequest before validation runs:
`Deployment in version "v1" cannot be handled as a Deployment: <decoder error>`, where the decoder
error is Go's (`json: cannot unmarshal string into Go struct field ContainerPort.spec.template.spec.
containers.ports.containerPort of type int32`), a `resource.Quantity` that does not parse
(`quantities must match the regular expression ...`: `16GB`), a `metav1.Time`/`MicroTime` in the
wrong layout, or Secret data that is not base64.

The Go types come from the OpenAPI schemas of Kubernetes 1.32 that the `kubernetes-validate`
package ships (see `fields.py`): `type`, `format` (int32, int64, double, byte, date-time), the
`Quantity` and `IntOrString` definitions, and `required`. Decoding also normalises what Go would
re-serialise differently: quantities come back canonical (`0.5` -> `500m`, `1` -> `"1"`).

`decode(obj)` changes `obj` in place and returns the paths of missing required fields (outside
`status`), which validation reports as 422 `Required value`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Dict, List, Optional, Tuple

from . import gotime, quantity
from .fields import SCHEMAS

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIMES = {META + "Time": gotime.RFC3339, META + "MicroTime": gotime.RFC3339_MICRO}
_REF = re.compile(r"#/\$defs/(.+)$")
INT_RANGES = {"int32": (-2 ** 31, 2 ** 31 - 1), "int64": (-2 ** 63, 2 ** 63 - 1)}

# required in the schema, but reported by the real validation code in its own words, or not at all
# (defaulted by the server, or optional in practice): (definition, field) -> None to skip
REQUIRED_EXCEPTIONS = {
    ("io.k8s.api.core.v1.ServicePort", "port"),  # "Invalid value: 0: must be between 1 and 65535"
    ("io.k8s.api.authentication.v1.TokenRequestSpec", "audiences"),  # defaulted to the API server's
    ("io.k8s.api.apps.v1.StatefulSetSpec", "serviceName"),
    ("io.k8s.api.node.v1.RuntimeClass", "handler"),  # checked as a DNS label
    ("io.k8s.api.core.v1.Event", "metadata"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "apiVersion"),  # validation's own messages
    ("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "kind"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "name"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "uid"),
    ("io.k8s.api.rbac.v1.PolicyRule", "verbs"),
    ("io.k8s.api.rbac.v1.RoleRef", "apiGroup"),
    ("io.k8s.api.rbac.v1.RoleRef", "kind"),
    ("io.k8s.api.rbac.v1.Subject", "kind"),
}


class DecodeError(ValueError):
    """The body does not decode into the typed object: Go's error text."""


def _ref_name(schema: Dict[str, Any]) -> Optional[str]:
    match = _REF.search(schema.get("$ref", ""))
    return match.group(1) if match else None


def _types(schema: Dict[str, Any]) -> Tuple[str, ...]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return tuple(k for k in kind if k != "null")
    return (kind,) if isinstance(kind, str) else ()


class Decoder:
    def __init__(self) -> None:
        self.required: List[str] = []

    def resolve(self, schema: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional[str]]:
        name = None
        while "$ref" in schema:
            name = _ref_name(schema)
            if name is None:
                return {}, None
            schema = SCHEMAS._definitions().get(name, {})
        return schema, name

    # -------------------------------------------------------------- Go type names for messages
    def go_type(self, schema: Dict[str, Any]) -> str:
        resolved, name = self.resolve(schema)
        if name == QUANTITY:
            return "resource.Quantity"
        if name == INT_OR_STRING:
            return "intstr.IntOrString"
        if name in TIMES:
            return "v1." + name.rsplit(".", 1)[-1]
        types = _types(resolved)
        if name and (resolved.get("properties") is not None or "object" in types):
            return name.rsplit(".", 2)[-2] + "." + name.rsplit(".", 1)[-1]
        if "array" in types:
            return "[]" + self.go_type(resolved.get("items") or {})
        if "object" in types:
            extra = resolved.get("additionalProperties")
            return "map[string]" + (self.go_type(extra) if isinstance(extra, dict) else "interface {}")
        if "integer" in types:
            return resolved.get("format") or "int64"
        if "number" in types:
            return "float64"
        if "boolean" in types:
            return "bool"
        if "string" in types:
            return "[]uint8" if resolved.get("format") == "byte" else "string"
        return "interface {}"

    @staticmethod
    def _json_kind(value: Any, literal: bool = False) -> str:
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, (int, float)):
            return f"number {value}" if literal else "number"
        if isinstance(value, str):
            return "string"
        if isinstance(value, list):
            return "array"
        return "object"

    def _type_error(self, value: Any, struct: str, names: List[str], schema: Dict[str, Any],
                    literal: bool = False) -> DecodeError:
        where = f"Go struct field {struct}.{'.'.join(names)}" if struct else "Go value"
        return DecodeError(f"json: cannot unmarshal {self._json_kind(value, literal)} into {where} of type "
                           f"{self.go_type(schema)}")

    # -------------------------------------------------------------- the walk
    def value(self, value: Any, schema: Dict[str, Any], struct: str, names: List[str], path: str,
              in_status: bool) -> Any:
        """Check `value` against `schema`; returns the value to store (quantities canonical)."""
        if value is None:
            return value  # null decodes to the zero value everywhere
        resolved, name = self.resolve(schema)
        if resolved.get("x-kubernetes-preserve-unknown-fields"):
            return value
        if name == QUANTITY:
            try:
                return quantity.canonical(value)
            except quantity.QuantityError as err:
                raise DecodeError(str(err)) from None
        if name == INT_OR_STRING:
            if isinstance(value, str):
                return value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DecodeError(f"json: cannot unmarshal {self._json_kind(value)} into Go value of type int32")
            if isinstance(value, float) or not INT_RANGES["int32"][0] <= value <= INT_RANGES["int32"][1]:
                raise DecodeError(f"json: cannot unmarshal number {value} into Go value of type int32")
            return value
        if name in TIMES:
            if not isinstance(value, str):
                raise DecodeError(f"json: cannot unmarshal {self._json_kind(value)} into Go value of type string")
            try:
                gotime.parse(value, TIMES[name])
            except gotime.GoTimeError as err:
                raise DecodeError(str(err)) from None
            return value
        types = _types(resolved)
        if not types:
            return value
        if "object" in types or resolved.get("properties") is not None:
            if not isinstance(value, dict):
                raise self._type_error(value, struct, names, schema)
            props = resolved.get("properties")
            if props is not None:
                own = name.rsplit(".", 1)[-1] if name else struct
                self.struct(value, resolved, name or "", own, names, path, in_status)
                return value
            extra = resolved.get("additionalProperties")
            if isinstance(extra, dict):
                for key in list(value):
                    value[key] = self.value(value[key], extra, struct, names, f"{path}[{key}]", in_status)
            return value
        if "array" in types:
            if not isinstance(value, list):
                raise self._type_error(value, struct, names, schema)
            items = resolved.get("items") or {}
            for index, item in enumerate(value):
                value[index] = self.value(item, items, struct, names, f"{path}[{index}]", in_status)
            return value
        if "integer" in types:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._type_error(value, struct, names, schema)
            low, high = INT_RANGES.get(resolved.get("format") or "int64", INT_RANGES["int64"])
            if isinstance(value, float) or not low <= value <= high:
                raise self._type_error(value, struct, names, schema, literal=True)
            return value
        if "number" in types:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._type_error(value, struct, names, schema)
            return value
        if "boolean" in types:
            if not isinstance(value, bool):
                raise self._type_error(value, struct, names, schema)
            return value
        if "string" in types:
            if not isinstance(value, str):
                raise self._type_error(value, struct, names, schema)
            if resolved.get("format") == "byte":
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raise DecodeError(f"illegal base64 data at input byte {_bad_base64_offset(value)}") from None
            return value
        return value

    def struct(self, obj: Dict[str, Any], schema: Dict[str, Any], definition: str, struct: str,
               names: List[str], path: str, in_status: bool) -> None:
        props = schema.get("properties") or {}
        if not in_status:  # the parent's missing fields first, as validation reports them
            for key in schema.get("required") or ():
                if (definition, key) in REQUIRED_EXCEPTIONS:
                    continue
                present = obj.get(key)
                if present is None or present == "" or present == [] or present == {} or \
                        (present == 0 and not isinstance(present, bool)):
                    self.required.append(f"{path}.{key}" if path else key)
        for key in list(obj):
            if key not in props:
                continue  # unknown fields: fields.py drops, warns about or rejects them
            child_path = f"{path}.{key}" if path else key
            obj[key] = self.value(obj[key], props[key], struct, names + [key], child_path,
                                  in_status or (not path and key == "status"))


def _bad_base64_offset(value: str) -> int:
    """Where Go's base64 decoder gives up: the first byte outside the alphabet, else the padding."""
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for index, char in enumerate(value):
        if char == "=":
            return index if (len(value) % 4 or index < len(value) - 2) else index
        if char not in alphabet and char not in "\r\n":
            return index
    return len(value) - len(value) % 4 if len(value) % 4 else len(value)


def decode(obj: Dict[str, Any]) -> List[str]:
    """Check and normalise `obj` (apiVersion/kind set); DecodeError when Go could not decode it."""
    schema = SCHEMAS.schema(obj.get("apiVersion", ""), obj.get("kind", ""))
    if schema is None:
        return []
    decoder = Decoder()
    decoder.struct(obj, schema, _definition_of(obj), obj.get("kind", ""), [], "", False)
    return decoder.required


def _definition_of(obj: Dict[str, Any]) -> str:
    group_version = obj.get("apiVersion", "")
    group, _sep, version = group_version.rpartition("/")
    prefix = "io.k8s.api." + ((group.split(".")[0]) if group else "core")
    return f"{prefix}.{version}.{obj.get('kind', '')}"
