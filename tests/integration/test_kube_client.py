"""plugins/module_utils/kube_*.py against the fake Kubernetes API: the rollout wait's failures in any order,
the K8S_AUTH_* environment with kubernetes.core's precedence, and the client version check.

A Deployment's controller reports "progress deadline exceeded" through the status subresource; here the
test writes that status itself, over HTTP, as the deployment controller would (no kubelet runs, so nothing
else touches the objects).
"""

import json
import os
import sys
import threading
import time

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s
from ansible_collections.baremetal.gpu.plugins.module_utils import kube_auth
from tests.harness.ansible_cli import run_tool
from tests.harness.fake_kube import FakeKubeAPI

NS = "rollout"


def deployment(name, namespace=NS):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": "busybox"}]}}}}


def setup(kube, *objects):
    namespaces = sorted(set(obj["metadata"]["namespace"] for obj in objects))
    k8s.apply_all(kube, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces]
                  + list(objects))


def report_progress_deadline_exceeded(kube, name, namespace=NS):
    """What the deployment controller writes once progressDeadlineSeconds passed without progress."""
    path = kube.path("apps/v1", "Deployment", namespace, name, "status")
    status = {"status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1,
                         "conditions": [{"type": "Progressing", "status": "False",
                                         "reason": "ProgressDeadlineExceeded",
                                         "message": 'ReplicaSet "%s-5d4f" has timed out progressing.' % name}]}}
    kube.request("PATCH", path, body=status, content_type="application/merge-patch+json")


def target(name, namespace=NS):
    return ("apps/v1", "Deployment", namespace, name)


# --- the rollout wait ---------------------------------------------------------------------------------

@pytest.mark.parametrize("order", [["broken", "slow"], ["slow", "broken"]])
def test_a_failed_deployment_fails_the_wait_at_once_in_either_order(collection_kube, order):
    setup(collection_kube, deployment("broken"), deployment("slow"))
    report_progress_deadline_exceeded(collection_kube, "broken")
    started = time.monotonic()
    with pytest.raises(k8s.RolloutTimeout) as err:
        k8s.wait_ready(collection_kube, [target(name) for name in order], timeout=30)
    assert time.monotonic() - started < 5  # at once, not after the 30 s timeout
    message = str(err.value)
    assert message.startswith("Deployment rollout/broken failed: ")
    assert 'ReplicaSet "broken-5d4f" has timed out progressing.' in message.splitlines()[0]
    assert [r["object"] for r in err.value.report] == ["Deployment rollout/broken", "Deployment rollout/slow"]


def test_a_deployment_failing_during_the_watch_ends_the_wait(collection_kube):
    setup(collection_kube, deployment("slow"), deployment("later-broken"))
    timer = threading.Timer(0.5, report_progress_deadline_exceeded, (collection_kube, "later-broken"))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(k8s.RolloutTimeout) as err:
            k8s.wait_ready(collection_kube, [target("slow"), target("later-broken")], timeout=30)
    finally:
        timer.join()
    assert 0.4 < time.monotonic() - started < 5
    assert str(err.value).startswith("Deployment rollout/later-broken failed: ")


def test_an_object_of_another_namespace_that_already_failed_ends_the_wait_before_any_watch(collection_kube):
    setup(collection_kube, deployment("slow"), deployment("broken", namespace="other"))
    report_progress_deadline_exceeded(collection_kube, "broken", namespace="other")
    started = time.monotonic()
    with pytest.raises(k8s.RolloutTimeout) as err:
        k8s.wait_ready(collection_kube, [target("slow"), target("broken", "other")], timeout=30)
    assert time.monotonic() - started < 5
    assert str(err.value).startswith("Deployment other/broken failed: ")


def test_a_timeout_names_every_object_not_ready(collection_kube):
    setup(collection_kube, deployment("one"), deployment("two"))
    started = time.monotonic()
    with pytest.raises(k8s.RolloutTimeout) as err:
        k8s.wait_ready(collection_kube, [target("one"), target("two")], timeout=1.0)
    assert 1.0 <= time.monotonic() - started < 4
    assert str(err.value).startswith("2 object(s) not ready after ")
    assert [r["object"] for r in err.value.report] == ["Deployment rollout/one", "Deployment rollout/two"]


