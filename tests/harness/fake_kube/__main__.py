"""Run the fake API server as a process: `python -m tests.harness.fake_kube --kubeconfig PATH`.

Prints the server URL on stdout once it listens; stops on SIGTERM/SIGINT.
With `--kubelet`, a kubelet simulator with one GPU node runs beside it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .api import FakeKubeAPI


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.fake_kube")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the server here")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--kubelet", action="store_true", help="also run a kubelet simulator (one GPU node)")
    parser.add_argument("--gpus", type=int, default=1)
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with FakeKubeAPI(args.host, args.port) as api:
        if args.kubeconfig:
            api.write_kubeconfig(args.kubeconfig, args.namespace)
        sim = None
        if args.kubelet:
            from ..kubelet import KubeletSimulator, NodeSpec
            sim = KubeletSimulator(api.url, nodes=[NodeSpec(gpus=args.gpus)], token=api.token_value)
            sim.start()
        print(api.url, flush=True)
        try:
            stop.wait()
        finally:
            if sim is not None:
                sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
