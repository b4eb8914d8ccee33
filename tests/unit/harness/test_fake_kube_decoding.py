"""Decoding a body as kube-apiserver's JSON decoder does: the Quantity grammar and canonical form, Go's
time layouts (Time vs MicroTime), Go type errors, base64; expected texts are apimachinery's."""

import pytest

from tests.harness.fake_kube import gotime, quantity
from tests.harness.fake_kube.decode import DecodeError, decode

FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


@pytest.mark.parametrize("text, canonical", [
    ("16G", "16G"), ("16Gi", "16Gi"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("1.5Gi", "1536Mi"),
    ("0.5", "500m"), ("500m", "500m"), ("1000m", "1"), ("1", "1"), (1, "1"), (2.5, "2500m"),
    ("16000M", "16G"), ("100Mi", "100Mi"), ("1e3", "1e3"), ("0", "0"), ("0.1n", "1n"), ("-1", "-1"),
    ("12Ki", "12Ki"), ("1023", "1023"), ("512Ki", "512Ki"),
])
def test_quantities_parse_and_print_as_apimachinery(text, canonical):
    assert quantity.canonical(text) == canonical


@pytest.mark.parametrize("text, error", [
    ("16GB", FORMAT_ERROR), ("1.2.3", FORMAT_ERROR), ("abc", FORMAT_ERROR), ("", FORMAT_ERROR),
    ("1 Gi", FORMAT_ERROR), ("1KB", FORMAT_ERROR), ("12Mb", FORMAT_ERROR),
    ("1Gib", FORMAT_ERROR), ("5ki", "unable to parse quantity's suffix"), ("1Mii", "unable to parse quantity's suffix"),
])
def test_quantities_apimachinery_refuses(text, error):
    with pytest.raises(quantity.QuantityError) as err:
        quantity.parse(text)
    assert str(err.value) == error


def test_a_fractional_quantity_prints_as_gos_percent_hash_v():
    assert quantity.go_repr("0.5") == ('resource.Quantity{i:resource.int64Amount{value:5, scale:-1}, '
                                       'd:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:"", Format:"DecimalSI"}')


@pytest.mark.parametrize("value, layout, error", [
    ("2025-01-01T10:00:00Z", gotime.RFC3339_MICRO,
     'parsing time "2025-01-01T10:00:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"'),
    ("2025-01-01T10:00:00.123Z", gotime.RFC3339_MICRO,
     'parsing time "2025-01-01T10:00:00.123Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".123Z" as '
     '".000000"'),
    ("2025-01-01", gotime.RFC3339, 'parsing time "2025-01-01" as "2006-01-02T15:04:05Z07:00": cannot parse "" as '
                                   '"T"'),
    ("2025-13-01T10:00:00Z", gotime.RFC3339, 'parsing time "2025-13-01T10:00:00Z": month out of range'),
    ("2025-02-30T10:00:00Z", gotime.RFC3339, 'parsing time "2025-02-30T10:00:00Z": day out of range'),
    ("2025-01-01T10:00:00Zjunk", gotime.RFC3339, 'parsing time "2025-01-01T10:00:00Zjunk": extra text: "junk"'),
])
def test_times_follow_gos_layouts_and_messages(value, layout, error):
    with pytest.raises(gotime.GoTimeError) as err:
        gotime.parse(value, layout)
    assert str(err.value) == error


@pytest.mark.parametrize("value, layout", [
    ("2025-01-01T10:00:00.123456Z", gotime.RFC3339_MICRO), ("2025-01-01T10:00:00.123456+02:00", gotime.RFC3339_MICRO),
    ("2025-01-01T10:00:00Z", gotime.RFC3339), ("2025-01-01T10:00:00.5Z", gotime.RFC3339),
    ("2024-02-29T23:59:59-07:00", gotime.RFC3339),
])
def test_times_in_their_layouts_parse(value, layout):
    assert gotime.parse(value, layout)[0] in (2024, 2025)


def deployment(container):
    labels = {"app": "x"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "labels": labels},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}


@pytest.mark.parametrize("container, error", [
    ({"name": "c", "image": "i", "ports": [{"containerPort": "8000"}]},
     "json: cannot unmarshal string into Go struct field ContainerPort.spec.template.spec.containers.ports."
     "containerPort of type int32"),
    ({"name": "c", "image": "i", "ports": [{"containerPort": 8000.5}]},
     "json: cannot unmarshal number 8000.5 into Go struct field ContainerPort.spec.template.spec.containers.ports."
     "containerPort of type int32"),
    ({"name": "c", "image": "i", "args": ["--port", 8000]},
     "json: cannot unmarshal number into Go struct field Container.spec.template.spec.containers.args of type "
     "string"),
    ({"name": "c", "image": "i", "resources": {"limits": {"memory": "16GB"}}}, FORMAT_ERROR),
    ({"name": "c", "image": "i", "livenessProbe": {"httpGet": {"port": True}}},
     "json: cannot unmarshal bool into Go value of type int32"),
    ({"name": "c", "image": "i", "env": "A=1"},
     "json: cannot unmarshal string into Go struct field Container.spec.template.spec.containers.env of type "
     "[]v1.EnvVar"),
])
def test_bodies_that_go_cannot_decode(container, error):
    with pytest.raises(DecodeError) as err:
        decode(deployment(container))
    assert str(err.value) == error


def test_decoding_canonicalises_quantities_and_reports_missing_required_fields():
    obj = deployment({"image": "i", "ports": [{"name": "http"}],
                      "resources": {"limits": {"nvidia.com/gpu": 1, "cpu": 0.5, "memory": "16384Mi"}}})
    missing = decode(obj)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1", "cpu": "500m", "memory": "16Gi"}
    assert missing == ["spec.template.spec.containers[0].name",
                       "spec.template.spec.containers[0].ports[0].containerPort"]


def test_labels_lease_times_and_secret_data():
    with pytest.raises(DecodeError) as err:
        decode({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"version": 2}}})
    assert str(err.value) == ("json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of "
                              "type string")
    with pytest.raises(DecodeError) as err:
        decode({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"},
                "spec": {"renewTime": "2025-01-01T10:00:00Z"}})
    assert "cannot parse \"Z\" as \".000000\"" in str(err.value)
    with pytest.raises(DecodeError) as err:
        decode({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {"k": "not base64"}})
    assert str(err.value) == "illegal base64 data at input byte 3"
    status_only = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"containers": [{"name": "c", "image": "i"}]},
                   "status": {"containerStatuses": [{"name": "c"}]}}
    assert decode(status_only) == [], "status is written by controllers: its required fields are not checked"
