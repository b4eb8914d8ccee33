# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``gpu-mode``: the node's command line, the same switch as ``ansible-playbook gpu-mode.yml -e mode=...``.

    gpu-mode status            the active mode, its workloads, GPU memory per process, the last switches
    gpu-mode list              the node's modes, each with whether it fits this node
    gpu-mode MODE              switch (each phase printed with its elapsed time)
    gpu-mode MODE --dry-run    the plan only (what stops, what starts, expected load time)

Settings come from ``/etc/baremetal-gpu/gpu-mode.json`` (written by the ``gpu_mode`` role: node, namespace,
kubeconfig, proc_root), overridden by options.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import sys

CONFIG = "/etc/baremetal-gpu/gpu-mode.json"

EXIT_OK = 0
EXIT_ROLLED_BACK = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_ROLLBACK_FAILED = 4
EXIT_CLUSTER = 5

EPILOG = """exit codes:
  0  done: switched, or the mode was already active and serving (status and list: shown)
  1  the switch failed and was rolled back: the previous mode is serving again
  2  bad request: unknown mode (the valid ones are listed), a mode that does not fit, missing definitions
  3  another switch holds this node's lock (its holder is named); retry, or use --wait-for-lock
  4  the switch failed AND its rollback failed: the node may be serving nothing (see the message)
  5  the cluster or the GPU cannot be reached
"""


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="gpu-mode", description="Show or switch the model that owns this node's "
                                     "GPU(s).", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", help="status, list, or the name of a mode to switch to")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.add_argument("--timeout", type=float, help="seconds the new mode may take to start (default 900)")
    parser.add_argument("--drain-timeout", type=float, help="seconds in-flight requests may take to finish (120)")
    parser.add_argument("--release-timeout", type=float, help="seconds the GPU memory may take to be released (60)")
    parser.add_argument("--force", action="store_true", help="do not wait for in-flight requests")
    parser.add_argument("--wait-for-lock", action="store_true", help="wait for a running switch instead of failing")
    parser.add_argument("--config", default=os.environ.get("GPU_MODE_CONFIG", CONFIG), help="settings file (%(default)s)")
    parser.add_argument("--node", help="Kubernetes node name (default: from the settings file)")
    parser.add_argument("--namespace", help="namespace of the model servers (default: from the settings file)")
    parser.add_argument("--kubeconfig", help="kubeconfig (default: from the settings file)")
    parser.add_argument("--proc-root", help="where the host's /proc is (default /proc)")
    return parser.parse_args(argv)


def load_settings(args):
    settings = {}
    if os.path.exists(args.config):
        with open(args.config) as handle:
            settings = json.load(handle)
    for key in ("node", "namespace", "kubeconfig", "proc_root"):
        value = getattr(args, key)
        if value:
            settings[key] = value
    settings.setdefault("namespace", "ml")
    settings.setdefault("proc_root", "/proc")
    if not settings.get("node"):
        settings["node"] = os.uname()[1]
    return settings


def _print(out, text):
    out.write(text + "\n")
    out.flush()


def main(argv=None, out=sys.stdout, err=sys.stderr):
    from ansible_collections.baremetal.gpu.plugins.module_utils import kube as kube_mod
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import report
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.modes import ModeError
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.switch import SwitchError, switch

    args = parse_args(argv)
    settings = load_settings(args)
    try:
        kube = kube_mod.Kube.from_params({"kubeconfig": settings.get("kubeconfig")})
    except kube_mod.KubeError as exc:
        _print(err, "gpu-mode: cannot reach the cluster: %s" % exc)
        return EXIT_CLUSTER
    try:
        if args.command == "status":
            data = report.status(kube, settings["namespace"], settings["node"], settings["proc_root"])
            _print(out, json.dumps(data, indent=2, sort_keys=True) if args.json else report.status_text(data))
            return EXIT_OK
        if args.command == "list":
            data = report.mode_list(kube, settings["namespace"], settings["node"], settings["proc_root"])
            _print(out, json.dumps(data, indent=2, sort_keys=True) if args.json else report.list_text(data))
            return EXIT_OK
        options = {"check_mode": args.dry_run, "force": args.force, "wait_for_lock": args.wait_for_lock,
                   "proc_root": settings["proc_root"], "facts_fn": report.gpu_facts}
        if args.timeout:
            options["start_timeout"] = args.timeout
        if args.drain_timeout:
            options["drain_timeout"] = args.drain_timeout
        if args.release_timeout:
            options["release_timeout"] = args.release_timeout
        if not args.json:
            options["progress"] = lambda phase, message, elapsed: _print(out, "%7.1fs  %-8s %s" % (elapsed, phase, message))
        result = switch(kube, settings["namespace"], settings["node"], args.command, **options)
        _print(out, json.dumps(result, indent=2, sort_keys=True, default=str) if args.json
               else report.switch_text(result))
        return EXIT_OK
    except ModeError as exc:
        _print(err, "gpu-mode: %s" % exc)
        return EXIT_USAGE
    except SwitchError as exc:
        result = exc.result
        if args.json:
            _print(out, json.dumps(dict(result, error=str(exc)), indent=2, sort_keys=True, default=str))
        _print(err, "gpu-mode: %s" % exc)
        if result.get("outcome") == "locked":
            return EXIT_LOCKED
        if result.get("outcome") == "invalid":
            return EXIT_USAGE
        if result.get("rolled_back"):
            return EXIT_ROLLED_BACK
        if result.get("rollback") is None and result.get("failed_phase") in (None, "validate", "lock", "drain"):
            return EXIT_ROLLED_BACK  # nothing was changed: the previous mode still serves
        return EXIT_ROLLBACK_FAILED
    except kube_mod.KubeError as exc:
        _print(err, "gpu-mode: the cluster answered an error: %s" % exc)
        return EXIT_CLUSTER
    finally:
        kube.close()
