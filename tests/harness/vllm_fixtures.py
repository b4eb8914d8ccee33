"""pytest fixtures for the fake vLLM server (tests/harness/fake_vllm/), the GPU memory ledger and the fake
NVML library."""

import itertools

import pytest

from tests.harness import fake_nvml
from tests.harness.fake_vllm import FakeVLLMServer
from tests.harness.gpu_ledger import GpuClaim, GpuLedger

__all__ = ["fake_vllm", "gpu_node", "fake_nvml_lib"]


@pytest.fixture
def fake_vllm():
    """Factory: ``fake_vllm(**kwargs)`` starts a FakeVLLMServer (kwargs of its constructor; ``argv=[...]``
    builds it with ``FakeVLLMServer.from_args``) and returns it, already started (it may still be loading:
    use ``.wait_healthy(timeout)``). Every server the test started is stopped at teardown."""
    servers = []

    def start(argv=None, **kwargs):
        server = FakeVLLMServer.from_args(argv, **kwargs) if argv is not None else FakeVLLMServer(**kwargs)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


class GpuNode:
    """One simulated node's GPUs, and what the kubelet does with them for a test: register a container
    process that was given some GPUs (``claim(...)``), report its exit (``exit(pid)``)."""

    def __init__(self, ledger):
        self.ledger = ledger
        self._pids = itertools.count(4000)

    def claim(self, gpus=(0,), name="python3"):
        pid = next(self._pids)
        self.ledger.start_process(pid, name, pod_uid="pod-%d" % pid, container="vllm", gpus=list(gpus))
        return GpuClaim(self.ledger, pid, list(gpus))

    def exit(self, pid):
        self.ledger.exit_process(pid)

    def used_mib(self, index=0):
        return self.ledger.used_mib(index)


@pytest.fixture
def gpu_node(tmp_path):
    """Factory: ``gpu_node(product="NVIDIA-GeForce-RTX-3060", count=1, release_delay=0.01, export=False)``
    -> GpuNode over a fresh GpuLedger (exporting nvml.txt and proc/ under a temporary folder when
    ``export``)."""
    ledgers = []

    def make(product="NVIDIA-GeForce-RTX-3060", count=1, release_delay=0.01, export=False):
        export_dir = tmp_path / ("gpu-node-%d" % len(ledgers)) if export else None
        ledger = GpuLedger.from_profile("gpu-node", product, count, release_delay=release_delay,
                                        export_dir=export_dir)
        ledgers.append(ledger)
        return GpuNode(ledger)

    yield make
    for ledger in ledgers:
        ledger.close()


@pytest.fixture(scope="session")
def fake_nvml_lib(tmp_path_factory):
    """Directory holding the stand-in libnvidia-ml.so.1 built from tests/fixtures/gpu/fake-nvml (once)."""
    try:
        return fake_nvml.build(tmp_path_factory.mktemp("fake-nvml-lib"))
    except fake_nvml.NoCompiler as exc:
        pytest.skip(str(exc))
