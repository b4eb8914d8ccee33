"""kube-controller-manager's side: the asynchronous garbage collector (dangling owners, foreground and orphan
deletion), the Deployment progress deadline, FailedCreate from the DaemonSet controller, and one broken
object never stalling the rest. Time scale 0.05."""

import uuid

import pytest

from tests.harness.kubelet import KubeletSimulator
from tests.harness.kubelet.testing import (available, container, deployment, events, pod, pods_of, ready,
                                           wait_for)

SCALE = 0.05


@pytest.fixture
def sim(kube_api):
    with KubeletSimulator(kube_api.url, time_scale=SCALE) as simulator:
        yield simulator
    assert not simulator.errors, simulator.errors


def replicaset(name, finalizers=()):
    template = {"metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 30,
                         "containers": [container(command=["sh", "-c", "sleep infinity"])]}}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "finalizers": list(finalizers)},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template}}


def exists(kube_api, kind, name):
    return any(o["metadata"]["name"] == name for o in kube_api.list(kind, "default"))


def test_dependents_of_a_missing_owner_are_collected(kube_api, sim):
    ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost", "uid": str(uuid.uuid4()),
             "controller": True, "blockOwnerDeletion": True}
    orphan = pod("orphan", container(command=["sh", "-c", "trap 'exit 0' TERM; sleep infinity"]))
    orphan["metadata"]["ownerReferences"] = [ghost]
    kube_api.create(orphan)
    owner = kube_api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    alive = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    kube_api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "two-owners", "ownerReferences": [alive, dict(ghost, controller=False)]}})
    wait_for(lambda: not exists(kube_api, "Pod", "orphan"), what="the pod of a missing owner deleted")
    wait_for(lambda: kube_api.get("ConfigMap", "two-owners")["metadata"]["ownerReferences"] == [alive],
             what="the dangling reference removed, the object kept")


def test_foreground_deletion_waits_for_the_dependents_to_be_gone(kube_api, sim):
    kube_api.create(replicaset("fg", finalizers=["foregroundDeletion"]))
    [dependent] = wait_for(lambda: [p for p in pods_of(kube_api, "fg") if ready(p)], what="pod ready")
    kube_api.registry.delete(kube_api.resource("ReplicaSet"), "default", "fg")
    wait_for(lambda: pods_of(kube_api, "fg") and pods_of(kube_api, "fg")[0]["metadata"].get("deletionTimestamp"),
             what="the dependent terminating")
    assert kube_api.get("ReplicaSet", "fg")["metadata"]["deletionTimestamp"], "the owner waits for it"
    wait_for(lambda: not pods_of(kube_api, "fg"), what="the dependent gone (after its grace period)")
    wait_for(lambda: not exists(kube_api, "ReplicaSet", "fg"), what="then the owner")
    assert dependent["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True


def test_orphan_deletion_keeps_the_dependents_without_the_reference(kube_api, sim):
    kube_api.create(replicaset("orphaning", finalizers=["orphan"]))
    wait_for(lambda: [p for p in pods_of(kube_api, "orphaning") if ready(p)], what="pod ready")
    kube_api.registry.delete(kube_api.resource("ReplicaSet"), "default", "orphaning")
    wait_for(lambda: not exists(kube_api, "ReplicaSet", "orphaning"), what="the owner gone")
    [kept] = pods_of(kube_api, "orphaning")
    assert not kept["metadata"].get("ownerReferences") and not kept["metadata"].get("deletionTimestamp")


def test_a_rollout_that_does_not_progress_exceeds_its_deadline(kube_api, sim):
    never_ready = container(command=["sleep", "infinity"], readinessProbe={"exec": {"command": ["false"]},
                                                                           "periodSeconds": 1})
    manifest = deployment("stuck", never_ready)
    manifest["spec"]["progressDeadlineSeconds"] = 10
    kube_api.create(manifest)

    def timed_out():
        conditions = (kube_api.get("Deployment", "stuck").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Progressing" and c["status"] == "False"), None)

    condition = wait_for(timed_out, what="ProgressDeadlineExceeded")
    [rs] = kube_api.list("ReplicaSet", "default")
    assert (condition["reason"], condition["message"]) == (
        "ProgressDeadlineExceeded", f'ReplicaSet "{rs["metadata"]["name"]}" has timed out progressing.')


def test_a_refused_daemon_pod_is_a_failed_create_event(kube_api, sim):
    template = {"metadata": {"labels": {"app": "agent"}},
                "spec": {"serviceAccountName": "nobody", "containers": [container(command=["sleep", "infinity"])]}}
    kube_api.create({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                     "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template}})
    [event] = wait_for(lambda: events(kube_api, "FailedCreate", about="agent"), what="FailedCreate")
    assert event["type"] == "Warning" and event["source"]["component"] == "daemonset-controller"
    assert 'serviceaccount "nobody" not found' in event["message"]


def test_one_broken_object_never_stalls_the_rest(kube_api):
    # a pod the API server let through with a quantity nobody can parse: the scheduler reports it, once, on it
    broken = pod("broken", container(command=["sleep", "infinity"], resources={"requests": {"memory": "16GB"}}))
    broken["metadata"].update(uid=str(uuid.uuid4()), resourceVersion="1", creationTimestamp="2026-01-01T00:00:00Z")
    broken["status"] = {"phase": "Pending"}
    kube_api.store.create(kube_api.resource("Pod"), broken)
    with KubeletSimulator(kube_api.url, time_scale=SCALE) as sim:
        kube_api.create(deployment("fine", container(command=["sleep", "infinity"])))
        wait_for(lambda: available(kube_api, "fine", 1), what="the others keep going")
        wait_for(lambda: events(kube_api, "SyncError", about="broken"), what="the error reported on the object")
        assert len(sim.errors) == 1 and "16GB" in sim.errors[0], sim.errors


def test_owners_of_any_kind_are_finalized_like_a_deleted_job(kube_api, sim):
    # a Job is deleted with the API's default for Jobs (orphan): the collector, watching every kind the API
    # serves, removes the references to it, then its finalizer; the pod stays
    job = kube_api.create({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"}, "spec": {
        "template": {"spec": {"restartPolicy": "Never", "containers": [container(command=["sleep", "infinity"])]}}}})
    worker = pod("once-worker", container(command=["sleep", "infinity"]))
    worker["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": "once",
                                              "uid": job["metadata"]["uid"], "controller": True}]
    kube_api.create(worker)
    kube_api.registry.delete(kube_api.resource("Job"), "default", "once")
    wait_for(lambda: not exists(kube_api, "Job", "once"), what="the Job gone")
    assert not kube_api.get("Pod", "once-worker")["metadata"].get("ownerReferences")
