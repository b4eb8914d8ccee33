"""The switch lock, a coordination.k8s.io/v1 Lease, against the fake API server (real HTTP, real client)."""

import threading
import time

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.lease import (
    LeaseLock, LockHeld, micro_time, parse_time)

NS = "default"


def lease(collection_kube, holder, duration=30, clock=time.time):
    return LeaseLock(collection_kube, NS, "gpu-mode-worker", holder=holder, duration=duration, clock=clock)


def test_a_second_switcher_fails_fast_naming_the_holder(collection_kube):
    first = lease(collection_kube, "alice@lab pid 1").acquire()
    try:
        started = time.monotonic()
        with pytest.raises(LockHeld) as err:
            lease(collection_kube, "bob@lab pid 2").acquire()
        assert time.monotonic() - started < 1.0
        assert err.value.holder == "alice@lab pid 1"
        assert "held by alice@lab pid 1 since" in str(err.value)
    finally:
        first.release()


def test_release_frees_the_lock_and_keeps_the_transition_count(collection_kube):
    lease(collection_kube, "alice").acquire().release()
    second = lease(collection_kube, "bob").acquire()
    spec = collection_kube.get("coordination.k8s.io/v1", "Lease", "gpu-mode-worker", NS)["spec"]
    second.release()
    assert spec["holderIdentity"] == "bob"
    assert spec["leaseTransitions"] == 1
    assert spec["leaseDurationSeconds"] == 30
    assert parse_time(spec["renewTime"]) == pytest.approx(time.time(), abs=5)


def test_an_expired_lease_is_taken_over(collection_kube):
    past = [time.time() - 100]
    stale = lease(collection_kube, "crashed switcher", duration=10, clock=lambda: past[0])
    stale.try_acquire()  # never renewed nor released: it crashed
    taker = lease(collection_kube, "bob").acquire()
    try:
        assert collection_kube.get("coordination.k8s.io/v1", "Lease", "gpu-mode-worker", NS)["spec"][
            "holderIdentity"] == "bob"
    finally:
        taker.release()


def test_wait_for_lock_waits_until_the_holder_releases(collection_kube):
    first = lease(collection_kube, "alice").acquire()
    threading.Timer(0.5, first.release).start()
    started = time.monotonic()
    second = lease(collection_kube, "bob").acquire(wait=True, timeout=10)
    waited = time.monotonic() - started
    second.release()
    assert 0.4 < waited < 5


def test_renewal_finds_a_lost_lock(collection_kube):
    mine = lease(collection_kube, "alice")
    mine.try_acquire()
    current = collection_kube.get("coordination.k8s.io/v1", "Lease", "gpu-mode-worker", NS)
    current["spec"]["holderIdentity"] = "mallory"
    collection_kube.request("PUT", collection_kube.path("coordination.k8s.io/v1", "Lease", NS, "gpu-mode-worker"),
                            body=current)
    assert mine.renew() is False
    assert mine.lost == "the lock default/gpu-mode-worker is now held by mallory"


def test_of_many_concurrent_switchers_exactly_one_wins(collection_kube, kubeconfig):
    from ansible_collections.baremetal.gpu.plugins.module_utils.kube import Kube

    winners, losers = [], []
    barrier = threading.Barrier(6)

    def contend(i):
        kube = Kube.from_params({"kubeconfig": kubeconfig})
        lock = LeaseLock(kube, NS, "gpu-mode-worker", holder="switcher-%d" % i)
        barrier.wait()
        try:
            lock.try_acquire() and winners.append(i)
        except LockHeld:
            losers.append(i)
        finally:
            kube.close()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    holder = collection_kube.get("coordination.k8s.io/v1", "Lease", "gpu-mode-worker", NS)["spec"]["holderIdentity"]
    assert len(winners) == 1 and holder == "switcher-%d" % winners[0]
    assert len(losers) == 5


def test_micro_time_is_what_the_api_wants():
    assert micro_time(0) == "1970-01-01T00:00:00.000000Z"
    assert parse_time("2026-12-02T05:11:00.5Z") == pytest.approx(1796188260.5)