# --- K8S_AUTH_* -----------------------------------------------------------------------------------------
# The fake API speaks HTTPS with its own cluster CA and refuses anonymous requests, as k3s does.

@pytest.fixture
def tls_api():
    with FakeKubeAPI() as api:
        yield api


def bare_environ(tmp_path, **variables):
    """An environment with no kubeconfig to fall back on: only what the test sets."""
    return dict({"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "no-kubeconfig")}, **variables)


def namespaces(kube):
    try:
        return sorted(n["metadata"]["name"] for n in kube.items("v1", "Namespace"))
    finally:
        kube.close()


def admin_certificate(api, tmp_path):
    """The admin client certificate and key (CN system:admin, O system:masters) as files, as k3s keeps them."""
    cert, key = tmp_path / "admin.crt", tmp_path / "admin.key"
    cert.write_bytes(api.pki.admin_cert)
    key.write_bytes(api.pki.admin_key)
    key.chmod(0o600)
    return str(cert), str(key)


def test_host_token_and_ca_from_the_environment_need_no_kubeconfig(tls_api, tmp_path):
    env = bare_environ(tmp_path, K8S_AUTH_HOST=tls_api.url + "/", K8S_AUTH_API_KEY=tls_api.token_value,
                       K8S_AUTH_SSL_CA_CERT=tls_api.ca_file)
    kube = k8s.Kube.from_params({}, environ=env)
    assert kube.api.configuration.host == tls_api.url  # trailing slash dropped, as kubernetes.core does
    assert "default" in namespaces(kube)


def test_client_certificate_options_and_variables(tls_api, tmp_path):
    cert, key = admin_certificate(tls_api, tmp_path)
    by_options = k8s.Kube.from_params({"host": tls_api.url, "client_cert": cert, "client_key": key,
                                       "ca_cert": tls_api.ca_file}, environ=bare_environ(tmp_path))
    assert "kube-system" in namespaces(by_options)
    by_env = k8s.Kube.from_params({}, environ=bare_environ(
        tmp_path, K8S_AUTH_HOST=tls_api.url, K8S_AUTH_CERT_FILE=cert, K8S_AUTH_KEY_FILE=key,
        K8S_AUTH_CA_CERT=tls_api.ca_file))
    assert "kube-system" in namespaces(by_env)


def test_a_module_option_wins_over_its_environment_variable(tls_api, tmp_path):
    env = bare_environ(tmp_path, K8S_AUTH_HOST="https://127.0.0.1:9", K8S_AUTH_API_KEY="wrong-token",
                       K8S_AUTH_CA_CERT=tls_api.ca_file)
    right = k8s.Kube.from_params({"host": tls_api.url, "api_key": tls_api.token_value}, environ=env)
    assert "default" in namespaces(right)
    wrong = k8s.Kube.from_params({"host": tls_api.url}, environ=env)  # the token still comes from the env
    with pytest.raises(k8s.KubeError) as err:
        namespaces(wrong)
    assert err.value.status == 401


def test_certificate_verification_follows_validate_certs_and_verify_ssl(tls_api, tmp_path):
    unverified = bare_environ(tmp_path, K8S_AUTH_HOST=tls_api.url, K8S_AUTH_API_KEY=tls_api.token_value)
    with pytest.raises(k8s.KubeError) as err:  # the cluster's CA is not trusted, and nothing says not to check
        namespaces(k8s.Kube.from_params({}, environ=unverified))
    assert err.value.status == 0 and "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    assert "default" in namespaces(k8s.Kube.from_params({}, environ=dict(unverified, K8S_AUTH_VERIFY_SSL="no")))
    assert "default" in namespaces(k8s.Kube.from_params({"validate_certs": False}, environ=unverified))


def test_kubeconfig_and_context_from_the_environment(tls_api, tmp_path):
    kubeconfig = tls_api.write_kubeconfig(tmp_path / "kubeconfig", context="lab")
    kube = k8s.Kube.from_params({}, environ=bare_environ(tmp_path, K8S_AUTH_KUBECONFIG=kubeconfig,
                                                         K8S_AUTH_CONTEXT="lab"))
    assert "default" in namespaces(kube)
    with pytest.raises(k8s.KubeError, match="cannot load the cluster configuration from kubeconfig"):
        k8s.Kube.from_params({}, environ=bare_environ(tmp_path, K8S_AUTH_KUBECONFIG=kubeconfig,
                                                      K8S_AUTH_CONTEXT="no-such-context"))


def test_nothing_configured_says_what_was_tried(tmp_path):
    with pytest.raises(k8s.KubeError) as err:
        k8s.Kube.from_params({}, environ=bare_environ(tmp_path))
    assert "cannot load the cluster configuration from kubeconfig" in str(err.value)
    assert "no in-cluster service account" in str(err.value)


@pytest.mark.parametrize("value, expected", [("no", False), ("0", False), ("False", False), ("yes", True),
                                             ("1", True), ("true", True)])
def test_boolean_variables_read_as_kubernetes_core_reads_them(value, expected):
    assert kube_auth.resolve({}, {"K8S_AUTH_VERIFY_SSL": value})["validate_certs"] is expected
    assert kube_auth.resolve({}, {"K8S_AUTH_VALIDATE_CERTS": value})["validate_certs"] is expected
    assert kube_auth.resolve({"validate_certs": True}, {"K8S_AUTH_VERIFY_SSL": value})["validate_certs"] is True


def test_certificate_variables_and_their_kubernetes_core_aliases():
    env = {"K8S_AUTH_SSL_CA_CERT": "/ca.pem", "K8S_AUTH_CERT_FILE": "/client.pem", "K8S_AUTH_KEY_FILE": "/client.key",
           "K8S_AUTH_PROXY": "http://proxy:3128", "K8S_AUTH_NO_PROXY": "10.0.0.0/8"}
    assert kube_auth.resolve({}, env) == {"ca_cert": "/ca.pem", "client_cert": "/client.pem",
                                          "client_key": "/client.key", "proxy": "http://proxy:3128",
                                          "no_proxy": "10.0.0.0/8"}
    # the option's own name comes first where kubernetes.core reads two
    assert kube_auth.resolve({}, dict(env, K8S_AUTH_CA_CERT="/other.pem"))["ca_cert"] == "/other.pem"


def test_the_module_reads_the_environment_like_kubernetes_core(tls_api, tmp_path):
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-env", "namespace": "default"},
                "data": {"k": "v"}}
    env = {"K8S_AUTH_HOST": tls_api.url, "K8S_AUTH_API_KEY": tls_api.token_value,
           "K8S_AUTH_SSL_CA_CERT": tls_api.ca_file, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    run = run_tool("ansible", "localhost", "-m", "baremetal.gpu.vllm_deploy",
                   "-a", json.dumps({"manifests": [manifest], "wait": False}), env=env)
    result = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["changed"] is True and result["results"][0]["action"] == "created"
    assert tls_api.get("ConfigMap", "from-env", "default")["data"] == {"k": "v"}
    assert tls_api.token_value not in run.stdout


# --- the kubernetes library's version ------------------------------------------------------------------

@pytest.mark.parametrize("installed, problem", [
    ("37.0.2", None), ("24.2.0", None), ("24.1.0", "kubernetes Python library 24.1.0 is too old"),
    ("12.0.1", "kubernetes Python library 12.0.1 is too old"),
])
def test_the_minimum_client_version(installed, problem):
    found = k8s.requirement_error(installed)
    if problem is None:
        assert found is None
    else:
        assert problem in found and "needs kubernetes >= 24.2.0 (pip install 'kubernetes>=24.2.0')" in found


def test_an_old_client_fails_the_module_with_a_clear_message(tmp_path):
    # A kubernetes package that says it is 12.0.1 comes first on the module's path. It stands in for that
    # release (not installable here): the check reads only kubernetes.__version__, before any other import.
    old = tmp_path / "old-client" / "kubernetes"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text('__version__ = "12.0.1"\n')
    env = {"PYTHONPATH": str(old.parent), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    run = run_tool("ansible", "localhost", "-m", "baremetal.gpu.vllm_deploy", "-e",
                   "ansible_python_interpreter=%s" % sys.executable,
                   "-a", json.dumps({"manifests": [], "kubeconfig": os.devnull}), env=env, check=False)
    result = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["failed"] is True
    assert result["msg"] == ("the kubernetes Python library 12.0.1 is too old: baremetal.gpu needs kubernetes "
                             ">= 24.2.0 (pip install 'kubernetes>=24.2.0')")
