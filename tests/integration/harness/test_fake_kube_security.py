"""Security as k3s has it: HTTPS with a generated cluster CA, an admin client certificate in a k3s.yaml-style
kubeconfig, service-account tokens (TokenRequest and legacy Secrets), 401 for anonymous or bad
credentials, RBAC with the default ClusterRoles, and `kubectl auth can-i` / `whoami`."""

import base64
import json
import os
import subprocess
import time

import pytest
import urllib3
import yaml
from kubernetes import client as k8s, config
from kubernetes.client.exceptions import ApiException

from tests.harness.fake_kube.tls import ClusterPKI

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}


def client_for(kubeconfig):
    return config.new_client_from_config(config_file=str(kubeconfig))


def status_of(call):
    with pytest.raises(ApiException) as err:
        call()
    return err.value.status, json.loads(err.value.body)


@pytest.fixture
def ml(kube_api):
    """Namespace ml with a ServiceAccount `router` that has no permissions of its own."""
    kube_api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
    kube_api.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "router", "namespace": "ml"}})
    kube_api.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "chat", "namespace": "ml"},
                     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "chat"}},
                              "template": {"metadata": {"labels": {"app": "chat"}},
                                           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    return kube_api


def test_kubeconfig_is_written_as_k3s_writes_k3s_yaml(kube_api, kubeconfig):
    config_doc = yaml.safe_load(open(kubeconfig, encoding="utf-8"))
    cluster, user = config_doc["clusters"][0]["cluster"], config_doc["users"][0]["user"]
    assert cluster["server"] == kube_api.url and kube_api.url.startswith("https://127.0.0.1:")
    assert base64.b64decode(cluster["certificate-authority-data"]).decode() == kube_api.ca_pem
    assert set(user) == {"client-certificate-data", "client-key-data"}
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert cert.subject.rfc4514_string() == "CN=system:admin,O=system:masters"
    ca = x509.load_pem_x509_certificate(kube_api.ca_pem.encode())
    assert ca.subject.rfc4514_string().startswith("CN=k3s-server-ca@")
    assert oct(os.stat(kubeconfig).st_mode & 0o777) == "0o600"
    root_ca = kube_api.get("ConfigMap", "kube-root-ca.crt")
    assert root_ca["data"]["ca.crt"] == kube_api.ca_pem, "every namespace publishes the real cluster CA"


def test_anonymous_and_bad_credentials_get_401(kube_api, tmp_path):
    for path in ("/api/v1/namespaces/default/pods", "/healthz", "/version"):
        code, body = None, None
        try:
            kube_api.urlopen(path, token="").close()
        except Exception as err:  # urllib HTTPError
            code, body = err.code, json.loads(err.read())
        assert (code, body) == (401, UNAUTHORIZED), path
    api_client = client_for(kube_api.write_kubeconfig(tmp_path / "bad", token="not-a-token"))
    code, body = status_of(lambda: k8s.CoreV1Api(api_client).list_namespaced_pod("default"))
    assert (code, body) == (401, UNAUTHORIZED)
    api_client.close()


def test_a_wrong_ca_fails_certificate_verification(kube_api, tmp_path, kubectl_bin):
    other = ClusterPKI()
    try:
        kubeconfig = kube_api.write_kubeconfig(tmp_path / "wrong-ca", ca_pem=other.server_ca.pem.decode())
    finally:
        other.cleanup()
    api_client = client_for(kubeconfig)
    api_client.rest_client.pool_manager.connection_pool_kw["retries"] = 0
    with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
        k8s.CoreV1Api(api_client).list_namespaced_pod("default")
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    api_client.close()
    result = subprocess.run([kubectl_bin, "--kubeconfig", kubeconfig, "get", "pods"], capture_output=True, text=True,
                            timeout=30, check=False, env=dict(os.environ, HOME=str(tmp_path)))
    assert result.returncode == 1
    assert "x509: certificate signed by unknown authority" in result.stderr


def test_a_service_account_is_forbidden_until_a_role_binds_it(ml, kubeconfig_for, kube_client):
    router = client_for(kubeconfig_for("ml", "router"))
    apps = k8s.AppsV1Api(router)
    assert k8s.VersionApi(router).get_code().minor == "32", "system:discovery is bound to every authenticated user"
    code, body = status_of(lambda: apps.list_namespaced_deployment("ml"))
    assert (code, body["reason"]) == (403, "Forbidden")
    assert body["message"] == ('deployments.apps is forbidden: User "system:serviceaccount:ml:router" cannot list '
                               'resource "deployments" in API group "apps" in the namespace "ml"')
    assert body["details"] == {"group": "apps", "kind": "deployments"}
    rbac = k8s.RbacAuthorizationV1Api(kube_client)
    rbac.create_namespaced_role("ml", {"metadata": {"name": "router"}, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": ["chat"],
         "verbs": ["get", "patch"]}]})
    rbac.create_namespaced_role_binding("ml", {"metadata": {"name": "router"},
                                               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                           "name": "router"},
                                               "subjects": [{"kind": "ServiceAccount", "name": "router"}]})
    assert [d.metadata.name for d in apps.list_namespaced_deployment("ml").items] == ["chat"]
    assert apps.patch_namespaced_deployment_scale("chat", "ml", {"spec": {"replicas": 0}}).spec.replicas == 0
    code, body = status_of(lambda: apps.patch_namespaced_deployment("chat", "ml", {"spec": {"replicas": 2}}))
    assert body["message"] == ('deployments.apps "chat" is forbidden: User "system:serviceaccount:ml:router" cannot '
                               'patch resource "deployments" in API group "apps" in the namespace "ml"')
    code, body = status_of(lambda: k8s.CoreV1Api(router).list_namespaced_pod("default"))
    assert code == 403 and 'in the namespace "default"' in body["message"], "a RoleBinding grants in its namespace"
    code, body = status_of(lambda: k8s.CoreV1Api(router).list_node())
    assert body["message"].endswith('cannot list resource "nodes" in API group "" at the cluster scope')
    router.close()


