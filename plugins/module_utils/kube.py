# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's Kubernetes toolkit, one import for modules, benchmarks and tests.

Each piece lives in a small file of its own; this module only gathers their public names:

| file | what |
| --- | --- |
| ``kube_auth.py`` | ``AUTH_ARG_SPEC``, the ``K8S_AUTH_*`` environment, the client ``Configuration`` |
| ``kube_client.py`` | ``Kube`` (JSON over the ``kubernetes`` library's public interface, discovery, watch, logs), ``KubeError``, the client version check |
| ``kube_apply.py`` | server-side apply with content-based change detection, diffs, prune |
| ``kube_ready.py`` | what ready and failed mean per kind |
| ``kube_rollout.py`` | ``wait_ready``: watches under one deadline, failures at once |
| ``kube_diagnosis.py`` | pods, events and logs of what is not ready |
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.baremetal.gpu.plugins.module_utils.kube_apply import (
    FIELD_MANAGER,
    MANAGED_BY_LABEL,
    MANAGED_BY_SELECTOR,
    PRUNE_KINDS,
    REPLICAS_MANAGER_ANNOTATION,
    apply_all,
    apply_order,
    comparable,
    masked,
    object_changed,
    owns_replicas,
    prune,
    secret_values,
    validate_manifests,
)
from ansible_collections.baremetal.gpu.plugins.module_utils.kube_auth import AUTH_ARG_SPEC
from ansible_collections.baremetal.gpu.plugins.module_utils.kube_client import (
    HAS_KUBERNETES,
    MIN_KUBERNETES,
    REQUIREMENT,
    Kube,
    KubeError,
    ref,
    requirement_error,
)
from ansible_collections.baremetal.gpu.plugins.module_utils.kube_diagnosis import (
    container_state_text,
    diagnose,
    events_for,
    pod_report,
    ready_summary,
    service_pods,
)
from ansible_collections.baremetal.gpu.plugins.module_utils.kube_ready import (
    FAILED,
    READY,
    daemonset_ready,
    deployment_failed,
    deployment_ready,
    generation_observed,
    job_complete,
    job_failed,
    pod_ready,
    statefulset_ready,
)
from ansible_collections.baremetal.gpu.plugins.module_utils.kube_rollout import RolloutTimeout, wait_ready

__all__ = [
    "FIELD_MANAGER",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_SELECTOR",
    "PRUNE_KINDS",
    "REPLICAS_MANAGER_ANNOTATION",
    "apply_all",
    "apply_order",
    "comparable",
    "masked",
    "object_changed",
    "owns_replicas",
    "prune",
    "secret_values",
    "validate_manifests",
    "AUTH_ARG_SPEC",
    "HAS_KUBERNETES",
    "MIN_KUBERNETES",
    "REQUIREMENT",
    "Kube",
    "KubeError",
    "ref",
    "requirement_error",
    "container_state_text",
    "diagnose",
    "events_for",
    "pod_report",
    "ready_summary",
    "service_pods",
    "FAILED",
    "READY",
    "daemonset_ready",
    "deployment_failed",
    "deployment_ready",
    "generation_observed",
    "job_complete",
    "job_failed",
    "pod_ready",
    "statefulset_ready",
    "RolloutTimeout",
    "wait_ready",
]
