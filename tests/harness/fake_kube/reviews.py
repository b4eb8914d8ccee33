"""Requests answered rather than stored: the TokenRequest subresource and the authentication /
authorization reviews (`kubectl create token`, `kubectl auth whoami`, `kubectl auth can-i`)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Dict

from .errors import ApiError, conflict, invalid
from .rbac import RequestAttributes, User, self_subject_access_review
from .tokens import API_AUDIENCES, DEFAULT_EXPIRATION, MIN_EXPIRATION

if TYPE_CHECKING:  # pragma: no cover
    from .api import FakeKubeAPI


def _stamp(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_request(api: "FakeKubeAPI", namespace: str, name: str, body: Any) -> Dict[str, Any]:
    """POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token (pkg/registry/core/serviceaccount/storage/token.go)."""
    if not isinstance(body, dict) or body.get("kind", "TokenRequest") != "TokenRequest":
        raise ApiError(400, "the body of the request was in an unknown format - accepted media types include: "
                            "application/json, application/yaml")
    account = api.registry.get(api.resource("ServiceAccount"), namespace, name)
    spec = dict(body.get("spec") or {})
    seconds = spec.get("expirationSeconds") or DEFAULT_EXPIRATION
    if not isinstance(seconds, int) or seconds < MIN_EXPIRATION:
        raise invalid("TokenRequest", "authentication.k8s.io", name, [{
            "reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
            "message": f"Invalid value: {seconds}: may not specify a duration less than 10 minutes"}])
    if seconds > 2 ** 32:
        raise invalid("TokenRequest", "authentication.k8s.io", name, [{
            "reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
            "message": f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"}])
    audiences = list(spec.get("audiences") or API_AUDIENCES)
    bound = None
    ref = spec.get("boundObjectRef")
    if ref:
        kind = ref.get("kind")
        if kind not in ("Pod", "Secret"):
            raise ApiError(400, f'cannot bind token to object of type {kind}')
        target = api.registry.get(api.resource(kind), namespace, ref.get("name", ""))
        if ref.get("uid") and ref["uid"] != target["metadata"]["uid"]:
            raise conflict(f"{kind.lower()}s", "", ref.get("name", ""),
                           f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record. "
                           "The object might have been deleted and then recreated")
        if kind == "Pod" and (target.get("spec") or {}).get("serviceAccountName") != name:
            raise ApiError(400, f'cannot bind token for serviceaccount "{name}" to pod running with different '
                                "serviceaccount name.")
        bound = {"kind": kind, "name": target["metadata"]["name"], "uid": target["metadata"]["uid"]}
    token, expires = api.issuer.bound_token(account, audiences, seconds, bound)
    spec.update({"audiences": audiences, "expirationSeconds": seconds})
    spec.setdefault("boundObjectRef", None)
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": spec, "status": {"token": token, "expirationTimestamp": _stamp(expires)}}


def _user_info(user: User) -> Dict[str, Any]:
    info: Dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    return info


def answer(api: "FakeKubeAPI", kind: str, user: User, body: Any) -> Dict[str, Any]:
    """The response to POSTing a review of `kind`."""
    body = body if isinstance(body, dict) else {}
    if kind == "SelfSubjectReview":
        return {"kind": kind, "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": None},
                "status": {"userInfo": _user_info(user)}}
    if kind == "SelfSubjectAccessReview":
        return self_subject_access_review(api.authorizer, user, body)
    if kind == "TokenReview":
        spec = body.get("spec") or {}
        found = api.authenticator.authenticate_token(spec.get("token", ""))
        status: Dict[str, Any] = {"authenticated": found is not None, "user": {}}
        if found is not None:
            status["user"] = _user_info(found)
            status["audiences"] = list(spec.get("audiences") or API_AUDIENCES)
        return {"kind": kind, "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": None},
                "spec": spec, "status": status}
    if kind == "SubjectAccessReview":
        spec = body.get("spec") or {}
        subject = User(spec.get("user", ""), list(spec.get("groups") or []), spec.get("uid", ""))
        resource, other = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if resource:
            attrs = RequestAttributes(resource.get("verb", ""), True, "", resource.get("group", ""),
                                      resource.get("resource", ""), resource.get("subresource", ""),
                                      resource.get("namespace", ""), resource.get("name", ""))
        else:
            attrs = RequestAttributes((other or {}).get("verb", ""), False, (other or {}).get("path", ""))
        allowed = api.authorizer.allowed(subject, attrs)
        return {"kind": kind, "apiVersion": "authorization.k8s.io/v1", "metadata": {"creationTimestamp": None},
                "spec": spec, "status": {"allowed": allowed, **({} if allowed else {"reason": ""})}}
    raise ApiError(405, "the server does not allow this method on the requested resource")
