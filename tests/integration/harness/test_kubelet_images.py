"""Image pulls as a node does them: imagePullPolicy, tags no registry has (ErrImagePull then ImagePullBackOff,
with containerd's messages), pull time from size and bandwidth, and images from the local OCI registry whose
config (ENTRYPOINT/CMD) decides the program. Time scale 0.05 unless a test says otherwise."""

import re
import time

import pytest

from tests.harness.kubelet import KubeletSimulator
from tests.harness.kubelet.testing import (container, messages, pod, ready, status_of, vllm_container,
                                           waiting_reason, wait_for)

SCALE = 0.05


def test_a_tag_no_registry_has_fails_with_err_image_pull_then_back_off(kube_api):
    image = "vllm/vllm-openai:v0.0.0-nope"
    with KubeletSimulator(kube_api.url, time_scale=SCALE) as sim:
        kube_api.create(pod("nope", container("vllm", image, args=["--model", "x"])))
        wait_for(lambda: waiting_reason(kube_api.get("Pod", "nope")) == "ErrImagePull", what="ErrImagePull")
        backoff = wait_for(lambda: waiting_reason(kube_api.get("Pod", "nope")) == "ImagePullBackOff" and
                           status_of(kube_api.get("Pod", "nope")), what="ImagePullBackOff")
        assert not sim.errors
    name = "docker.io/vllm/vllm-openai:v0.0.0-nope"
    error = (f'rpc error: code = NotFound desc = failed to pull and unpack image "{name}": failed to resolve '
             f'reference "{name}": {name}: not found')
    assert backoff["state"]["waiting"]["message"] == f'Back-off pulling image "{image}": ErrImagePull: {error}'
    wait_for(lambda: {f'Failed to pull image "{image}": {error}', "Error: ErrImagePull", "Error: ImagePullBackOff"}
             <= set(messages(kube_api, "Failed")), what="Failed events")
    wait_for(lambda: f'Back-off pulling image "{image}"' in messages(kube_api, "BackOff"), what="BackOff event")
    assert kube_api.get("Pod", "nope")["status"]["phase"] == "Pending"


def test_pull_policies_and_pull_time_from_image_size(kube_api):
    # nothing on the node; 1000 MB/s: the 8.9 GB vLLM image takes about 9 s (simulated), 0.45 s real
    with KubeletSimulator(kube_api.url, time_scale=SCALE, images_present=[], pull_bandwidth=1000) as sim:
        kube_api.create(pod("never", container(command=["sleep", "infinity"], imagePullPolicy="Never")))
        kube_api.create(pod("vllm", vllm_container(gpus=0)))
        started = time.monotonic()
        wait_for(lambda: ready(kube_api.get("Pod", "vllm")), what="pulled and running")
        took = time.monotonic() - started
        never = wait_for(lambda: waiting_reason(kube_api.get("Pod", "never")) == "ErrImageNeverPull" and
                         status_of(kube_api.get("Pod", "never")), what="ErrImageNeverPull")
        assert not sim.errors
    assert took >= 8.9 * SCALE, took
    assert never["state"]["waiting"]["message"] == \
        'Container image "busybox:1.36" is not present with pull policy of Never'
    pulled = wait_for(lambda: messages(kube_api, "Pulled", about="vllm"), what="Pulled")[0]
    assert re.fullmatch(r'Successfully pulled image "vllm/vllm-openai:v0.8.5.post1" in [0-9.]+s \([0-9.]+s '
                        r'including waiting\)\. Image size: 8900000000 bytes\.', pulled), pulled
    assert 'Pulling image "vllm/vllm-openai:v0.8.5.post1"' in messages(kube_api, "Pulling", about="vllm")


@pytest.mark.registry
def test_images_from_the_local_registry_run_their_own_entrypoint(kube_api, oci_registry):
    # the registry's v0.15.1 starts `vllm serve`; an image pushed here exits 7 by its own entrypoint
    oci_registry.push_image("tools/exits", "v1", entrypoint=["sh", "-c", "exit 7"])
    with KubeletSimulator(kube_api.url, time_scale=SCALE, images_present=[],
                          registries=oci_registry.mirrors) as sim:
        kube_api.create(pod("served", container("vllm", "vllm/vllm-openai:v0.15.1", port=8000,
                                                args=["Qwen/Qwen3-8B-AWQ", "--port", "8000"],
                                                readinessProbe={"tcpSocket": {"port": 8000}, "periodSeconds": 1})))
        kube_api.create(pod("exits", container("exits", f"{oci_registry.address}/tools/exits:v1")))
        kube_api.create(pod("absent", container("absent", f"{oci_registry.address}/tools/exits:v2")))
        wait_for(lambda: ready(kube_api.get("Pod", "served")), what="vLLM from the registry image")
        terminated = wait_for(lambda: status_of(kube_api.get("Pod", "exits")).get("lastState", {}).get("terminated"),
                              what="exit 7")
        assert terminated["exitCode"] == 7
        assert sim.backend_of("default", "served").server.model == "Qwen/Qwen3-8B-AWQ"
        wait_for(lambda: waiting_reason(kube_api.get("Pod", "absent")) in ("ErrImagePull", "ImagePullBackOff"),
                 what="absent tag")
        assert not sim.errors
    assert any(m.startswith('Successfully pulled image "vllm/vllm-openai:v0.15.1"')
               for m in messages(kube_api, "Pulled", about="served"))
    assert any(m.endswith(f'{oci_registry.address}/tools/exits:v2: not found')
               for m in messages(kube_api, "Failed", about="absent"))
