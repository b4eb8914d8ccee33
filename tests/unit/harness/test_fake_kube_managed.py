"""Server-side apply and field ownership (managedFields) of the fake API server."""

import pytest

from tests.harness.fake_kube.errors import ApiError
from tests.harness.fake_kube.managed import (
    apply,
    field_set,
    from_fields_v1,
    read_entries,
    to_fields_v1,
    track_update,
)

NOW = "2025-01-01T00:00:00Z"


def config(replicas=1, image="vllm:1", labels=None, env=None):
    container = {"name": "vllm", "image": image}
    if env is not None:
        container["env"] = env
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "vllm", "namespace": "ml", "labels": labels or {"app": "vllm"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}}}


def do_apply(live, applied, manager="mgr", force=False):
    return apply(live, applied, manager, force, "apps/v1", NOW, "deployments", "apps")


def owners(obj):
    return {e.manager: e for e in read_entries(obj)}


def test_field_set_uses_keyed_list_items_and_round_trips_fields_v1():
    paths = field_set(config(env=[{"name": "A", "value": "1"}]))
    container = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"vllm"}')
    assert container + (".",) in paths
    assert container + ("f:image",) in paths
    assert container + ("f:env", 'k:{"name":"A"}', "f:value") in paths
    assert ("f:metadata", "f:labels", "f:app") in paths
    assert not any(p[:2] == ("f:metadata", "f:name") for p in paths), "identity is not owned"
    assert from_fields_v1(to_fields_v1(paths)) == paths


def test_apply_creates_then_reapply_is_identical():
    created = do_apply(None, config())
    assert created["spec"]["replicas"] == 1
    [entry] = read_entries(created)
    assert (entry.manager, entry.operation) == ("mgr", "Apply")
    again = do_apply(created, config())
    assert again == created, "identical re-apply must not change anything (not even times)"


def test_conflict_with_another_manager_then_force_takes_ownership():
    live = do_apply(None, config(replicas=1), manager="first")
    with pytest.raises(ApiError) as err:
        do_apply(live, config(replicas=3), manager="second")
    body = err.value.body
    assert err.value.code == 409 and body["reason"] == "Conflict"
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict", "message":
                                          'conflict with "first" using apps/v1', "field": ".spec.replicas"}]
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "first" using apps/v1: .spec.replicas'
    forced = do_apply(live, config(replicas=3), manager="second", force=True)
    assert forced["spec"]["replicas"] == 3
    managers = owners(forced)
    assert ("f:spec", "f:replicas") in managers["second"].fields
    assert ("f:spec", "f:replicas") not in managers["first"].fields


def test_same_value_from_two_managers_is_shared_not_a_conflict():
    live = do_apply(None, config(replicas=2), manager="first")
    shared = do_apply(live, config(replicas=2), manager="second")
    managers = owners(shared)
    assert ("f:spec", "f:replicas") in managers["first"].fields & managers["second"].fields


def test_fields_dropped_from_the_config_are_removed_unless_someone_else_owns_them():
    live = do_apply(None, config(labels={"app": "vllm", "mode": "ml"}, env=[{"name": "A", "value": "1"}]))
    pruned = do_apply(live, config(labels={"app": "vllm"}))
    assert pruned["metadata"]["labels"] == {"app": "vllm"}
    assert "env" not in pruned["spec"]["template"]["spec"]["containers"][0]
    shared = do_apply(live, config(labels={"app": "vllm", "mode": "ml"}), manager="other")
    kept = do_apply(shared, config(labels={"app": "vllm"}))
    assert kept["metadata"]["labels"] == {"app": "vllm", "mode": "ml"}


def test_update_moves_changed_fields_to_the_updater_so_a_later_apply_conflicts():
    live = do_apply(None, config(replicas=1), manager="kubectl")
    scaled = dict(live, spec=dict(live["spec"], replicas=0))
    scaled["metadata"] = dict(live["metadata"])
    track_update(live, scaled, "kubectl-scale", "apps/v1", NOW, "scale")
    managers = owners(scaled)
    assert ("f:spec", "f:replicas") in managers["kubectl-scale"].fields
    assert managers["kubectl-scale"].subresource == "scale"
    assert ("f:spec", "f:replicas") not in managers["kubectl"].fields
    with pytest.raises(ApiError):
        do_apply(scaled, config(replicas=1), manager="kubectl")
