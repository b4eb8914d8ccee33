"""Unknown-field handling, as kube-apiserver does when it decodes a built-in object.

Fields not declared in the kind's schema are dropped from what is stored (decoding prunes them);
with `fieldValidation=Strict` the request fails with 400, with `Warn` (the server default) the
response carries one `Warning` header per field. Schemas are the Kubernetes 1.32 JSON schemas
shipped by the `kubernetes-validate` package (pinned in requirements.in); without it nothing is
pruned. A hand-written walker keeps this cheap enough to run on every write.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from typing import Any, Dict, List, Optional

# Only the package's data files are read: locate it without importing it (its import pulls in jsonschema,
# a tenth of a second at every start of the fake cluster). Without it the fake still works, only without pruning.
_SPEC = importlib.util.find_spec("kubernetes_validate")
SCHEMA_ROOT = os.path.dirname(_SPEC.origin) if _SPEC is not None and _SPEC.origin else None
HAS_SCHEMAS = SCHEMA_ROOT is not None

SCHEMA_VERSION = "v1.32.0-local-strict"
_REF = re.compile(r"#/\$defs/(.+)$")


class FieldSchemas:
    def __init__(self, version: str = SCHEMA_VERSION) -> None:
        self._dir = None
        if HAS_SCHEMAS:
            self._dir = os.path.join(SCHEMA_ROOT, "kubernetes-json-schema", version)
        self._defs: Optional[Dict[str, Any]] = None
        self._kinds: Dict[tuple, Optional[Dict[str, Any]]] = {}

    def _definitions(self) -> Dict[str, Any]:
        if self._defs is None:
            with open(os.path.join(self._dir, "_definitions.json"), encoding="utf-8") as handle:
                self._defs = json.load(handle)["$defs"]
        return self._defs

    def schema(self, api_version: str, kind: str) -> Optional[Dict[str, Any]]:
        key = (api_version, kind)
        if key not in self._kinds:
            found = None
            if self._dir:
                group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
                path = os.path.join(self._dir, f"{kind.lower()}-{group_version}.json")
                if os.path.exists(path):
                    with open(path, encoding="utf-8") as handle:
                        found = json.load(handle)
            self._kinds[key] = found
        return self._kinds[key]

    def _resolve(self, schema: Dict[str, Any]) -> Dict[str, Any]:
        while "$ref" in schema:
            match = _REF.search(schema["$ref"])
            if not match:
                return {}
            schema = self._definitions().get(match.group(1), {})
        return schema

    def unknown_fields(self, obj: Dict[str, Any], prune: bool = True) -> List[str]:
        """Paths of undeclared fields (`spec.foo`, `spec.containers[0].imagee`), removed when `prune`."""
        schema = self.schema(obj.get("apiVersion", ""), obj.get("kind", ""))
        found: List[str] = []
        if schema is not None:
            self._walk(obj, schema, "", found, prune)
        return found

    def _walk(self, value: Any, schema: Dict[str, Any], path: str, found: List[str], prune: bool) -> None:
        schema = self._resolve(schema)
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        if isinstance(value, dict):
            props = schema.get("properties")
            extra = schema.get("additionalProperties")
            if props is None and not isinstance(extra, dict) and extra is not False:
                return  # free-form object
            for key in list(value):
                child = f"{path}.{key}" if path else key
                if props and key in props:
                    self._walk(value[key], props[key], child, found, prune)
                elif isinstance(extra, dict):
                    self._walk(value[key], extra, child, found, prune)
                else:
                    found.append(child)
                    if prune:
                        del value[key]
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                self._walk(item, schema["items"], f"{path}[{index}]", found, prune)


SCHEMAS = FieldSchemas()
