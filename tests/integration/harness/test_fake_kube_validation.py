"""The fake API validates as kube-apiserver 1.32 does, through the official client (the collection's
module_utils client over it: the typed API classes refuse such bodies client-side) with server dry-run:
400 for what Go cannot decode, 422 Invalid with the upstream field paths and texts, 403 from admission.
Every expected text below is copied from Kubernetes' source (apimachinery, pkg/apis/*/validation)."""

import json
import time

import pytest
from kubernetes import client as k8s, config
from kubernetes.client.exceptions import ApiException

from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError
from tests.harness.fake_kube import FakeKubeAPI

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"

GPU = "nvidia.com/gpu"
PORT_RANGE = "must be between 1 and 65535, inclusive"


def deployment(name="vllm", container=None, **pod_spec):
    labels = {"app": name}
    container = container or {"name": "vllm", "image": "vllm/vllm-openai:v0.8.5.post1"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container], **pod_spec}}}}


def container(**fields):
    return {"name": "vllm", "image": "vllm/vllm-openai:v0.8.5.post1", **fields}


def refusal(call):
    with pytest.raises((ApiException, KubeError)) as err:
        call()
    if isinstance(err.value, KubeError):
        code, body = err.value.status, err.value.body
    else:
        code, body = err.value.status, json.loads(err.value.body)
    assert body["kind"] == "Status" and body["code"] == code
    return code, body


