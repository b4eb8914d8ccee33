"""plugins/module_utils/oci.py end to end against a real registry (tests/harness/oci_registry.py): no HTTP
mocking. Reference parsing and the NVIDIA helpers are pure functions and are tested here too."""

import hashlib
import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils.oci import (
    ImageReference,
    RegistryError,
    cuda_version_from_config,
    fetch_image_config,
    nvidia_require_satisfied,
    parse_image_reference,
    parse_nvidia_require_cuda,
    parse_www_authenticate,
    registry_base_url,
)
from tests.harness.oci_registry import VLLM_IMAGES, LocalRegistry

SHA = "sha256:" + "a" * 64


# --- references ------------------------------------------------------------------------------------

@pytest.mark.parametrize("ref, expected", [
    ("vllm/vllm-openai:v0.15.1", ("docker.io", "vllm/vllm-openai", "v0.15.1", None)),
    ("ubuntu", ("docker.io", "library/ubuntu", "latest", None)),
    ("docker.io/library/x", ("docker.io", "library/x", "latest", None)),
    ("docker.io/x", ("docker.io", "library/x", "latest", None)),
    ("index.docker.io/vllm/vllm-openai", ("docker.io", "vllm/vllm-openai", "latest", None)),
    ("registry:5000/a/b@" + SHA, ("registry:5000", "a/b", None, SHA)),
    ("registry:5000/a/b:v1@" + SHA, ("registry:5000", "a/b", "v1", SHA)),
    ("localhost/a", ("localhost", "a", "latest", None)),
    ("127.0.0.1:5000/vllm/vllm-openai:v0.8.5.post1", ("127.0.0.1:5000", "vllm/vllm-openai", "v0.8.5.post1", None)),
    ("ghcr.io/vllm-project/vllm-openai:latest", ("ghcr.io", "vllm-project/vllm-openai", "latest", None)),
    ("nvcr.io/nvidia/cuda:12.9.1-base-ubuntu22.04", ("nvcr.io", "nvidia/cuda", "12.9.1-base-ubuntu22.04", None)),
    ("[::1]:5000/a:b", ("[::1]:5000", "a", "b", None)),
    ("qwenllm/qwen3-asr", ("docker.io", "qwenllm/qwen3-asr", "latest", None)),
])
def test_parse_image_reference(ref, expected):
    parsed = parse_image_reference(ref)
    assert isinstance(parsed, ImageReference) and tuple(parsed) == expected
    assert parse_image_reference(str(parsed)) == parsed


@pytest.mark.parametrize("ref, problem", [
    ("", "empty"),
    ("vllm/vllm-openai:v0.15.1 ", None),
    ("vllm/vLLM-openai", "lowercase"),
    ("vllm/vllm-openai:", "invalid tag"),
    ("vllm/vllm-openai:bad/tag", "invalid repository component"),
    ("a//b", "empty path component"),
    ("x@sha256:abc", "64 lowercase hex"),
    ("x@notadigest", "malformed digest"),
    ("https://docker.io/x", "URL scheme"),
    ("vllm openai", "whitespace"),
    ("-x", "invalid repository component"),
    ("registry:5000/", "no repository"),
])
def test_malformed_references_name_the_problem(ref, problem):
    if problem is None:  # surrounding whitespace is forgiven
        assert parse_image_reference(ref).tag == "v0.15.1"
        return
    with pytest.raises(ValueError, match=problem):
        parse_image_reference(ref)


def test_registry_endpoints():
    assert registry_base_url("docker.io") == "https://registry-1.docker.io"
    assert registry_base_url("ghcr.io") == "https://ghcr.io"
    assert registry_base_url("ghcr.io", insecure=True) == "http://ghcr.io"
    assert registry_base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_base_url("localhost:5000") == "http://localhost:5000"
    assert registry_base_url("docker.io", {"docker.io": "http://127.0.0.1:9/"}) == "http://127.0.0.1:9"
    assert registry_base_url("docker.io", {"registry-1.docker.io": "mirror.local"}) == "https://mirror.local"


def test_parse_www_authenticate():
    scheme, params = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:vllm/vllm-openai:pull",error="insufficient_scope"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:vllm/vllm-openai:pull", "error": "insufficient_scope"}
    assert parse_www_authenticate('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


# --- reading configs from the local registry -------------------------------------------------------

pytestmark_registry = pytest.mark.registry


def skopeo_env(registry, ref, arch="amd64"):
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--no-creds", "--config",
                          "--override-arch", arch, "docker://%s/%s" % (registry.address, ref)],
                         capture_output=True, text=True, check=True, timeout=30)
    return dict(item.split("=", 1) for item in json.loads(out.stdout)["config"]["Env"])


