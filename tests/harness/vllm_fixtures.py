"""pytest fixtures for the fake vLLM server (tests/harness/fake_vllm.py)."""

import pytest

from tests.harness.fake_vllm import FakeVLLMServer

__all__ = ["fake_vllm"]


@pytest.fixture
def fake_vllm():
    """Factory: ``fake_vllm(**kwargs)`` starts a FakeVLLMServer (kwargs of its constructor) and returns
    it, already started (it may still be loading: use ``.wait_healthy(timeout)``). Every server the
    test started is stopped at teardown."""
    servers = []

    def start(**kwargs):
        server = FakeVLLMServer(**kwargs)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
