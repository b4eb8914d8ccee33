"""The store's two histories with a controlled clock: the per-resource watch cache (capacity 100 that
grows while events are younger than 75 s) and etcd's compaction every 5 minutes."""

import asyncio

import pytest

from tests.harness.fake_kube.errors import ApiError
from tests.harness.fake_kube.resources import ResourceTable
from tests.harness.fake_kube.store import LIST_EXPIRED, Gone, Store, Watcher

TABLE = ResourceTable()
CONFIGMAPS = TABLE.lookup("", "v1", "configmaps")
SECRETS = TABLE.lookup("", "v1", "secrets")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def cm(name, data="0"):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"v": data}}


def watch_from(store, res, since):
    loop = asyncio.new_event_loop()
    try:
        watcher = Watcher(res, None, loop)
        events = store.subscribe(watcher, since)
        store.unsubscribe(watcher)
        return [e.rv for e in events]
    finally:
        loop.close()


def test_watch_cache_keeps_at_least_its_lower_bound_then_evicts_events_older_than_the_fresh_window():
    clock = Clock()
    store = Store(watch_cache_size=4, event_fresh_seconds=75, clock=clock)
    for n in range(4):
        store.create(CONFIGMAPS, cm(f"c{n}"))
        clock.now += 100  # each event older than the window by the time the next comes
    assert watch_from(store, CONFIGMAPS, 0) == [1, 2, 3, 4], "nothing evicted yet: the cache is not full"
    store.create(CONFIGMAPS, cm("c4"))
    with pytest.raises(Gone) as err:
        watch_from(store, CONFIGMAPS, 0)
    assert err.value.body["message"] == "too old resource version: 0 (1)"
    assert watch_from(store, CONFIGMAPS, 1) == [2, 3, 4, 5]


def test_watch_cache_grows_instead_of_evicting_fresh_events():
    clock = Clock()
    store = Store(watch_cache_size=4, watch_cache_max=16, event_fresh_seconds=75, clock=clock)
    for n in range(12):
        store.create(CONFIGMAPS, cm(f"c{n}"))
        clock.now += 1
    assert watch_from(store, CONFIGMAPS, 0) == list(range(1, 13)), "all within 75 s: capacity doubled to 16"
    for n in range(12, 20):
        store.create(CONFIGMAPS, cm(f"c{n}"))
    with pytest.raises(Gone):
        watch_from(store, CONFIGMAPS, 0)  # the upper bound (16) is reached: the oldest go


def test_watch_caches_are_per_resource():
    clock = Clock()
    store = Store(watch_cache_size=2, event_fresh_seconds=0, clock=clock)
    store.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}})
    for n in range(5):
        store.create(CONFIGMAPS, cm(f"c{n}"))
    assert watch_from(store, SECRETS, 0) == [1], "a quiet resource's cache still covers its history"
    with pytest.raises(Gone):
        watch_from(store, CONFIGMAPS, 1)


def test_etcd_compaction_keeps_one_to_two_intervals_of_history():
    clock = Clock()
    store = Store(compaction_interval=300, clock=clock)
    store.create(CONFIGMAPS, cm("a"))                       # rv 1
    store.update(CONFIGMAPS, cm("a", "1"))                  # rv 2
    assert [o["data"]["v"] for o in store.state_at(CONFIGMAPS, "default", 1)] == ["0"]
    clock.now += 301                                        # first tick: records rv 2, compacts to 0
    store.update(CONFIGMAPS, cm("a", "2"))                  # rv 3
    assert store.compacted == 0
    assert [o["data"]["v"] for o in store.state_at(CONFIGMAPS, "default", 1)] == ["0"]
    clock.now += 300                                        # second tick: compacts to rv 2
    assert store.compacted == 2
    with pytest.raises(ApiError) as err:
        store.state_at(CONFIGMAPS, "default", 1)
    assert (err.value.code, err.value.body["reason"], err.value.body["message"]) == (410, "Expired", LIST_EXPIRED)
    assert [o["data"]["v"] for o in store.state_at(CONFIGMAPS, "default", 2)] == ["1"]
    store.delete(CONFIGMAPS, "default", "a")               # rv 4
    assert [o["data"]["v"] for o in store.state_at(CONFIGMAPS, "default", 3)] == ["2"]
    assert store.state_at(CONFIGMAPS, "default", 4) == []
