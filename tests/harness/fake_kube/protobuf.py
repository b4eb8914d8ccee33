"""Decoding of the protobuf request bodies kubectl's typed clients send.

`kubectl create namespace|configmap|secret|serviceaccount|token` and `kubectl auth can-i|whoami` POST
`application/vnd.kubernetes.protobuf` (a `k8s\\0` magic, a `runtime.Unknown` envelope and the object's
generated protobuf). Only those kinds are mapped (field numbers from k8s.io/api generated.proto); anything
else is answered 415 like a server that does not speak protobuf for it, and clients fall back to manifests.
"""

from __future__ import annotations

import base64
from typing import Any, Dict, Optional, Tuple

MAGIC = b"k8s\x00"

Schema = Dict[int, Tuple[str, Any]]

OWNER_REFERENCE: Schema = {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                           5: ("apiVersion", "string"), 6: ("controller", "bool"),
                           7: ("blockOwnerDeletion", "bool")}
OBJECT_META: Schema = {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                       5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int"),
                       11: ("labels", "map_ss"), 12: ("annotations", "map_ss"),
                       13: ("ownerReferences", ("repeated_msg", OWNER_REFERENCE)),
                       14: ("finalizers", "repeated_string")}
LOCAL_REF: Schema = {1: ("name", "string")}
OBJECT_REF: Schema = {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"),
                      4: ("uid", "string"), 5: ("apiVersion", "string")}

KINDS: Dict[Tuple[str, str], Schema] = {
    ("v1", "Namespace"): {1: ("metadata", ("msg", OBJECT_META)),
                          2: ("spec", ("msg", {1: ("finalizers", "repeated_string")}))},
    ("v1", "ConfigMap"): {1: ("metadata", ("msg", OBJECT_META)), 2: ("data", "map_ss"),
                          3: ("binaryData", "map_sb"), 4: ("immutable", "bool")},
    ("v1", "Secret"): {1: ("metadata", ("msg", OBJECT_META)), 2: ("data", "map_sb"), 3: ("type", "string"),
                       4: ("stringData", "map_ss"), 5: ("immutable", "bool")},
    ("v1", "ServiceAccount"): {1: ("metadata", ("msg", OBJECT_META)),
                               2: ("secrets", ("repeated_msg", OBJECT_REF)),
                               3: ("imagePullSecrets", ("repeated_msg", LOCAL_REF)),
                               4: ("automountServiceAccountToken", "bool")},
    # kubectl auth can-i / auth whoami / create token (k8s.io/api/authorization|authentication/v1 generated.proto)
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): {
        1: ("metadata", ("msg", OBJECT_META)),
        2: ("spec", ("msg", {
            1: ("resourceAttributes", ("msg", {1: ("namespace", "string"), 2: ("verb", "string"),
                                               3: ("group", "string"), 4: ("version", "string"),
                                               5: ("resource", "string"), 6: ("subresource", "string"),
                                               7: ("name", "string")})),
            2: ("nonResourceAttributes", ("msg", {1: ("path", "string"), 2: ("verb", "string")}))}))},
    ("authentication.k8s.io/v1", "SelfSubjectReview"): {1: ("metadata", ("msg", OBJECT_META))},
    ("authentication.k8s.io/v1", "TokenRequest"): {
        1: ("metadata", ("msg", OBJECT_META)),
        2: ("spec", ("msg", {1: ("audiences", "repeated_string"), 4: ("expirationSeconds", "int"),
                             3: ("boundObjectRef", ("msg", {1: ("kind", "string"), 2: ("apiVersion", "string"),
                                                            3: ("name", "string"), 4: ("uid", "string")}))}))},
}


class Unsupported(ValueError):
    pass


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise Unsupported("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise Unsupported(f"wire type {wire}")
        yield number, value


def _decode(data: bytes, schema: Schema) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind == "string":
            if value:  # Go's omitempty: proto2 sends empty optional strings, JSON leaves them out
                out[name] = value.decode()
        elif kind == "int":
            if value:
                out[name] = value
        elif kind == "bool":
            out[name] = bool(value)
        elif kind in ("map_ss", "map_sb"):
            entry = dict(_fields(value))
            key = entry.get(1, b"").decode()
            raw = entry.get(2, b"")
            out.setdefault(name, {})[key] = raw.decode() if kind == "map_ss" else base64.b64encode(raw).decode()
        elif kind == "repeated_string":
            out.setdefault(name, []).append(value.decode())
        elif kind[0] == "msg":
            out[name] = _decode(value, kind[1])
        elif kind[0] == "repeated_msg":
            out.setdefault(name, []).append(_decode(value, kind[1]))
    return out


def decode(body: bytes) -> Dict[str, Any]:
    """A kubernetes protobuf body as JSON data, or Unsupported."""
    if not body.startswith(MAGIC):
        raise Unsupported("missing k8s protobuf magic")
    envelope = dict(_fields(body[len(MAGIC):]))
    type_meta = dict(_fields(envelope.get(1, b"")))
    api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
    schema: Optional[Schema] = KINDS.get((api_version, kind))
    if schema is None:
        raise Unsupported(f"no protobuf mapping for {api_version}/{kind}")
    obj = _decode(envelope.get(2, b""), schema)
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