def test_default_cluster_roles_view_and_edit(ml, kubeconfig_for, kube_client):
    roles = {r.metadata.name for r in k8s.RbacAuthorizationV1Api(kube_client).list_cluster_role().items}
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
            "system:public-info-viewer"} <= roles
    k8s.RbacAuthorizationV1Api(kube_client).create_namespaced_role_binding("ml", {
        "metadata": {"name": "router-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ml", "apiGroup": "rbac.authorization.k8s.io"}]})
    router = client_for(kubeconfig_for("ml", "router"))
    core = k8s.CoreV1Api(router)
    assert core.list_namespaced_pod("ml").items == []
    assert status_of(lambda: core.list_namespaced_secret("ml"))[0] == 403, "view does not read Secrets"
    assert status_of(lambda: k8s.AppsV1Api(router).delete_namespaced_deployment("chat", "ml"))[0] == 403
    router.close()


def test_token_request_and_legacy_token_secrets(ml, kube_client):
    core = k8s.CoreV1Api(kube_client)
    issued = core.create_namespaced_service_account_token("router", "ml", {"spec": {"expirationSeconds": 3600}})
    token = issued.status.token
    assert token.count(".") == 2 and issued.status.expiration_timestamp is not None
    header, payload = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in token.split(".")[:2])
    assert header["alg"] == "ES256" and payload["sub"] == "system:serviceaccount:ml:router"
    assert payload["kubernetes.io"]["serviceaccount"]["name"] == "router"
    assert ml.authenticator.authenticate_token(token).name == "system:serviceaccount:ml:router"
    code, body = status_of(lambda: core.create_namespaced_service_account_token("router", "ml", {
        "spec": {"expirationSeconds": 599}}))
    assert (code, body["details"]["causes"][0]["message"]) == (
        422, "Invalid value: 599: may not specify a duration less than 10 minutes")

    core.create_namespaced_secret("ml", {"metadata": {"name": "router-token", "annotations": {
        "kubernetes.io/service-account.name": "router"}}, "type": "kubernetes.io/service-account-token"})
    deadline = time.monotonic() + 5
    while not (core.read_namespaced_secret("router-token", "ml").data or {}).get("token"):
        assert time.monotonic() < deadline, "the token controller fills the Secret"
        time.sleep(0.02)
    secret = core.read_namespaced_secret("router-token", "ml")
    legacy = base64.b64decode(secret.data["token"]).decode()
    assert base64.b64decode(secret.data["ca.crt"]).decode() == ml.ca_pem
    assert secret.metadata.annotations["kubernetes.io/service-account.uid"] == \
        core.read_namespaced_service_account("router", "ml").metadata.uid
    assert ml.authenticator.authenticate_token(legacy).name == "system:serviceaccount:ml:router"
    core.delete_namespaced_secret("router-token", "ml")
    assert ml.authenticator.authenticate_token(legacy) is None, "a legacy token dies with its Secret"

    core.delete_namespaced_service_account("router", "ml")
    core.create_namespaced_service_account("ml", {"metadata": {"name": "router"}})
    assert ml.authenticator.authenticate_token(token) is None, "a bound token dies with its ServiceAccount"


def test_kubectl_auth_can_i_and_whoami(ml, kubeconfig_for, kubectl_bin, tmp_path, kube_client):
    env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG=kubeconfig_for("ml", "router"))

    def kubectl(*args):
        return subprocess.run([kubectl_bin, *args], capture_output=True, text=True, timeout=30, check=False,
                              env=env)

    denied = kubectl("auth", "can-i", "patch", "deployments/scale", "-n", "ml")
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    k8s.RbacAuthorizationV1Api(kube_client).create_namespaced_role_binding("ml", {
        "metadata": {"name": "router-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "router", "namespace": "ml"}]})
    allowed = kubectl("auth", "can-i", "patch", "deployments/scale", "-n", "ml")
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes")
    assert kubectl("auth", "can-i", "list", "nodes").stdout.strip() == "no"
    whoami = kubectl("auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == "system:serviceaccount:ml:router"
    forbidden = kubectl("get", "nodes")
    assert forbidden.returncode == 1 and 'User "system:serviceaccount:ml:router" cannot list resource "nodes"' in \
        forbidden.stderr


def test_the_collections_client_options_meet_real_tls(ml, kubeconfig_for):
    """module_utils/kube.py's `host`/`api_key`/`ca_cert`/`validate_certs` options, against a server that checks."""
    from ansible_collections.baremetal.gpu.plugins.module_utils.kube import Kube, KubeError

    token = ml.service_account_token("ml", "router")
    trusted = Kube.from_params({"host": ml.url, "api_key": token, "ca_cert": ml.ca_file})
    assert trusted.request("GET", "/version")["minor"] == "32"
    with pytest.raises(KubeError) as err:
        trusted.request("GET", "/api/v1/namespaces/ml/secrets")
    assert err.value.status == 403
    untrusted = Kube.from_params({"host": ml.url, "api_key": token})
    with pytest.raises(KubeError) as err:
        untrusted.request("GET", "/version")
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    unverified = Kube.from_params({"host": ml.url, "api_key": token, "validate_certs": False})
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        assert unverified.request("GET", "/version")["minor"] == "32"
    for kube in (trusted, untrusted, unverified):
        kube.close()