@pytestmark_registry
@pytest.mark.parametrize("tag", sorted(VLLM_IMAGES))
def test_reads_every_vllm_image_through_a_docker_io_mirror(oci_registry, tag):
    spec = oci_registry.vllm_images[tag]
    result = fetch_image_config("vllm/vllm-openai:" + tag, registry_mirrors=oci_registry.mirrors)
    assert result["reference"] == "docker.io/vllm/vllm-openai:" + tag
    assert result["digest"] == spec["digest"]
    assert result["env"] == skopeo_env(oci_registry, "vllm/vllm-openai:" + tag)
    assert result["env"]["CUDA_VERSION"] == spec["cuda_version"]
    assert result["labels"] == spec["platforms"][0]["labels"]
    assert result["entrypoint"] == spec["platforms"][0]["entrypoint"]
    assert (result["architecture"], result["os"], result["cached"]) == ("amd64", "linux", False)
    assert cuda_version_from_config(result) == spec["cuda_version"]
    media = {"docker-v2": "application/vnd.docker.distribution.manifest.v2+json",
             "docker-list": "application/vnd.docker.distribution.manifest.list.v2+json",
             "oci-index+attestation": "application/vnd.oci.image.index.v1+json"}[spec["layout"]]
    assert result["media_type"] == media
    if "index" in media or "list" in media:
        assert result["manifest_digest"] != result["digest"]
    else:
        assert result["manifest_digest"] == result["digest"]


@pytestmark_registry
def test_picks_the_requested_platform_from_an_index(oci_registry):
    ref = "%s/vllm/vllm-openai:v0.15.1" % oci_registry.address  # loopback registry: plain http
    arm = fetch_image_config(ref, platform="linux/arm64")
    amd = fetch_image_config(ref)
    assert (arm["architecture"], arm["env"]["NVARCH"]) == ("arm64", "sbsa")
    assert (amd["architecture"], amd["env"]["NVARCH"]) == ("amd64", "x86_64")
    assert arm["digest"] == amd["digest"] and arm["manifest_digest"] != amd["manifest_digest"]
    assert arm["env"] == skopeo_env(oci_registry, "vllm/vllm-openai:v0.15.1", arch="arm64")
    assert fetch_image_config(ref, platform="linux/arm64/v8")["manifest_digest"] == arm["manifest_digest"]
    with pytest.raises(RegistryError, match=r"no image for platform linux/s390x .*offers: linux/amd64, linux/arm64\)"):
        fetch_image_config(ref, platform="linux/s390x")
    with pytest.raises(ValueError, match="os/arch"):
        fetch_image_config(ref, platform="amd64")


@pytestmark_registry
def test_reads_by_digest_and_a_single_oci_manifest(oci_registry):
    digest = oci_registry.vllm_images["v0.12.0"]["digest"]
    by_digest = fetch_image_config("%s/vllm/vllm-openai@%s" % (oci_registry.address, digest))
    assert by_digest["digest"] == digest and by_digest["env"]["CUDA_VERSION"] == "12.9.1"
    pushed = oci_registry.push_image("client/oci-single", "1", env={"CUDA_VERSION": "12.6.3"},
                                     labels={"x": "y"}, fmt="oci")
    single = fetch_image_config("%s/client/oci-single:1" % oci_registry.address)
    assert single["media_type"] == "application/vnd.oci.image.manifest.v1+json"
    assert (single["digest"], single["env"], single["labels"]) == (pushed, {"CUDA_VERSION": "12.6.3"}, {"x": "y"})


@pytestmark_registry
def test_missing_tag_or_repository_is_a_registry_error(oci_registry):
    with pytest.raises(RegistryError, match="not found.*MANIFEST_UNKNOWN") as err:
        fetch_image_config("vllm/vllm-openai:v9.9.9", registry_mirrors=oci_registry.mirrors)
    assert err.value.status == 404
    with pytest.raises(RegistryError, match="not found"):
        fetch_image_config("%s/nobody/here@%s" % (oci_registry.address, SHA))


@pytestmark_registry
def test_anonymous_bearer_token_flow(oci_registry_auth):
    before = len(oci_registry_auth.token_server.requests)
    result = fetch_image_config("vllm/vllm-openai:v0.8.5.post1", registry_mirrors=oci_registry_auth.mirrors)
    assert result["digest"] == oci_registry_auth.vllm_images["v0.8.5.post1"]["digest"]
    assert result["env"]["CUDA_VERSION"] == "12.4.1"
    issued = oci_registry_auth.token_server.requests[before:]
    assert len(issued) == 1  # one token serves the index, the manifest and the config blob
    account, scopes, granted = issued[0]
    assert account is None and scopes == ["repository:vllm/vllm-openai:pull"]
    assert granted == [{"type": "repository", "name": "vllm/vllm-openai", "actions": ["pull"]}]


