"""pytest fixtures for the local OCI registry (tests/harness/oci_registry.py).

``oci_registry`` and ``oci_registry_auth`` are session-scoped: one registry each per test session,
with the vLLM images of ``VLLM_IMAGES`` pushed once (images are built once for both). Tests that need
other images push them with ``push_image`` / ``push_index`` under their own repository names.

Without docker-registry, buildah or skopeo the fixtures skip with the reason, except under
``CI=true``, where they fail: CI must never skip these tests silently.
"""

import os

import pytest

from tests.harness.oci_registry import ImageBuilder, LocalRegistry, missing_registry_tools

__all__ = ["oci_image_builder", "oci_registry", "oci_registry_auth", "require_registry_tools"]


def require_registry_tools():
    """Skip (fail under CI=true) when docker-registry, buildah or skopeo is missing."""
    missing = missing_registry_tools()
    if not missing:
        return
    reason = ("local OCI registry needs %s on PATH (Debian packages docker-registry, buildah, skopeo; "
              "scripts/setup installs them)" % ", ".join(missing))
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(reason + "; CI=true forbids skipping", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def oci_image_builder(tmp_path_factory):
    """One private buildah store for the session: each image spec is built once."""
    require_registry_tools()
    builder = ImageBuilder(tmp_path_factory.mktemp("oci-build"))
    yield builder
    builder.cleanup()


@pytest.fixture(scope="session")
def oci_registry(oci_image_builder, tmp_path_factory):
    """A plain-http registry on loopback holding vllm/vllm-openai v0.5.5, v0.8.5.post1, v0.12.0 and
    v0.15.1 (``.vllm_images`` has their digests and layouts; ``.mirrors`` maps docker.io to it)."""
    registry = LocalRegistry(tmp_path_factory.mktemp("oci-registry"), builder=oci_image_builder)
    registry.start()
    try:
        registry.push_vllm_images()
        yield registry
    finally:
        registry.cleanup()


@pytest.fixture(scope="session")
def oci_registry_auth(oci_image_builder, tmp_path_factory):
    """The same, behind Docker-Hub-style token auth (``.token_server``, ``.username``/``.password``);
    ``private/vllm-openai:v0.15.1`` is pullable only with those credentials."""
    registry = LocalRegistry(tmp_path_factory.mktemp("oci-registry-auth"), auth="token", builder=oci_image_builder)
    registry.start()
    try:
        registry.push_vllm_images()
        spec = registry.vllm_images["v0.15.1"]
        registry.push_index("private/vllm-openai", "v0.15.1", spec["platforms"], fmt="oci", attestation=True)
        yield registry
    finally:
        registry.cleanup()
