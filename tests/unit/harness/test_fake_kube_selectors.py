"""Label and field selector parsing and matching of the fake API server."""

import pytest

from tests.harness.fake_kube.errors import ApiError
from tests.harness.fake_kube.selectors import (
    fields_match,
    labels_match,
    match_label_selector,
    parse_field_selector,
    parse_label_selector,
    selector_to_string,
)

LABELS = {"app": "vllm", "mode": "ml", "gpu": "rtx-3060", "replicas": "2"}


@pytest.mark.parametrize("selector, expected", [
    ("app=vllm", True),
    ("app==vllm", True),
    ("app=other", False),
    ("app!=other", True),
    ("missing!=x", True),
    ("mode in (ml, r1)", True),
    ("mode in (r1)", False),
    ("mode notin (r1,off)", True),
    ("missing notin (a)", True),
    ("gpu", True),
    ("!gpu", False),
    ("!missing", True),
    ("app=vllm,mode in (ml,r1),!legacy,gpu", True),
    ("app=vllm,mode=r1", False),
    ("replicas>1", True),
    ("replicas<2", False),
    ("", True),
])
def test_label_selector_semantics(selector, expected):
    assert labels_match(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize("selector", ["app=(x", "in (a)", "app in ()", "a=b=c", "app=bad value", "x>y"])
def test_invalid_label_selectors_are_400(selector):
    with pytest.raises(ApiError) as err:
        parse_label_selector(selector)
    assert err.value.code == 400
    assert "unable to parse requirement" in err.value.body["message"]


def test_label_selector_objects_and_rendering():
    selector = {"matchLabels": {"app": "vllm"},
                "matchExpressions": [{"key": "mode", "operator": "In", "values": ["r1", "ml"]},
                                     {"key": "legacy", "operator": "DoesNotExist"}]}
    assert match_label_selector(selector, LABELS)
    assert not match_label_selector(selector, {"app": "vllm", "mode": "off"})
    assert match_label_selector({}, {"anything": "x"}), "empty selector matches everything"
    assert not match_label_selector(None, LABELS), "null selector matches nothing"
    rendered = selector_to_string(selector)
    assert rendered == "app=vllm,mode in (ml,r1),!legacy"
    assert labels_match(parse_label_selector(rendered), LABELS)


def test_field_selectors_on_well_known_and_generic_paths():
    pod = {"metadata": {"name": "vllm-0", "namespace": "ml"}, "spec": {"nodeName": "gpu-node"},
           "status": {"phase": "Running"}, "involvedObject": {"kind": "Pod"}}
    assert fields_match(parse_field_selector("metadata.name=vllm-0,metadata.namespace==ml"), pod)
    assert fields_match(parse_field_selector("status.phase!=Pending,spec.nodeName=gpu-node"), pod)
    assert not fields_match(parse_field_selector("status.phase=Pending"), pod)
    assert fields_match(parse_field_selector("involvedObject.kind=Pod"), pod)
    assert fields_match(parse_field_selector("spec.missing="), pod), "absent fields compare as empty"
    with pytest.raises(ApiError):
        parse_field_selector("no operator here")