PATH = "spec.template.spec.containers[0]"
INVALID_DEPLOYMENTS = [
    ("gpu only in requests", deployment(container=container(resources={"requests": {GPU: 1}})),
     f"{PATH}.resources.limits[{GPU}]", "Required value: Limit must be set for non overcommitable resources"),
    ("gpu request below limit", deployment(container=container(resources={"requests": {GPU: 1}, "limits": {GPU: 2}})),
     f"{PATH}.resources.requests[{GPU}]", 'Invalid value: "1": must be equal to nvidia.com/gpu limit of 2'),
    ("fractional gpu", deployment(container=container(resources={"limits": {GPU: "500m"}})),
     f"{PATH}.resources.limits[{GPU}]",
     'Invalid value: resource.Quantity{i:resource.int64Amount{value:500, scale:-3}, '
     'd:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:"", Format:"DecimalSI"}: must be an integer'),
    ("cpu request above limit", deployment(container=container(resources={"requests": {"cpu": "4"},
                                                                          "limits": {"cpu": "2"}})),
     f"{PATH}.resources.requests[cpu]", 'Invalid value: "4": must be less than or equal to cpu limit of 2'),
    ("volumeMount naming no volume", deployment(container=container(volumeMounts=[{"name": "models",
                                                                                   "mountPath": "/models"}])),
     f"{PATH}.volumeMounts[0].name", 'Not found: "models"'),
    ("containerPort 70000", deployment(container=container(ports=[{"containerPort": 70000}])),
     f"{PATH}.ports[0].containerPort", f"Invalid value: 70000: {PORT_RANGE}"),
    ("containerPort 0", deployment(container=container(ports=[{"containerPort": 0, "name": "http"}])),
     f"{PATH}.ports[0].containerPort", "Required value"),
    ("bad imagePullPolicy", deployment(container=container(imagePullPolicy="Sometimes")),
     f"{PATH}.imagePullPolicy", 'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'),
    ("restartPolicy Never in a Deployment", deployment(restartPolicy="Never"),
     "spec.template.spec.restartPolicy", 'Unsupported value: "Never": supported values: "Always"'),
    ("selector not matching", {**deployment(), "spec": {**deployment()["spec"], "selector": {"matchLabels":
                                                                                             {"app": "other"}}}},
     "spec.template.metadata.labels",
     'Invalid value: map[string]string{"app":"vllm"}: `selector` does not match template `labels`'),
    ("container without a name", deployment(container={"image": "vllm/vllm-openai:v0.8.5.post1"}),
     f"{PATH}.name", "Required value"),
    ("probe on an invalid port name", deployment(container=container(readinessProbe={
        "httpGet": {"path": "/health", "port": "vllm_http"}})),
     f"{PATH}.readinessProbe.httpGet.port",
     'Invalid value: "vllm_http": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'),
    ("env name with '='", deployment(container=container(env=[{"name": "A=B", "value": "1"}])),
     f"{PATH}.env[0].name",
     'Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters '
     "other than '='"),
    ("negative replicas", {**deployment(), "spec": {**deployment()["spec"], "replicas": -1}},
     "spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
    ("label value too long", {**deployment(), "metadata": {"name": "vllm", "labels": {"model": "x" * 64}}},
     "metadata.labels", f'Invalid value: "{"x" * 64}": must be no more than 63 characters'),
    ("liveness successThreshold 2", deployment(container=container(livenessProbe={
        "httpGet": {"path": "/health", "port": 8000}, "successThreshold": 2})),
     f"{PATH}.livenessProbe.successThreshold", "Invalid value: 2: must be 1"),
]


@pytest.mark.parametrize("case, body, field, message", INVALID_DEPLOYMENTS, ids=[c[0] for c in INVALID_DEPLOYMENTS])
def test_invalid_deployments_are_refused_with_the_apiservers_causes(collection_kube, case, body, field, message):
    code, status = refusal(lambda: collection_kube.request("POST", DEPLOYMENTS, [("dryRun", "All")], body))
    assert (code, status["reason"]) == (422, "Invalid"), case
    causes = [(c["field"], c["message"]) for c in status["details"]["causes"]]
    assert (field, message) in causes, causes
    assert status["message"].startswith('Deployment.apps "vllm" is invalid: ')
    assert f"{field}: {message}" in status["message"]
    assert status["details"]["name"] == "vllm" and status["details"]["kind"] == "Deployment"
    assert refusal(lambda: collection_kube.request("POST", DEPLOYMENTS, None, body))[0] == 422
    assert not collection_kube.request("GET", DEPLOYMENTS)["items"]


@pytest.mark.parametrize("limits, error", [
    ({"memory": "16GB"}, "quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ({"memory": "12 Gi"}, "quantities must match the regular expression "
                          "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
])
def test_an_undecodable_quantity_is_400_bad_request(collection_kube, limits, error):
    body = deployment(container=container(resources={"limits": limits}))
    code, status = refusal(lambda: collection_kube.request("POST", DEPLOYMENTS, [("dryRun", "All")], body))
    assert (code, status["reason"]) == (400, "BadRequest")
    assert status["message"] == f'Deployment in version "v1" cannot be handled as a Deployment: {error}'


def test_valid_quantities_come_back_canonical_and_requests_default_from_limits(collection_kube):
    body = deployment(container=container(resources={"limits": {GPU: 1, "memory": "16384Mi", "cpu": 0.5}}))
    created = collection_kube.request("POST", DEPLOYMENTS, None, body)
    resources = created["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {GPU: "1", "memory": "16Gi", "cpu": "500m"}}, "templates get no requests"
    pod = collection_kube.request("POST", "/api/v1/namespaces/default/pods", None, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [container(resources={"limits": {GPU: 1, "memory": "16G"}})]}})
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {GPU: "1", "memory": "16G"}


def test_type_errors_are_go_decoding_errors(collection_kube):
    body = deployment(container=container(ports=[{"containerPort": "8000"}]))
    code, status = refusal(lambda: collection_kube.request("POST", DEPLOYMENTS, [("dryRun", "All")], body))
    assert (code, status["message"]) == (400, 'Deployment in version "v1" cannot be handled as a Deployment: json: '
                                              "cannot unmarshal string into Go struct field ContainerPort.spec."
                                              "template.spec.containers.ports.containerPort of type int32")


def test_patches_and_server_side_apply_are_validated_too(kube_client):
    apps = k8s.AppsV1Api(kube_client)
    apps.create_namespaced_deployment("default", deployment())
    code, status = refusal(lambda: apps.patch_namespaced_deployment("vllm", "default", {"spec": {"template": {
        "spec": {"containers": [{"name": "vllm", "ports": [{"containerPort": 70000}]}]}}}}))
    assert code == 422 and status["details"]["causes"][0]["field"] == f"{PATH}.ports[0].containerPort"
    bad = deployment(container=container(resources={"limits": {"memory": "16GB"}}))
    code, status = refusal(lambda: apps.patch_namespaced_deployment("vllm", "default", bad, field_manager="t",
                                                                    _content_type="application/apply-patch+yaml"))
    assert code == 400 and "quantities must match" in status["message"]
    code, status = refusal(lambda: apps.patch_namespaced_deployment(
        "vllm", "default", {"spec": {"replicas": "two"}}, _content_type="application/merge-patch+json"))
    assert (code, status["details"]["causes"][0]["field"]) == (422, "patch")
    assert "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32" in \
        status["message"]
    assert apps.read_namespaced_deployment("vllm", "default").spec.replicas == 1, "nothing changed"


@pytest.mark.parametrize("service, field, message", [
    ({"ports": [{"port": 0}]}, "spec.ports[0].port", f"Invalid value: 0: {PORT_RANGE}"),
    ({"ports": [{"port": 8000}, {"port": 8001}]}, "spec.ports[0].name", "Required value"),
    ({"ports": [{"port": 8000, "targetPort": "http_port"}]}, "spec.ports[0].targetPort",
     'Invalid value: "http_port": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'),
    ({"ports": [{"port": 8000, "nodePort": 30080}]}, "spec.ports[0].nodePort",
     "Forbidden: may not be used when `type` is 'ClusterIP'"),
    ({"type": "Internal", "ports": [{"port": 8000}]}, "spec.type",
     'Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
])
def test_service_rules(kube_client, service, field, message):
    core = k8s.CoreV1Api(kube_client)
    body = {"metadata": {"name": "vllm-api"}, "spec": {"selector": {"app": "vllm"}, **service}}
    code, status = refusal(lambda: core.create_namespaced_service("default", body, dry_run="All"))
    assert code == 422 and (field, message) in [(c["field"], c["message"]) for c in status["details"]["causes"]]


def test_names_follow_their_kinds_rules(kube_client):
    core = k8s.CoreV1Api(kube_client)
    code, status = refusal(lambda: core.create_namespaced_service("default", {
        "metadata": {"name": "8000-api"}, "spec": {"ports": [{"port": 8000}]}}))
    assert code == 422 and status["details"]["causes"][0]["message"] == (
        'Invalid value: "8000-api": a DNS-1035 label must consist of lower case alphanumeric characters or \'-\', '
        "start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
        "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
    rbac = k8s.RbacAuthorizationV1Api(kube_client)
    role = rbac.create_cluster_role({"metadata": {"name": "baremetal-gpu:router"}, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]}]})
    assert role.metadata.name == "baremetal-gpu:router", "RBAC names are path segments: ':' is fine"


