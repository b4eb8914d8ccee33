"""The fake vLLM's table of per-release facts: lookups by image tag, boundaries, and that every fact says
where it was read."""

import pytest

from tests.harness.fake_vllm.versions import FACTS, NEWEST, OLDEST, profile, version_from_image, version_key


@pytest.mark.parametrize("image,version", [
    ("vllm/vllm-openai:v0.8.5.post1", "0.8.5.post1"),
    ("docker.io/vllm/vllm-openai:v0.15.1@sha256:abc", "0.15.1"),
    ("vllm/vllm-openai:v0.10.1.1", "0.10.1.1"),
    ("registry.local:5000/vllm/vllm-openai:0.11.0rc1", "0.11.0rc1"),
    ("vllm/vllm-openai:latest", None),
    ("vllm/vllm-openai", None),
])
def test_version_from_image(image, version):
    assert version_from_image(image) == version


def test_version_order_knows_post_and_release_candidates():
    keys = [version_key(v) for v in ("0.8.5rc1", "0.8.5", "0.8.5.post1", "0.9.0", "0.10.0", "0.10.1", "0.10.1.1")]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert version_key("latest") is None


@pytest.mark.parametrize("version,error_body,kv_gauges", [
    ("0.7.3", "flat", ("vllm:gpu_cache_usage_perc",)),  # older than the table: its oldest facts
    ("0.10.0", "flat", ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc")),
    ("0.10.1rc1", "flat", ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc")),
    ("0.10.1", "nested", ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc")),
    ("v0.11.0", "nested", ("vllm:kv_cache_usage_perc",)),
    ("nightly", "nested", ("vllm:kv_cache_usage_perc",)),  # no version in the tag: the newest facts
])
def test_profile_boundaries(version, error_body, kv_gauges):
    facts = profile(version)
    assert (facts.error_body, facts.kv_usage_gauges) == (error_body, kv_gauges)


def test_every_fact_is_sourced_and_ordered_within_the_table():
    assert version_key(OLDEST) < version_key(NEWEST)
    for name, changes in FACTS.items():
        keys = [version_key(since) for since, _value, _source in changes]
        assert keys == sorted(keys) and len(set(keys)) == len(keys), name
        assert all(source and "field-notes" not in source for _s, _v, source in changes), name
        assert keys[-1] <= version_key(NEWEST), name
        assert profile(NEWEST).sources[name] == changes[-1][2]
