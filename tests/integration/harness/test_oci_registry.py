"""The local OCI registry harness: a real docker-registry, images built with buildah, checked with skopeo."""

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.harness.oci_registry import VLLM_IMAGES, LocalRegistry
from tests.harness.registry_fixtures import require_registry_tools

pytestmark = pytest.mark.registry

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def skopeo_config(registry, ref, creds=None):
    """The image config as skopeo (an independent client) reads it, or raise CalledProcessError."""
    cmd = ["skopeo", "inspect", "--tls-verify=false", "--config"]
    cmd += ["--creds", creds] if creds else ["--no-creds"]
    out = subprocess.run(cmd + ["docker://%s/%s" % (registry.address, ref)], capture_output=True, text=True,
                         check=True, timeout=30)
    return json.loads(out.stdout)


def raw_get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_registry_speaks_the_distribution_api(oci_registry):
    status, _h, body = raw_get(oci_registry.url + "/v2/")
    assert (status, json.loads(body)) == (200, {})
    status, _h, body = raw_get(oci_registry.url + "/v2/_catalog")
    assert "vllm/vllm-openai" in json.loads(body)["repositories"]
    status, _h, body = raw_get(oci_registry.url + "/v2/vllm/vllm-openai/tags/list")
    assert sorted(json.loads(body)["tags"]) == sorted(VLLM_IMAGES)


@pytest.mark.parametrize("tag", sorted(VLLM_IMAGES))
def test_vllm_images_have_docker_hub_like_layouts(oci_registry, tag):
    spec = VLLM_IMAGES[tag]
    content_type, manifest = oci_registry.get_manifest("vllm/vllm-openai", tag)
    expected = {"docker-v2": DOCKER_MANIFEST, "oci": OCI_MANIFEST, "docker-list": DOCKER_LIST,
                "oci-index": OCI_INDEX, "oci-index+attestation": OCI_INDEX}[spec["layout"]]
    assert content_type == expected
    if "manifests" not in manifest:
        return
    platforms = [(m["platform"]["os"], m["platform"]["architecture"]) for m in manifest["manifests"]]
    wanted = [("linux", p["arch"]) for p in spec["platforms"]]
    if spec["layout"].endswith("+attestation"):
        wanted.append(("unknown", "unknown"))
        attestation = manifest["manifests"][-1]["annotations"]
        assert attestation["vnd.docker.reference.type"] == "attestation-manifest"
        assert attestation["vnd.docker.reference.digest"] == manifest["manifests"][0]["digest"]
    assert platforms == wanted


@pytest.mark.parametrize("tag", sorted(VLLM_IMAGES))
def test_skopeo_reads_the_real_vllm_metadata(oci_registry, tag):
    spec = VLLM_IMAGES[tag]
    config = skopeo_config(oci_registry, "vllm/vllm-openai:" + tag)
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env == spec["platforms"][0]["env"]
    assert env["CUDA_VERSION"] == spec["cuda_version"]
    assert env["NVIDIA_REQUIRE_CUDA"].startswith("cuda>=%s " % spec["cuda_version"].rsplit(".", 1)[0])
    assert (env["NVIDIA_VISIBLE_DEVICES"], env["NVIDIA_DRIVER_CAPABILITIES"]) == ("all", "compute,utility")
    assert config["config"]["Labels"] == spec["platforms"][0]["labels"]
    assert config["config"]["Entrypoint"] == spec["platforms"][0]["entrypoint"]
    assert config["architecture"] == "amd64" and config["os"] == "linux"


def test_nvidia_require_cuda_matches_nvidias_images():
    # Head and tail of the values in NVIDIA's CUDA Dockerfiles (sources in oci_registry.py).
    require = {tag: spec["platforms"][0]["env"]["NVIDIA_REQUIRE_CUDA"] for tag, spec in VLLM_IMAGES.items()}
    assert require["v0.15.1"].startswith("cuda>=12.9 brand=unknown,driver>=535,driver<536 brand=grid,driver>=535,")
    assert require["v0.15.1"].endswith(" brand=vws,driver>=570,driver<571 brand=cloudgaming,driver>=570,driver<571")
    assert require["v0.9.0"].startswith("cuda>=12.8 brand=unknown,driver>=470,driver<471 brand=grid,")
    assert require["v0.9.0"].endswith(" brand=cloudgaming,driver>=565,driver<566")
    assert require["v0.5.5"].startswith("cuda>=12.4 brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,")
    assert require["v0.5.5"].endswith(" brand=titan,driver>=535,driver<536 brand=titanrtx,driver>=535,driver<536")
    assert [len(v.split()) for v in (require["v0.5.5"], require["v0.9.0"], require["v0.15.1"])] == [31, 61, 61]


