"""Fixtures shared by every test: the fake Kubernetes API and kubelet simulator, the fake vLLM server and
the local OCI registry. Each lives in its own module under tests/harness/; this file only exposes them."""

import importlib
import pathlib

_HARNESS = pathlib.Path(__file__).parent / "harness"

for _module in ("kube_fixtures", "vllm_fixtures", "registry_fixtures"):
    if (_HARNESS / (_module + ".py")).exists():
        globals().update(
            {name: value for name, value in vars(importlib.import_module("tests.harness." + _module)).items()
             if not name.startswith("__")}
        )