@pytestmark_registry
def test_private_repository_with_credentials(oci_registry_auth):
    ref = "%s/private/vllm-openai:v0.15.1" % oci_registry_auth.address
    with pytest.raises(RegistryError, match="refused anonymous access: give username and password") as err:
        fetch_image_config(ref)
    assert err.value.status == 401
    with pytest.raises(RegistryError, match="token server .* refused user 'tester' \\(HTTP 401\\): incorrect username"):
        fetch_image_config(ref, username="tester", password="wrong")
    result = fetch_image_config(ref, username=oci_registry_auth.username, password=oci_registry_auth.password)
    assert result["env"]["CUDA_VERSION"] == "12.9.1"
    assert oci_registry_auth.token_server.requests[-1][0] == "tester"


@pytestmark_registry
def test_cache_answers_without_network_once_the_registry_is_gone(oci_image_builder, tmp_path):
    cache = str(tmp_path / "cache")
    registry = LocalRegistry(tmp_path / "reg", builder=oci_image_builder)
    registry.start()
    try:
        registry.push_index("vllm/vllm-openai", "v0.15.1", VLLM_IMAGES["v0.15.1"]["platforms"], attestation=True)
        kwargs = {"registry_mirrors": registry.mirrors, "cache_dir": cache}
        first = fetch_image_config("vllm/vllm-openai:v0.15.1", **kwargs)
        second = fetch_image_config("vllm/vllm-openai:v0.15.1", **kwargs)
        pinned = fetch_image_config("vllm/vllm-openai@" + first["digest"], **kwargs)
    finally:
        registry.stop()
    assert (first["cached"], second["cached"], pinned["cached"]) == (False, True, False)
    assert dict(first, cached=True) == second
    assert not registry.running
    # the registry is gone: the cache answers, tag or digest alike
    third = fetch_image_config("vllm/vllm-openai:v0.15.1", **kwargs)
    assert third == second
    assert fetch_image_config("vllm/vllm-openai@" + first["digest"], cache_ttl=0, **kwargs)["cached"] is True
    with pytest.raises(RegistryError, match="cannot reach .*Connection refused"):
        fetch_image_config("vllm/vllm-openai:v0.15.1", cache_ttl=0, **kwargs)
    with pytest.raises(RegistryError, match="cannot reach"):
        fetch_image_config("vllm/vllm-openai:v0.15.1", registry_mirrors=kwargs["registry_mirrors"])


@pytestmark_registry
def test_stale_cache_revalidates_by_digest_and_follows_a_moved_tag(oci_image_builder, tmp_path):
    cache = str(tmp_path / "cache")
    with LocalRegistry(tmp_path / "reg", builder=oci_image_builder) as registry:
        kwargs = {"registry_mirrors": registry.mirrors, "cache_dir": cache}
        registry.push_image("vllm/vllm-openai", "moving", env={"CUDA_VERSION": "12.8.1"}, fmt="oci")
        first = fetch_image_config("vllm/vllm-openai:moving", **kwargs)
        # without its config blob the image can only be answered from the cache after checking the digest
        assert registry.delete_blob("vllm/vllm-openai", first["config_digest"]) == 202
        with pytest.raises(RegistryError, match="BLOB_UNKNOWN"):
            fetch_image_config("vllm/vllm-openai:moving", registry_mirrors=registry.mirrors)
        revalidated = fetch_image_config("vllm/vllm-openai:moving", cache_ttl=0, **kwargs)
        assert revalidated == first  # the tag still points at the same digest; cached is False: it asked
        registry.push_image("vllm/vllm-openai", "moving", env={"CUDA_VERSION": "12.9.1"}, fmt="oci")
        assert fetch_image_config("vllm/vllm-openai:moving", **kwargs)["env"]["CUDA_VERSION"] == "12.8.1"
        moved = fetch_image_config("vllm/vllm-openai:moving", cache_ttl=0, **kwargs)
        assert moved["env"]["CUDA_VERSION"] == "12.9.1" and moved["digest"] != first["digest"]


def test_corrupt_cache_is_ignored(tmp_path):
    # Garbage where the cache entry lives is read as a miss: the answer then comes from the network.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ref = "127.0.0.1:%d/a/b:c" % port
    key = hashlib.sha256(("%s|linux/amd64" % ref).encode()).hexdigest()
    (tmp_path / ("oci-config-%s.json" % key)).write_text("{not json")
    with pytest.raises(RegistryError, match="cannot reach"):
        fetch_image_config(ref, cache_dir=str(tmp_path), timeout=2)


