"""Kubernetes `Status` error bodies and the exception that carries them.

Every failure the fake API server returns is a real `kind: Status` object, shaped like the one
kube-apiserver sends, so clients (kubectl, the kubernetes Python client, kubernetes.core) parse it
exactly as they would against a cluster.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(
    code: int,
    message: str,
    reason: Optional[str] = None,
    name: Optional[str] = None,
    group: Optional[str] = None,
    kind: Optional[str] = None,
    causes: Optional[List[Dict[str, str]]] = None,
    details: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Build a failure `Status` the way apimachinery's `errors.New*` helpers do."""
    body: Dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, ""),
        "code": code,
    }
    det: Dict[str, Any] = dict(details or {})
    if name is not None:
        det["name"] = name
    if group:
        det["group"] = group
    if kind is not None:
        det["kind"] = kind
    if causes:
        det["causes"] = causes
    if det:
        body["details"] = det
    return body


def success_status(name: str, group: str, kind: str, uid: str) -> Dict[str, Any]:
    """The `Status` a DELETE returns once the object is gone (no object left to return)."""
    details: Dict[str, Any] = {"name": name, "kind": kind, "uid": uid}
    if group:
        details["group"] = group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


class ApiError(Exception):
    """An error answered to the client as a `Status` body with an HTTP code."""

    def __init__(self, code: int, message: str, **kwargs: Any) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_body(code, message, **kwargs)


def qualified(resource_plural: str, group: str) -> str:
    """`deployments.apps` / `pods`: the resource name as apiserver messages spell it."""
    return f"{resource_plural}.{group}" if group else resource_plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, f'{qualified(plural, group)} "{name}" not found', name=name, group=group, kind=plural)


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409, f'{qualified(plural, group)} "{name}" already exists', reason="AlreadyExists",
        name=name, group=group, kind=plural,
    )


def conflict(plural: str, group: str, name: str, why: str, causes: Optional[List[Dict[str, str]]] = None) -> ApiError:
    return ApiError(
        409, f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
        reason="Conflict", name=name, group=group, kind=plural, causes=causes,
    )


def invalid(kind: str, group: str, name: str, causes: List[Dict[str, str]]) -> ApiError:
    """422 like `errors.NewInvalid`: `Deployment.apps "x" is invalid: <field>: <message>`."""
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    return ApiError(
        422, f'{qualified_kind} "{name}" is invalid: {summary}',
        reason="Invalid", name=name, group=group, kind=kind, causes=causes,
    )


def field_error(field: str, message: str, type_: str = "FieldValueInvalid") -> Dict[str, str]:
    return {"reason": type_, "message": message, "field": field}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, message)
