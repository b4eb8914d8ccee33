"""The one support table (plugins/module_utils/platforms.py) and the filter the common role checks nodes with."""

import pytest

from ansible_collections.baremetal.gpu.plugins.filter.platform_support import FilterModule
from ansible_collections.baremetal.gpu.plugins.module_utils import platforms

SUPPORT = FilterModule().filters()["platform_support"]
SUPPORTED = ("Debian 12", "Debian 13", "RedHat 9", "Rocky 9", "Ubuntu 22.04", "Ubuntu 24.04")


@pytest.mark.parametrize("distribution, version, major, release, family", [
    ("Debian", "12.8", "12", "12", "Debian"),
    ("Debian", "13", "13", "13", "Debian"),
    ("Ubuntu", "24.04", "24", "24.04", "Debian"),
    ("Rocky", "9.4", "9", "9", "RedHat"),
])
def test_supported_nodes(distribution, version, major, release, family):
    result = SUPPORT(distribution, version, major, "x86_64")
    assert result["supported"] is True
    assert (result["platform"]["release"], result["platform"]["family"]) == (release, family)
    assert result["message"] == "%s %s (x86_64) is supported." % (distribution, release)


@pytest.mark.parametrize("distribution, version, major, arch, named", [
    ("Fedora", "41", "41", "x86_64", "Fedora 41 (x86_64)"),
    ("Ubuntu", "20.04", "20", "x86_64", "Ubuntu 20.04 (x86_64)"),
    ("Debian", "12.8", "12", "ppc64le", "Debian 12 (ppc64le)"),
])
def test_unsupported_nodes_name_the_os_and_the_list(distribution, version, major, arch, named):
    result = SUPPORT(distribution, version, major, arch)
    assert result["supported"] is False and result["platform"] is None
    assert result["message"].startswith("%s is not supported by baremetal.gpu. Supported: " % named)
    assert "Supported: %s, on x86_64 or aarch64." % ", ".join(SUPPORTED) in result["message"]
    with pytest.raises(platforms.UnsupportedPlatform):
        platforms.platform(distribution, version, major, arch)


def test_ubuntu_is_told_apart_by_its_full_version():
    assert platforms.release_of("Ubuntu", "22.04", "22") == "22.04"
    assert platforms.release_of("Debian", "12.8", None) == "12"
