"""pytest fixtures for tests that talk to Kubernetes: a fresh fake API server (HTTPS, RBAC), a
kubeconfig for it, a real `kubernetes.client.ApiClient`, and a kubelet simulator with one GPU node.

Everything shuts down cleanly (threads joined, ports closed); tests/integration/harness checks it.
To act as a ServiceAccount: `kubeconfig_for("ml", "router")` (a kubeconfig with a token minted for
an existing ServiceAccount), or `kube_api.write_kubeconfig(path, "ml", user="system:serviceaccount:ml:router")`.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest

from tests.harness.fake_kube import FakeKubeAPI
from tests.harness.kubelet import LOGIC_TEST_TIME_SCALE, TIME_SCALE_ENV, KubeletSimulator, NodeSpec

__all__ = ["kube_api", "kube_api_module", "kubeconfig", "kubeconfig_for", "kube_client", "collection_kube", "kubelet",
           "kubectl_bin"]


@pytest.fixture
def kube_api() -> Iterator[FakeKubeAPI]:
    """A fresh fake API server for one test."""
    with FakeKubeAPI() as api:
        yield api


@pytest.fixture(scope="module")
def kube_api_module() -> Iterator[FakeKubeAPI]:
    """One fake API server shared by a module's tests (use distinct namespaces per test)."""
    with FakeKubeAPI() as api:
        yield api


@pytest.fixture
def kubeconfig(kube_api: FakeKubeAPI, tmp_path) -> str:
    """Path of a kubeconfig for `kube_api` as k3s writes k3s.yaml: the cluster CA, the admin client
    certificate (system:admin, group system:masters), namespace default."""
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kubeconfig_for(kube_api: FakeKubeAPI, tmp_path):
    """`kubeconfig_for(namespace, service_account)`: a kubeconfig acting as that (existing) ServiceAccount."""
    def write(namespace: str, service_account: str) -> str:
        path = tmp_path / f"kubeconfig-{namespace}-{service_account}"
        return kube_api.write_kubeconfig(path, namespace, user=f"system:serviceaccount:{namespace}:{service_account}")
    return write


@pytest.fixture
def kube_client(kubeconfig: str):
    """A real `kubernetes.client.ApiClient` built from the kubeconfig, closed afterwards."""
    kubernetes = pytest.importorskip("kubernetes")
    client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def collection_kube(kubeconfig: str):
    """The collection's own cluster client (plugins/module_utils/kube.py), as its modules build it."""
    from ansible_collections.baremetal.gpu.plugins.module_utils.kube import Kube

    kube = Kube.from_params({"kubeconfig": kubeconfig})
    try:
        yield kube
    finally:
        kube.close()


@pytest.fixture
def kubelet(kube_api: FakeKubeAPI, tmp_path) -> Iterator[KubeletSimulator]:
    """Controllers, scheduler and kubelet for one GPU node (RTX 3060, 12 GiB, 1 GPU) with the NVIDIA device
    plugin running, at time scale LOGIC_TEST_TIME_SCALE (0.05: a 10 s probe period lasts 0.5 s) unless
    $BAREMETAL_GPU_SIM_TIME_SCALE says otherwise; the node's GPU ledger is exported under tmp_path/cluster."""
    scale = None if os.environ.get(TIME_SCALE_ENV) else LOGIC_TEST_TIME_SCALE
    with KubeletSimulator(kube_api.url, nodes=[NodeSpec()], time_scale=scale, state_dir=tmp_path / "cluster") as sim:
        yield sim
    assert not sim.errors, sim.errors


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not on PATH")
    return path
