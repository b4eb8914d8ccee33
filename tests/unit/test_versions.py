"""The one version reader (plugins/module_utils/versions.py) every module, role and check uses."""

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import versions


@pytest.mark.parametrize("text, expected", [
    ("570.195.03", (570, 195, 3)),
    ("580.159.04", (580, 159, 4)),
    ("0.8.5.post1", (0, 8, 5, 0, 1)),
    ("v0.15.1", (0, 15, 1)),
    ("12.9", (12, 9)),
    ("v1.29.0+k3s1", (1, 29, 0)),
    (" 8.6 ", (8, 6)),
])
def test_version_tuple(text, expected):
    assert versions.version_tuple(text) == expected


def test_post_releases_sort_after_their_base_and_before_the_next():
    ordered = ["0.8.4", "0.8.5", "0.8.5.post1", "0.8.6", "0.10.0"]
    assert sorted(ordered, key=versions.version_tuple) == ordered


@pytest.mark.parametrize("left, right, expected", [
    ("12.9", "12.9.0", 0), ("12.8", "12.9", -1), ("13.0", "12.9.1", 1),
    ("575.57.08", "575.51.03", 1), ("8.6", "8.0", 1), ("7.5", "8.0", -1),
])
def test_compare_pads_with_zeros(left, right, expected):
    assert versions.compare(left, right) == expected


@pytest.mark.parametrize("left, op, right, expected", [
    ("570.195.03", ">=", "570", True), ("570.195.03", "<", "571", True), ("12.8", ">=", "12.9", False),
    ("8.6", "=", "8.6", True), ("8.6", "==", "8.6.0", True), ("9.0", ">", "8.9", True), ("535", "<=", "534", False),
])
def test_satisfies(left, op, right, expected):
    assert versions.satisfies(left, op, right) is expected


def test_satisfies_refuses_an_unknown_operator():
    with pytest.raises(ValueError, match="operator"):
        versions.satisfies("1", "~>", "2")


@pytest.mark.parametrize("text, expected", [
    ("580.159.04", (580, 159, 4)), ("570.86", (570, 86)), ("1.18.0", None), ("12.9", None), ("garbage", None),
    (None, None), ("5800.1", None),
])
def test_parse_driver_version_accepts_only_driver_versions(text, expected):
    assert versions.parse_driver_version(text) == expected


def test_branches_are_three_digit_strings():
    assert versions.branch_of("550.163.01") == "550"
    assert versions.branch_of("12.9") is None


@pytest.mark.parametrize("text, expected", [("12.9.1", "12.9"), ("13", "13.0"), ("12.8", "12.8"), (None, None)])
def test_cuda_minor(text, expected):
    assert versions.cuda_minor(text) == expected
