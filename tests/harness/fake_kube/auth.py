"""Authentication as a k3s API server does it, in the apiserver's order.

1. A client certificate signed by the cluster's client CA: user = CN, groups = O (the admin
   kubeconfig's `system:admin` / `system:masters`).
2. A bearer token: the static token (kube-apiserver's `--token-auth-file`; the simulator's
   controllers, scheduler and kubelet share it), then service-account tokens (tokens.py).
3. Nothing, or a token nobody issued: 401 Unauthorized. k3s runs the apiserver with
   `--anonymous-auth=false`, so even `/healthz` and `/version` need credentials; pass
   `anonymous_auth=True` to FakeKubeAPI for kube-apiserver's default (`system:anonymous`).

Every authenticated user is in `system:authenticated`. A successful authentication removes the
`Authorization` header, so nothing proxied onwards (Services, pods) sees the caller's token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Tuple

from aiohttp import web

from .rbac import User, unauthorized, user_info
from .tls import peer_identity

if TYPE_CHECKING:  # pragma: no cover
    from .registry import Registry
    from .tokens import TokenIssuer

STATIC_TOKEN_USER = ("system:k3s-controller", ("system:masters",))


class Authenticator:
    def __init__(self, registry: "Registry", issuer: "TokenIssuer", static_tokens: Dict[str, Tuple[str, tuple]],
                 anonymous_auth: bool = False) -> None:
        self.registry = registry
        self.issuer = issuer
        self.static_tokens = static_tokens
        self.anonymous_auth = anonymous_auth

    def authenticate_token(self, token: str) -> Optional[User]:
        if token in self.static_tokens:
            name, groups = self.static_tokens[token]
            return user_info(name, groups)
        found = self.issuer.verify(token, self.registry)
        if found is not None:
            return user_info(*found)
        return None

    def authenticate(self, request: web.Request) -> User:
        transport = request.transport
        identity = peer_identity(transport.get_extra_info("peercert") if transport is not None else None)
        if identity is not None:
            return user_info(identity[0], identity[1])
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _sep, token = header.partition(" ")
            user = self.authenticate_token(token.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                raise unauthorized()
            return user
        if self.anonymous_auth:
            return User("system:anonymous", ["system:unauthenticated"])
        raise unauthorized()
