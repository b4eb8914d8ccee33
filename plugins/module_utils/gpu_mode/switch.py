# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Switch a GPU node to another mode, safely: the one implementation behind the module and the CLI.

Phases, each timed: validate (the mode, its Deployments, that they fit the node together), lock (the
node's Lease), drain (out of the Service, in-flight requests finish), stop (scale to 0, pods gone),
release (the GPU memory really freed, NVML on the node), start (scale up, pods Ready), health (health,
served model name, through the Service), record (the mode and the history, in the cluster).

Any failure after the first change rolls back: the target is stopped and its memory released, the
previous Deployments are scaled back and waited for, the failure is recorded, and SwitchError says why
(the pod's state, events and last log lines). A switch never leaves the node with nothing serving unless
it was asked for ``off``. Switching to the mode that is active and serving changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import drain as drain_mod
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import modes, release, state
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cluster import (
    ClusterError, NodeCluster, workload_info)
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.lease import LeaseLock, LockHeld, micro_time
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.start import StartFailed, wait_started

PHASES = ("validate", "lock", "drain", "stop", "release", "start", "health", "record")

DEFAULTS = {
    "drain_timeout": 120.0,
    "stop_timeout": 120.0,
    "release_timeout": 60.0,
    "start_timeout": 900.0,
    "health_timeout": 120.0,
    "lock_timeout": 600.0,
    "lease_duration": 30,
    "crash_restarts": 0,
    "memory_tolerance_mib": release.DEFAULT_TOLERANCE_MIB,
}


class SwitchError(Exception):
    """The switch failed; ``result`` says how far it got, what was rolled back and why."""

    def __init__(self, message, result):
        self.result = result
        super(SwitchError, self).__init__(message)


class Timer:
    """Seconds per phase, and a progress callback for people watching (the CLI prints each phase)."""

    def __init__(self, progress=None, clock=time.monotonic):
        self.clock = clock
        self.started = clock()
        self.phases = {}
        self.progress = progress or (lambda phase, message, elapsed: None)
        self._phase = None
        self._t0 = None

    @property
    def current(self):
        return self._phase

    def begin(self, phase, message=""):
        self.end()
        self._phase, self._t0 = phase, self.clock()
        self.progress(phase, message, round(self._t0 - self.started, 3))

    def end(self):
        if self._phase is not None:
            self.phases[self._phase] = round(self.phases.get(self._phase, 0.0) + self.clock() - self._t0, 3)
            self._phase = None

    def total(self):
        return round(self.clock() - self.started, 3)


class Switch:
    """One switch of one node. ``options``: DEFAULTS' keys plus force, wait_for_lock, check_mode, holder,
    proc_root, memory_wait, health_check."""

    def __init__(self, kube, namespace, node, mode, progress=None, poller_factory=None, facts_fn=None,
                 clock=time.monotonic, **options):
        self.cluster = NodeCluster(kube, namespace, node, clock)
        self.kube = kube
        self.namespace = namespace
        self.node = node
        self.mode = mode
        self.activate = mode is None  # activation: the recorded mode, else the default (decided under the lock)
        self.options = dict(DEFAULTS, **options)
        self.timer = Timer(progress, clock)
        self.clock = clock
        self.poller_factory = poller_factory or release.NvmlPoller
        self.facts_fn = facts_fn
        self.result = {"node": node, "to": mode, "changed": False, "phases": self.timer.phases,
                       "rolled_back": False, "outcome": None}
        self._poller = None
        self._lock = None
        self._touched = False  # True once anything in the cluster was changed (rollback needed on failure)
        self._relabelled = []

    # ------------------------------------------------------------------ entry point
    def run(self):
        try:
            return self._run()
        finally:
            self.timer.end()
            self.result["total_seconds"] = self.timer.total()
            if self._lock is not None:
                self._lock.release()
            if self._poller is not None:
                self._poller.close()

    def _resolve(self, book, recorded):
        """The mode asked for; with ``activate`` (no mode given), the recorded one, else the node's default."""
        if self.activate:
            self.mode = recorded or book.get("default") or modes.OFF
            self.result["to"] = self.mode
        modes.check_mode(book, self.mode)

    def _run(self):
        self.timer.begin("validate", "mode %s on node %s" % (self.mode or "(recorded, else default)", self.node))
        configmap = self.cluster.configmap()
        book = self.cluster.book(configmap)
        recorded = state.read(configmap)["mode"]
        self._resolve(book, recorded)
        self.result["from"] = recorded
        plan, deployments = self._plan(book, recorded)
        self.result["plan"] = plan
        self.result["expected_load_seconds"] = max([workload_info(deployments[d])["load_seconds"]
                                                    for d in plan["start"]] or [0.0])
        if self._serving(plan, deployments, recorded):
            self.result.update(outcome="unchanged", noop=True)
            return self.result
        self._check_fit(book, plan, deployments)
        if self.options.get("check_mode"):
            self.result.update(changed=True, outcome="planned")
            return self.result
        self._poller = self._memory_poller(plan)

        self.timer.begin("lock", "Lease %s/%s" % (self.namespace, modes.configmap_name(self.node)))
        self._lock = LeaseLock(self.kube, self.namespace, modes.configmap_name(self.node),
                               holder=self.options.get("holder"), duration=self.options["lease_duration"])
        try:
            self._lock.acquire(wait=bool(self.options.get("wait_for_lock")), timeout=self.options["lock_timeout"])
        except LockHeld as exc:
            self._lock = None
            raise SwitchError("another switch is running: %s" % exc, dict(self.result, outcome="locked",
                                                                          holder=exc.holder))
        # while we waited for the lock somebody may have switched: plan again from what runs now (an
        # activation then keeps what they switched to)
        configmap = self.cluster.configmap()
        recorded = state.read(configmap)["mode"]
        self._resolve(book, recorded)
        plan, deployments = self._plan(book, recorded)
        self.result.update({"from": recorded, "plan": plan})
        if self._serving(plan, deployments, recorded):
            self.result.update(outcome="unchanged", noop=True)
            return self.result
        started_at = micro_time()
        try:
            self._switch(plan, deployments)
        except Exception as exc:  # pylint: disable=broad-except  # every failure rolls back, then re-raises
            self.result["failed_phase"] = self.timer.current
            detail = self._diagnosis(exc)  # now, while the failed pod still exists
            if not self._touched:
                self._restore_labels()
                self._record(configmap, recorded, started_at, "failed", recorded, error=str(exc))
                raise self._failure(exc, "nothing was changed", detail)
            rollback = self._rollback(plan, deployments, recorded)
            self._record(configmap, recorded, started_at, "rolled back" if rollback["ok"] else "failed",
                         recorded if rollback["ok"] else None, error=str(exc), rollback=rollback)
            raise self._failure(exc, rollback["summary"], detail)
        self.timer.begin("record")
        self._record(configmap, recorded, started_at, "switched", self.mode)
        self.timer.end()
        self.result.update(changed=True, outcome="switched")
        return self.result

    # ------------------------------------------------------------------ planning and validation
    def _plan(self, book, recorded):
        names = modes.bound_deployments(book)
        deployments = self.cluster.deployments(names)
        live = dict((n, int((d.get("spec") or {}).get("replicas") or 0)) for n, d in deployments.items())
        plan = modes.plan(book, recorded, self.mode, live)
        if plan["missing"]:
            raise SwitchError("mode %s needs Deployment(s) %s in namespace %s, which do not exist: run site.yml "
                              "(the vllm role creates them)" % (self.mode, ", ".join(plan["missing"]), self.namespace),
                              dict(self.result, plan=plan, outcome="invalid"))
        return plan, deployments

    def _serving(self, plan, deployments, recorded):
        """The target mode is recorded, runs as it should and its workloads are ready: nothing to do."""
        if plan["stop"] or plan["start"] or recorded != self.mode:
            return False
        for name, replicas in plan["keep"].items():
            status = deployments[name].get("status") or {}
            if int(status.get("readyReplicas") or 0) < replicas:
                return False
        return True

    def _memory_poller(self, plan):
        if not self.options.get("memory_wait", True) or not plan["stop"]:
            return None
        try:
            return self.poller_factory()
        except release.NvmlUnavailable as exc:
            raise SwitchError("cannot watch GPU memory on this host (%s): run the switch on the GPU node itself, "
                              "or set memory_wait: false to trust that a pod gone means its memory is free"
                              % exc, dict(self.result, outcome="invalid"))

    def _check_fit(self, book, plan, deployments):
        """vllm_compat over the target mode's workloads together, on this node's GPUs, with what the stopped
        workloads hold taken away (they will be gone)."""
        if self.facts_fn is None:
            return
        from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import fit

        verdicts = fit.check_mode_fit(self.facts_fn, book, self.mode, deployments, self.cluster,
                                      self.options.get("proc_root", "/proc"))
        self.result["fit"] = verdicts
        failed = [v for v in verdicts if v["verdict"] == "fail"]
        if failed:
            raise SwitchError("mode %s does not fit node %s: %s" % (
                self.mode, self.node, "; ".join("%s: %s" % (v["workload"], v["why"]) for v in failed)),
                dict(self.result, outcome="invalid"))

    # ------------------------------------------------------------------ the switch itself
    def _switch(self, plan, deployments):
        opts = self.options
        outgoing = [deployments[n] for n in plan["stop"]]
        outgoing_pods = [p for d in outgoing for p in self.cluster.pods(d)]
        self.timer.begin("drain", ", ".join(plan["stop"]) or "nothing to drain")
        if outgoing_pods and not opts.get("force"):
            for deployment in outgoing:
                keys = self.cluster.service_only_labels(deployment)
                for pod in self.cluster.pods(deployment):
                    labels = (pod.get("metadata") or {}).get("labels") or {}
                    for key in keys:
                        if key in labels:
                            self.cluster.set_pod_label(pod, key, None)
                            self._relabelled.append((pod, key, labels[key]))
            self.result["drain_seconds"] = self._drain(outgoing, outgoing_pods)

        self.timer.begin("stop", ", ".join(plan["stop"]) or "nothing to stop")
        uids = [p["metadata"]["uid"] for p in outgoing_pods]
        before = release.snapshot(self._poller, uids, opts.get("proc_root", "/proc")) if self._poller else {}
        for name in plan["stop"]:
            self._touched = True
            self.cluster.scale(name, 0)
        self.cluster.wait_pods_gone(outgoing, self.clock() + opts["stop_timeout"])

        self.timer.begin("release", "GPU memory of %d pod(s)" % len(uids))
        if self._poller is not None and uids:
            names = dict((p["metadata"]["uid"], "%s/%s" % (p["metadata"]["namespace"], p["metadata"]["name"]))
                         for p in outgoing_pods)
            self.result["release"] = release.wait_released(
                uids, opts["release_timeout"], poller=self._poller, proc_root=opts.get("proc_root", "/proc"),
                tolerance_mib=opts["memory_tolerance_mib"], before=before, describe_pod=names.get,
                clock=self.clock)

        self._start(plan["start"], deployments)

    def _drain(self, outgoing, pods):
        by_port = {}
        for deployment in outgoing:
            port = workload_info(deployment)["port"]
            by_port.setdefault(port, []).extend(self.cluster.pods(deployment))
        waited = 0.0
        for port, port_pods in by_port.items():
            waited += drain_mod.wait_drained(self.kube, port_pods, port, self.options["drain_timeout"], clock=self.clock)
        return round(waited, 3)

    def _start(self, start, deployments):
        self.timer.begin("start", ", ".join("%s=%d" % kv for kv in sorted(start.items())) or "nothing to start")
        self.result["ready_seconds"] = self._scale_up(start, deployments)
        self.timer.begin("health", "through the Service")
        self.result["health"] = self._serving_check(start, deployments)

    def _scale_up(self, replicas_by_name, deployments):
        """Scale to the replicas and wait until their pods are Ready (failing fast on a crash)."""
        for name, replicas in sorted(replicas_by_name.items()):
            self._touched = True
            self.cluster.scale(name, replicas)
        targets = dict((n, (deployments[n], r)) for n, r in replicas_by_name.items() if r)
        return wait_started(self.cluster, targets, self.clock() + self.options["start_timeout"],
                            self.options["crash_restarts"])

    def _serving_check(self, names, deployments):
        """Health, then the first served model name, through each workload's Service: what clients see."""
        from ansible_collections.baremetal.gpu.plugins.module_utils import health

        if not self.options.get("health_check", True):
            return {}
        checks = {}
        for name in sorted(names):
            info = workload_info(deployments[name])
            if not info["service"]:
                continue
            fetch = health.proxy_fetch(self.kube, self.namespace, info["service"], info["service_port"] or info["port"])
            checks[name] = health.wait_serving(
                fetch, served_model_name=(info["served_model_names"] or [None])[0],
                kind=info["health_kind"], health_path=info["health_path"], field=info["health_field"],
                check_models=bool(info["served_model_names"]), timeout=self.options["health_timeout"])
        return checks

    # ------------------------------------------------------------------ failure handling
    def _rollback(self, plan, deployments, previous_mode):
        """Stop what the failed switch started, free its memory, bring back what ran before and see it serve."""
        out = {"ok": False, "steps": [], "seconds": {}}
        opts = self.options
        self.timer.begin("rollback", "back to %s" % (previous_mode or "what ran before"))
        step_started = [self.clock()]

        def step(name, text):
            now = self.clock()
            out["seconds"][name] = round(now - step_started[0], 3)
            step_started[0] = now
            out["steps"].append(text)

        try:
            started = [deployments[n] for n in plan["start"] if n not in plan["stop"]]
            started_pods = [p for d in started for p in self.cluster.pods(d)]
            uids = [p["metadata"]["uid"] for p in started_pods]
            before = release.snapshot(self._poller, uids, opts.get("proc_root", "/proc")) if self._poller else {}
            for d in started:
                self.cluster.scale(d["metadata"]["name"], 0)
                self.cluster.kill_pods(d)  # a target that failed serves nobody: no grace period to sit out
            self.cluster.wait_pods_gone(started, self.clock() + opts["stop_timeout"])
            step("stop", "stopped %s" % (", ".join(d["metadata"]["name"] for d in started) or "nothing"))
            if self._poller is not None and started_pods:
                release.wait_released(uids, opts["release_timeout"], poller=self._poller,
                                      proc_root=opts.get("proc_root", "/proc"), tolerance_mib=opts["memory_tolerance_mib"],
                                      before=before, clock=self.clock)
                step("release", "their GPU memory was released")
            restore = dict((n, int((deployments[n].get("spec") or {}).get("replicas") or 0)) for n in plan["stop"])
            self._scale_up(restore, deployments)
            self._restore_labels()
            step("start", "%s ready again" % (", ".join(sorted(restore)) or "nothing to restore"))
            self._serving_check([n for n, r in restore.items() if r], deployments)
            step("health", "serving through the Service")
            out["ok"] = True
            out["summary"] = "rolled back to mode %s: %s" % (previous_mode or "(unrecorded)", "; ".join(out["steps"]))
        except Exception as exc:  # pylint: disable=broad-except  # report both failures
            out["error"] = str(exc)
            out["summary"] = "ROLLBACK FAILED (%s) after: %s; the node may be serving nothing" % (
                exc, "; ".join(out["steps"]) or "no step")
        self.timer.end()
        self.result["rolled_back"] = out["ok"]
        self.result["rollback"] = out
        return out

    def _restore_labels(self):
        for pod, key, value in self._relabelled:
            self.cluster.set_pod_label(pod, key, value)
        self._relabelled = []

    def _diagnosis(self, exc):
        """What the failed pod shows (state, events, last log lines), when the failure names one."""
        from ansible_collections.baremetal.gpu.plugins.module_utils import kube as kube_mod

        pod = getattr(exc, "pod", None)
        if pod is None:
            return ""
        try:
            return "\n" + kube_mod.diagnose(self.kube, pod)["text"]
        except Exception:  # pylint: disable=broad-except  # the diagnosis is a bonus
            return ""

    def _failure(self, exc, what_now, detail=""):
        phase = self.result.get("failed_phase") or "validate"
        self.result["changed"] = self._touched
        self.result.update(outcome="rolled back" if self.result.get("rolled_back") else "failed", error=str(exc))
        return SwitchError("switch of node %s to mode %s failed in phase %s: %s; %s%s"
                           % (self.node, self.mode, phase, exc, what_now, detail), self.result)

    def _record(self, configmap, previous, started_at, outcome, active, error=None, rollback=None):
        entry = {"from": previous, "to": self.mode, "by": self._lock.holder if self._lock else None,
                 "started_at": started_at, "finished_at": micro_time(), "outcome": outcome,
                 "phases": dict(self.timer.phases), "active": active}
        if error:
            entry["error"] = error[:2000]
        if rollback:
            entry["rollback"] = rollback.get("summary")
        state.record(self.kube, self.namespace, self.node, entry, configmap)


def switch(kube, namespace, node, mode, **options):
    """Switch ``node`` to ``mode`` (None: activate the recorded mode, else the node's default); returns the
    result (see Switch) or raises SwitchError / ModeError."""
    return Switch(kube, namespace, node, mode, **options).run()


__all__ = ["switch", "Switch", "SwitchError", "PHASES", "DEFAULTS", "ClusterError", "StartFailed"]
