"""A fake Kubernetes API server for tests: real HTTP, real Status errors, watches, server-side
apply with managedFields, and a service proxy, driven by one resource table.

    from tests.harness.fake_kube import FakeKubeAPI
"""

from .errors import ApiError
from .resources import RESOURCES, Resource, ResourceTable
from .server import FakeKubeAPI

__all__ = ["ApiError", "FakeKubeAPI", "RESOURCES", "Resource", "ResourceTable"]
