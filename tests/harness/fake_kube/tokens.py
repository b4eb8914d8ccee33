"""Service-account tokens: JWTs signed ES256 with the cluster's service-account key, as k3s issues them.

- Bound tokens (`POST .../serviceaccounts/<sa>/token`, the TokenRequest API, and what a pod's
  projected token is): issuer `https://kubernetes.default.svc.cluster.local`, audiences default to
  the API server's (`https://kubernetes.default.svc.cluster.local`, `k3s`), an expiry (default
  3600 s, at least 600 s), a `kubernetes.io` claim naming the namespace and the service account
  (name and uid) and, optionally, the pod or secret the token is bound to. Invalid once the
  service account (or bound object) is deleted or re-created, or once expired.
- Legacy tokens (`kubernetes.io/service-account-token` Secrets, filled by the token controller):
  issuer `kubernetes/serviceaccount`, no expiry, valid while the Secret holds that very token.

`verify()` answers the identity `system:serviceaccount:<ns>:<name>` with the groups
`system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`, or None.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

if TYPE_CHECKING:  # pragma: no cover
    from .registry import Registry

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = ("https://kubernetes.default.svc.cluster.local", "k3s")
LEGACY_ISSUER = "kubernetes/serviceaccount"
MIN_EXPIRATION = 600
DEFAULT_EXPIRATION = 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def service_account_user(namespace: str, name: str) -> Tuple[str, List[str]]:
    return (f"system:serviceaccount:{namespace}:{name}",
            ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"])


class TokenIssuer:
    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        digest = hashes.Hash(hashes.SHA256())
        digest.update(public)
        self.key_id = _b64(digest.finalize())

    # ------------------------------------------------------------------ JWS
    def sign(self, claims: Dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "ES256", "kid": self.key_id}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{header}.{payload}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def claims_of(self, token: str) -> Optional[Dict[str, Any]]:
        """The claims of a token this issuer signed, or None (not a JWT, another key, tampered)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            signature = _unb64(parts[2])
            if header.get("alg") != "ES256" or len(signature) != 64:
                return None
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            self.key.public_key().verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, InvalidSignature, UnicodeDecodeError):
            return None
        return claims if isinstance(claims, dict) else None

    # ------------------------------------------------------------------ issuing
    def bound_token(self, account: Dict[str, Any], audiences: Optional[List[str]], expiration_seconds: int,
                    bound: Optional[Dict[str, Any]] = None) -> Tuple[str, int]:
        """(token, expiry unix time) for a ServiceAccount object."""
        now = int(time.time())
        meta = account["metadata"]
        private: Dict[str, Any] = {"namespace": meta["namespace"],
                                   "serviceaccount": {"name": meta["name"], "uid": meta["uid"]}}
        if bound:
            kind = bound["kind"].lower()
            private[kind] = {"name": bound["name"], "uid": bound["uid"]}
        claims = {"aud": list(audiences or API_AUDIENCES), "exp": now + expiration_seconds, "iat": now,
                  "iss": ISSUER, "jti": str(uuid.uuid4()), "kubernetes.io": private, "nbf": now,
                  "sub": f"system:serviceaccount:{meta['namespace']}:{meta['name']}"}
        return self.sign(claims), now + expiration_seconds

    def legacy_token(self, account: Dict[str, Any], secret_name: str) -> str:
        meta = account["metadata"]
        return self.sign({
            "iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": meta["namespace"],
            "kubernetes.io/serviceaccount/secret.name": secret_name,
            "kubernetes.io/serviceaccount/service-account.name": meta["name"],
            "kubernetes.io/serviceaccount/service-account.uid": meta["uid"],
            "sub": f"system:serviceaccount:{meta['namespace']}:{meta['name']}",
        })

    # ------------------------------------------------------------------ authenticating
    def verify(self, token: str, registry: "Registry") -> Optional[Tuple[str, List[str]]]:
        claims = self.claims_of(token)
        if claims is None:
            return None
        accounts = registry.table.lookup("", "v1", "serviceaccounts")
        if claims.get("iss") == LEGACY_ISSUER:
            namespace = claims.get("kubernetes.io/serviceaccount/namespace", "")
            name = claims.get("kubernetes.io/serviceaccount/service-account.name", "")
            secret = registry.store.peek(registry.table.lookup("", "v1", "secrets"), namespace,
                                         claims.get("kubernetes.io/serviceaccount/secret.name", ""))
            stored = ((secret or {}).get("data") or {}).get("token")
            if not stored or _decoded(stored) != token:
                return None
            account = registry.store.peek(accounts, namespace, name)
            if account is None or account["metadata"]["uid"] != \
                    claims.get("kubernetes.io/serviceaccount/service-account.uid"):
                return None
            return service_account_user(namespace, name)
        if claims.get("iss") != ISSUER:
            return None
        now = time.time()
        if not isinstance(claims.get("exp"), int) or now >= claims["exp"] or now < claims.get("nbf", 0) - 60:
            return None
        audiences = claims.get("aud") or []
        if isinstance(audiences, str):
            audiences = [audiences]
        if not set(audiences) & set(API_AUDIENCES):
            return None
        private = claims.get("kubernetes.io") or {}
        namespace = private.get("namespace", "")
        sa = private.get("serviceaccount") or {}
        account = registry.store.peek(accounts, namespace, sa.get("name", ""))
        if account is None or account["metadata"]["uid"] != sa.get("uid"):
            return None
        for kind, plural in (("pod", "pods"), ("secret", "secrets")):
            ref = private.get(kind)
            if ref:
                obj = registry.store.peek(registry.table.lookup("", "v1", plural), namespace, ref.get("name", ""))
                if obj is None or obj["metadata"]["uid"] != ref.get("uid"):
                    return None
        return service_account_user(namespace, sa.get("name", ""))


def _decoded(value: str) -> str:
    try:
        return base64.b64decode(value).decode()
    except (ValueError, UnicodeDecodeError):
        return ""