def test_timeout_when_the_registry_never_answers():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # accepts connections (kernel backlog) but never answers
        start = time.monotonic()
        with pytest.raises(RegistryError, match="timed out after 0.3s"):
            fetch_image_config("127.0.0.1:%d/a/b:c" % sock.getsockname()[1], timeout=0.3)
        assert time.monotonic() - start < 3


class _TamperingRegistry(BaseHTTPRequestHandler):
    """Answers every manifest request with a body that is not what the digest names."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"digest": SHA}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Docker-Content-Digest", SHA)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_content_not_matching_its_digest_is_refused():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TamperingRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(RegistryError, match="does not match its digest " + SHA):
            fetch_image_config("127.0.0.1:%d/a/b:c" % server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# --- NVIDIA metadata -------------------------------------------------------------------------------

REQUIRE = {tag: spec["platforms"][0]["env"]["NVIDIA_REQUIRE_CUDA"] for tag, spec in VLLM_IMAGES.items()}


def test_parse_nvidia_require_cuda_of_real_images():
    cuda129 = parse_nvidia_require_cuda(REQUIRE["v0.15.1"])
    assert cuda129["cuda"] == (12, 9)
    assert cuda129["alternatives"][0] == [("cuda", ">=", "12.9")]
    assert cuda129["alternatives"][1] == [("brand", "=", "unknown"), ("driver", ">=", "535"), ("driver", "<", "536")]
    assert cuda129["forward_compat"]["tesla"] == [535, 550, 560, 565, 570]
    assert "geforce" not in cuda129["forward_compat"]
    cuda124 = parse_nvidia_require_cuda(REQUIRE["v0.5.5"])
    assert cuda124["cuda"] == (12, 4) and cuda124["forward_compat"]["geforce"] == [470, 525, 535]
    assert parse_nvidia_require_cuda("") == {"cuda": None, "alternatives": [], "forward_compat": {}}
    with pytest.raises(ValueError, match="cannot read"):
        parse_nvidia_require_cuda("cuda>=12.9 brand~tesla")
    with pytest.raises(ValueError, match="unknown NVIDIA requirement key"):
        parse_nvidia_require_cuda("gpu>=1")


def test_nvidia_require_satisfied_matches_the_reference_deployments():
    # The home lab (docs/reference-deployments.md): RTX 3060, driver 570.195.03 = CUDA 12.8.
    rtx = {"driver_cuda": "12.8", "driver_version": "570.195.03", "brand": "geforce"}
    assert nvidia_require_satisfied(REQUIRE["v0.8.5.post1"], **rtx) is True
    assert nvidia_require_satisfied(REQUIRE["v0.15.1"], **rtx) is False  # error 804 on GeForce
    # the same driver on a datacenter card: forward compatibility (driver branch 570 listed for tesla)
    assert nvidia_require_satisfied(REQUIRE["v0.15.1"], "12.8", "570.195.03", "tesla") is True
    assert nvidia_require_satisfied(REQUIRE["v0.15.1"], "12.9", "575.51.03", "geforce") is True
    assert nvidia_require_satisfied(REQUIRE["v0.15.1"], "12.8", None, None) is False
    assert nvidia_require_satisfied("", "11.0") is True
    assert nvidia_require_satisfied("cuda>=12.0 arch>=7.5", "12.4", arch="7.0") is True  # space: OR
    assert nvidia_require_satisfied("cuda>=12.0,arch>=7.5", "12.4", arch="7.0") is False  # comma: AND


def test_cuda_version_from_config():
    assert cuda_version_from_config({"env": {"CUDA_VERSION": "12.9.1"}}) == "12.9.1"
    assert cuda_version_from_config({"env": {"NVIDIA_REQUIRE_CUDA": REQUIRE["v0.15.1"]}}) == "12.9"
    assert cuda_version_from_config({"CUDA_VERSION": "12.4.1"}) == "12.4.1"
    assert cuda_version_from_config({"env": {"CUDA_VERSION": "garbage", "NVIDIA_REQUIRE_CUDA": "x"}}) is None
    assert cuda_version_from_config({"env": {}}) is None
    assert cuda_version_from_config(None) is None


@pytestmark_registry
def test_cache_files_are_plain_json(tmp_path, oci_registry):
    result = fetch_image_config("vllm/vllm-openai:v0.5.5", registry_mirrors=oci_registry.mirrors,
                                cache_dir=str(tmp_path))
    files = list(tmp_path.glob("oci-config-*.json"))
    assert len(files) == 1
    entry = json.loads(files[0].read_text())
    assert entry["reference"] == "docker.io/vllm/vllm-openai:v0.5.5" and entry["digest"] == result["digest"]
    assert files[0].name == "oci-config-%s.json" % hashlib.sha256(
        b"docker.io/vllm/vllm-openai:v0.5.5|linux/amd64").hexdigest()
