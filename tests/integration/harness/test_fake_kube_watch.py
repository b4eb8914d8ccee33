"""Watch and list resourceVersion semantics with compaction (knobs make it frequent), through the official
client where it has a say: 410 Gone for a watch the watch cache can no longer serve, 410 for Exact
lists and continue tokens past etcd's compaction, bookmarks at the apiserver's cadence."""

import json
import threading
import time

import pytest
from kubernetes import client as k8s, config, watch
from kubernetes.client.exceptions import ApiException

from tests.harness.fake_kube import FakeKubeAPI

CMS = "/api/v1/namespaces/default/configmaps"


def cm(name):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}


def get(api, path, token=None):
    try:
        with api.urlopen(path, timeout=10, token=token) as resp:
            return resp.status, resp.read()
    except Exception as err:  # urllib's HTTPError carries the Status body
        return err.code, err.read()


def lines(payload):
    return [json.loads(line) for line in payload.splitlines() if line.strip()]


@pytest.fixture
def compacting_api(tmp_path):
    """A server whose watch cache keeps 5 events per resource and whose etcd compacts every 0.3 s."""
    with FakeKubeAPI(watch_cache_size=5, watch_cache_max=5, event_fresh_seconds=0, compaction_interval=0.3) as api:
        yield api


def test_the_official_client_sees_410_gone_for_a_compacted_watch(compacting_api, tmp_path):
    api_client = config.new_client_from_config(config_file=compacting_api.write_kubeconfig(tmp_path / "kc"))
    core = k8s.CoreV1Api(api_client)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    for n in range(8):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{n}"}})
    with pytest.raises(ApiException) as err:
        for _event in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=start,
                                           timeout_seconds=5):
            pass
    assert err.value.status == 410
    assert f"too old resource version: {start} (" in str(err.value.reason)
    recent = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    seen = [e["object"].metadata.name for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=recent, timeout_seconds=1)]
    assert seen == ["after"], "a fresh resourceVersion still watches"
    api_client.close()


def test_compaction_knobs_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("BAREMETAL_GPU_FAKE_KUBE_WATCH_CACHE_SIZE", "3")
    monkeypatch.setenv("BAREMETAL_GPU_FAKE_KUBE_EVENT_FRESH_SECONDS", "0")
    with FakeKubeAPI() as api:
        for n in range(5):
            api.create(cm(f"c{n}"))
        code, payload = get(api, f"{CMS}?watch=1&resourceVersion=1&timeoutSeconds=1")
    assert code == 200 and lines(payload)[0]["object"]["code"] == 410


def test_exact_lists_and_continue_tokens_expire_with_etcd_compaction(compacting_api):
    api = compacting_api
    for n in range(4):
        api.create(cm(f"c{n}"))
    code, payload = get(api, f"{CMS}?limit=2")
    first = json.loads(payload)
    token, rv = first["metadata"]["continue"], first["metadata"]["resourceVersion"]
    assert code == 200 and [i["metadata"]["name"] for i in first["items"]] == ["c0", "c1"]
    assert first["metadata"]["remainingItemCount"] == 3
    api.create(cm("c-late"))
    code, payload = get(api, f"{CMS}?limit=2&continue={token}")
    page = json.loads(payload)
    assert [i["metadata"]["name"] for i in page["items"]] == ["c2", "c3"], "pages come from the first page's revision"
    assert page["metadata"]["resourceVersion"] == rv
    code, payload = get(api, f"{CMS}?resourceVersion={rv}&resourceVersionMatch=Exact")
    assert code == 200 and "c-late" not in payload.decode()
    deadline = time.monotonic() + 5
    while True:  # two compaction ticks (0.3 s each) take the revision away
        api.create(cm(f"tick-{time.monotonic_ns()}"))
        code, payload = get(api, f"{CMS}?resourceVersion={rv}&resourceVersionMatch=Exact")
        if code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    status = json.loads(payload)
    assert (code, status["reason"], status["message"]) == (410, "Expired",
                                                           "The resourceVersion for the provided list is too old.")
    code, payload = get(api, f"{CMS}?limit=2&continue={token}")
    assert code == 410 and json.loads(payload)["message"].startswith("The provided continue parameter is too old")


def test_list_resource_version_semantics(kube_api):
    current = int(json.loads(get(kube_api, CMS)[1])["metadata"]["resourceVersion"])
    threading.Timer(0.3, lambda: kube_api.create(cm("arrives"))).start()
    code, payload = get(kube_api, f"{CMS}?resourceVersion={current + 1}&resourceVersionMatch=NotOlderThan")
    assert code == 200 and "arrives" in payload.decode(), "a NotOlderThan list waits for the revision"
    started = time.monotonic()
    code, payload = get(kube_api, f"{CMS}?resourceVersion={current + 1000}")
    status = json.loads(payload)
    assert (code, status["reason"]) == (504, "Timeout") and time.monotonic() - started >= 2.9
    assert status["message"].startswith(f"Timeout: Too large resource version: {current + 1000}, current: ")
    assert status["details"]["causes"] == [{"reason": "ResourceVersionTooLarge",
                                            "message": "Too large resource version"}]
    code, payload = get(kube_api, f"{CMS}?resourceVersionMatch=Exact")
    assert code == 422 and json.loads(payload)["details"]["causes"][0]["message"] == \
        "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"


def test_bookmarks_come_every_minute_and_just_before_the_timeout(kube_api):
    started = time.monotonic()
    code, payload = get(kube_api, f"{CMS}?watch=1&allowWatchBookmarks=true&timeoutSeconds=3")
    events = lines(payload)
    assert code == 200 and time.monotonic() - started >= 2.9
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert len(bookmarks) == 1, "no bookmark per second: one 2 s before the 3 s timeout (the next is 60 s away)"
    code, payload = get(kube_api, f"{CMS}?watch=1&allowWatchBookmarks=true&timeoutSeconds=1")
    assert not [e for e in lines(payload) if e["type"] == "BOOKMARK"], "a watch under 2 s gets none"


def test_send_initial_events_ends_with_the_annotated_bookmark(kube_api):
    kube_api.create(cm("existing"))
    code, payload = get(kube_api, f"{CMS}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                                  "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")
    events = lines(payload)
    names = [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"]
    assert "existing" in names
    end = [e for e in events if e["type"] == "BOOKMARK"][0]
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    code, payload = get(kube_api, f"{CMS}?watch=1&sendInitialEvents=true&timeoutSeconds=1")
    causes = [c["message"] for c in json.loads(payload)["details"]["causes"]]
    assert code == 422 and causes == [
        "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true"]
