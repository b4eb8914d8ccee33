"""The kubelet simulator: kube-controller-manager, kube-scheduler and a kubelet per node of a simulated k3s
GPU cluster, driven over HTTP by the fake API server (tests/harness/fake_kube) as the real ones are.

Modules, by the component they stand for:
- simulator.py: KubeletSimulator (wiring, reconcile loop); context.py: what they share; timing.py: the
  time scale and the kubelet's back-off; informers.py, client.py: list/watch cache, API client, events;
- controllers: deployment_controller.py (progress deadline), replicaset_controller.py,
  statefulset_controller.py, daemonset_controller.py, endpoints_controller.py, garbage_collector.py,
  pod_creation.py (FailedCreate and retry), volume_binding.py (local-path StorageClass and provisioner);
- scheduler.py;
- the node: node_agent.py (registration, status, lease), devices.py (device plugins, allocation),
  images.py + image_catalog.py, volumes.py, container_env.py, pod_worker.py, pod_termination.py,
  pod_status.py, container_runtime.py, probes.py, kubelet_server.py (logs);
- programs/: what runs in a container (fake vLLM, shell, NVIDIA device plugin and config manager, ...);
- node_setup.py: the objects a node has after site.yml (device plugin DaemonSet, RuntimeClass, ...).

Durations are simulated seconds run at the time scale (timing.py; tests of logic: LOGIC_TEST_TIME_SCALE).

Not simulated (a test that needs one of these must not rely on the simulator): cgroup memory limits and
OOMKilled (GPU memory is: the ledger), cluster DNS inside pods, gRPC probes, native sidecar init
containers (restartPolicy: Always), imagePullSecrets and private registries, volume types other than
configMap/secret/emptyDir/hostPath/PVC (local-path)/projected/downwardAPI, shortening a grace period that
is already running (except force deletion), file access from `python3 -c` in exec probes (its network
is the pod's; its files are the host's), background jobs (`&`) in shell scripts.
"""

from .node_agent import NodeSpec
from .node_setup import configs_for, device_plugin_manifests, plugin_config
from .programs import ContainerContext
from .simulator import KubeletSimulator
from .timing import LOGIC_TEST_TIME_SCALE, TIME_SCALE_ENV

__all__ = ["KubeletSimulator", "NodeSpec", "ContainerContext", "LOGIC_TEST_TIME_SCALE", "TIME_SCALE_ENV",
           "device_plugin_manifests", "configs_for", "plugin_config"]
