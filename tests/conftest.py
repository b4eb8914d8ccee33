"""Fixtures shared by every test: the fake Kubernetes API and kubelet simulator, the fake vLLM server and
the local OCI registry. Each lives in its own module under tests/harness/; this file only exposes them."""

from tests.harness.kube_fixtures import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
from tests.harness.registry_fixtures import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
from tests.harness.vllm_fixtures import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