def test_token_auth_challenges_like_docker_hub(oci_registry_auth):
    url = "%s/v2/vllm/vllm-openai/manifests/v0.15.1" % oci_registry_auth.url
    status, headers, body = raw_get(url, {"Accept": OCI_INDEX})
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="%s"' % oci_registry_auth.token_server.realm)
    assert 'service="local-registry"' in challenge and 'scope="repository:vllm/vllm-openai:pull"' in challenge
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
    # anonymous token from the realm, then the manifest
    status, _h, body = raw_get(oci_registry_auth.token_server.realm
                               + "?service=local-registry&scope=repository:vllm/vllm-openai:pull")
    token = json.loads(body)["token"]
    status, headers, _body = raw_get(url, {"Accept": OCI_INDEX, "Authorization": "Bearer " + token})
    assert status == 200 and headers["Content-Type"] == OCI_INDEX


def test_private_repository_needs_credentials(oci_registry_auth):
    realm = oci_registry_auth.token_server.realm
    url = "%s/v2/private/vllm-openai/manifests/v0.15.1" % oci_registry_auth.url
    scope = "?service=local-registry&scope=repository:private/vllm-openai:pull"
    anonymous = json.loads(raw_get(realm + scope)[2])["token"]
    status, headers, _b = raw_get(url, {"Accept": OCI_INDEX, "Authorization": "Bearer " + anonymous})
    assert status == 401 and 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    import base64
    basic = "Basic " + base64.b64encode(b"tester:wrong").decode()
    status, _h, body = raw_get(realm + scope, {"Authorization": basic})
    assert status == 401 and json.loads(body)["details"] == "incorrect username or password"
    with pytest.raises(subprocess.CalledProcessError):
        skopeo_config(oci_registry_auth, "private/vllm-openai:v0.15.1")
    config = skopeo_config(oci_registry_auth, "private/vllm-openai:v0.15.1", creds=oci_registry_auth.creds)
    assert "CUDA_VERSION=12.9.1" in config["config"]["Env"]


def test_push_image_and_index_formats(oci_image_builder, tmp_path):
    with LocalRegistry(tmp_path, builder=oci_image_builder) as registry:
        d_oci = registry.push_image("t/single", "oci", env={"A": "1"}, fmt="oci")
        d_v2 = registry.push_image("t/single", "v2", env={"A": "1"}, fmt="v2s2")
        assert d_oci != d_v2
        assert registry.get_manifest("t/single", "oci")[0] == OCI_MANIFEST
        assert registry.get_manifest("t/single", d_v2)[0] == DOCKER_MANIFEST
        d_list = registry.push_index("t/multi", "1", [{"arch": "amd64", "env": {"A": "x"}},
                                                      {"arch": "arm64", "variant": "v8", "env": {"A": "a"}}],
                                     fmt="v2s2")
        content_type, manifest = registry.get_manifest("t/multi", d_list)
        assert content_type == DOCKER_LIST
        assert manifest["manifests"][1]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
        assert "A=a" in skopeo_config(registry, "t/multi@%s" % manifest["manifests"][1]["digest"])["config"]["Env"]
        assert registry.running
    assert not registry.running and registry.url is None


def test_builder_builds_each_image_once(oci_image_builder):
    first = oci_image_builder.build(env={"ONCE": "1"})
    assert oci_image_builder.build(env={"ONCE": "1"}) == first
    assert oci_image_builder.build(env={"ONCE": "2"}) != first


def test_missing_tools_skip_locally_but_fail_under_ci(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="docker-registry, buildah, skopeo"):
        require_registry_tools()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true forbids skipping"):
        require_registry_tools()
