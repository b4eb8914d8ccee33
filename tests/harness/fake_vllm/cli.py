"""Process mode: ``python -m tests.harness.fake_vllm serve MODEL [vLLM args] [fake options]``."""

import os
import signal
import sys
import threading

from tests.harness.fake_vllm.server import FakeVLLMServer

__all__ = ["main"]


def main(argv=None):
    """Run one fake vLLM until SIGTERM/SIGINT (exit 0 after ``--shutdown-seconds``), a start-up failure
    (exit 1, the error on stderr) or an engine death (exit 0, as vLLM does). The environment is the
    process's own (VLLM_SERVER_DEV_MODE, VLLM_API_KEY)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        server = FakeVLLMServer.from_args(argv, echo=True, env=dict(os.environ))
    except ValueError as exc:
        sys.stderr.write("vllm serve: error: %s\n" % exc)
        return 2
    finished = threading.Event()

    def on_signal(signum, _frame):
        finished.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
    except OSError as exc:
        sys.stderr.write("OSError: [Errno %s] error while attempting to bind on address ('%s', %d): %s\n"
                         % (exc.errno, server.host, server.port, exc.strerror))
        return 1
    while not finished.is_set():
        code = server.poll()
        if code is not None:
            return code
        finished.wait(0.05)
    return server.stop()
