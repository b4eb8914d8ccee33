# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python3 -m ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.cli --config FILE``: run the
router (the ``gpu_router`` role's Deployment runs exactly this, from the collection's code on the node).

Cluster access: the pod's ServiceAccount (in-cluster: KUBERNETES_SERVICE_HOST/PORT and the mounted token and
CA), or ``--kubeconfig``. GPU memory: NVML in-process, as the switcher reads it on the node (the pod runs with
the NVIDIA runtime and hostPID). SIGTERM: stop accepting, let in-flight requests finish (up to the grace
period the kubelet gives), exit 0.

Exit codes: 0 stopped by SIGTERM/SIGINT; 2 bad settings or a missing dependency (the message says which).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import os
import signal
import socket
import sys

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router import config as config_mod

EXIT_USAGE = 2


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="gpu-router", description="OpenAI-compatible router that switches a GPU "
                                     "node's mode to the model each request asks for.")
    parser.add_argument("--config", help="settings file (JSON; the role mounts it from a ConfigMap)")
    parser.add_argument("--node", help="Kubernetes node name (default: setting node, else $NODE_NAME)")
    parser.add_argument("--namespace", help="namespace of the model servers")
    parser.add_argument("--kubeconfig", help="kubeconfig (default: the pod's ServiceAccount)")
    parser.add_argument("--listen-host", dest="listen_host")
    parser.add_argument("--port", type=int)
    return parser.parse_args(argv)


def make_switch_runner(kube_factory, settings, holder):
    """``run(mode)``: the gpu_mode switch of the router's node, under its Lease (waiting for another switch
    rather than failing: the other replica's switch may be the very one this request needs)."""
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import report
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.switch import switch

    options = dict(settings["switch"])
    options.update(holder=holder, wait_for_lock=True, drain_timeout=settings["drain_timeout"],
                   proc_root=settings["proc_root"], memory_wait=settings["memory_wait"], facts_fn=report.gpu_facts)

    def run(mode):
        kube = kube_factory()
        try:
            return switch(kube, settings["namespace"], settings["node"], mode, **options)
        finally:
            kube.close()

    return run


def build(settings, log=None):
    """(aiohttp application, view, coordinator) wired together (no thread started yet)."""
    from concurrent.futures import ThreadPoolExecutor

    from ansible_collections.baremetal.gpu.plugins.module_utils import kube as kube_mod
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router import logs, metrics as metrics_mod
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.cluster_view import ClusterView
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.coordinator import Coordinator
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.server import Router

    holder = "gpu-router/%s" % (os.environ.get("POD_NAME") or socket.gethostname())
    log = log or logs.JsonLog(node=settings["node"], holder=holder)

    def kube_factory():
        return kube_mod.Kube.from_params({"kubeconfig": settings.get("kubeconfig")})

    metrics = metrics_mod.Metrics()
    state = {}
    view = ClusterView(kube_factory, settings["namespace"], settings["node"], log=log,
                       on_change=lambda kind: state["loop"].call_soon_threadsafe(state["router"].cluster_changed, kind))
    coordinator = Coordinator(view.table, make_switch_runner(kube_factory, settings, holder), settings, metrics, log,
                              executor=ThreadPoolExecutor(max_workers=2, thread_name_prefix="switch"))
    router = Router(settings, view, coordinator, metrics, log)
    coordinator.activity = router.activity
    state["router"] = router

    async def start_following(app):
        import asyncio

        state["loop"] = asyncio.get_running_loop()
        view.start()
        if settings["preload"]:
            await asyncio.get_running_loop().run_in_executor(None, view.wait_synced, 60.0)
            coordinator.active = view.recorded_mode()
            coordinator.preload(settings["preload"])

    async def stop_following(app):
        view.stop()

    app = router.app()
    app.on_startup.append(start_following)
    app.on_cleanup.append(stop_following)
    return app, view, coordinator


def main(argv=None):
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router import server

    args = parse_args(argv)
    problem = server.missing()
    if problem:
        sys.stderr.write("gpu-router: %s\n" % problem)
        return EXIT_USAGE
    try:
        settings = config_mod.load(args.config, {"node": args.node, "namespace": args.namespace,
                                                 "kubeconfig": args.kubeconfig, "listen_host": args.listen_host,
                                                 "port": args.port})
    except config_mod.ConfigError as exc:
        sys.stderr.write("gpu-router: %s\n" % exc)
        return EXIT_USAGE
    from ansible_collections.baremetal.gpu.plugins.module_utils.kube_client import requirement_error

    problem = requirement_error()
    if problem:
        sys.stderr.write("gpu-router: %s\n" % problem)
        return EXIT_USAGE
    app, _view, _coordinator = build(settings)
    from aiohttp import web

    def terminate(signum, frame):
        raise web.GracefulExit()

    signal.signal(signal.SIGTERM, terminate)
    web.run_app(app, host=settings["listen_host"], port=settings["port"], print=None, access_log=None,
                handle_signals=False, shutdown_timeout=25.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())  # the pod runs `python3 -m ...gpu_router.cli`