def test_rbac_rules_need_verbs(collection_kube):
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"]}]}
    code, status = refusal(lambda: collection_kube.request(
        "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", None, role))
    assert (code, status["details"]["causes"][0]) == (422, {
        "reason": "FieldValueRequired", "field": "rules[0].verbs",
        "message": "Required value: verbs must contain at least one value"})


def test_k3s_preinstalls_runtime_classes_and_admission_names_a_missing_one(kube_api, tmp_path):
    assert kube_api.get("RuntimeClass", "nvidia")["handler"] == "nvidia", "k3s' packaged runtimes manifest"
    with FakeKubeAPI(disable=("runtimes",)) as api:  # k3s server --disable=runtimes
        api_client = config.new_client_from_config(config_file=api.write_kubeconfig(tmp_path / "kc"))
        core = k8s.CoreV1Api(api_client)
        pod = {"metadata": {"generateName": "vllm-7d9f8b7c4-"}, "spec": {"runtimeClassName": "nvidia",
                                                                         "containers": [container()]}}
        code, status = refusal(lambda: core.create_namespaced_pod("default", pod))
        assert (code, status["reason"]) == (403, "Forbidden")
        assert status["message"] == ('pods "vllm-7d9f8b7c4-" is forbidden: pod rejected: RuntimeClass "nvidia" not '
                                     "found")
        assert status["details"] == {"name": "vllm-7d9f8b7c4-", "kind": "pods"}
        k8s.NodeV1Api(api_client).create_runtime_class({"metadata": {"name": "nvidia"}, "handler": "nvidia"})
        assert core.create_namespaced_pod("default", pod).metadata.name.startswith("vllm-7d9f8b7c4-")
        api_client.close()


def test_a_refused_object_never_reaches_the_controllers(kube_api, kube_client, kubelet):
    """Validation isolates bad input: the kubelet simulator keeps serving the other namespaces."""
    core, apps = k8s.CoreV1Api(kube_client), k8s.AppsV1Api(kube_client)
    core.create_namespace({"metadata": {"name": "other"}})
    bad = deployment("broken", container=container(resources={"limits": {"memory": "16GB"}}))
    assert refusal(lambda: apps.create_namespaced_deployment("default", bad))[0] == 400
    web = {"name": "web", "image": "busybox", "command": ["sleep", "infinity"]}  # busybox alone: sh exits at once
    apps.create_namespaced_deployment("other", deployment("good", container=web))
    deadline = time.monotonic() + 20
    while apps.read_namespaced_deployment("good", "other").status.ready_replicas != 1:
        assert time.monotonic() < deadline, "the good Deployment did not roll out"
        time.sleep(0.05)
    assert not kubelet.errors, kubelet.errors
