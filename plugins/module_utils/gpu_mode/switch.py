# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Switch a GPU node to another mode, safely: the one implementation behind the module and the CLI.

Phases, each timed: validate (the mode, its Deployments, that they fit the node together), lock (the
node's Lease), drain (out of the Service, in-flight requests finish), sleep (servers the target keeps in
standby: vLLM's sleep mode), stop (scale to 0, pods gone), release (the GPU memory really freed, NVML on
the node; a sleeper down to its residue), standby (standby workloads that do not run yet: started alone,
then put to sleep), wake (the target's sleepers woken, checked with their model and a completion, back
in their Service; a failed wake-up falls back to a cold restart), start (scale up, pods Ready), health
(health, served model name, through the Service), record (the mode and the history, in the cluster).

The order is what keeps two servers from wanting the same memory: whatever leaves the GPU (stopped, or
put to sleep) has its memory seen released by NVML before anything is woken or started.

Any failure after the first change rolls back: the target is stopped and its memory released, the
previous Deployments are scaled back and waited for, the failure is recorded, and SwitchError says why
(the pod's state, events and last log lines). A switch never leaves the node with nothing serving unless
it was asked for ``off``. Switching to the mode that is active and serving changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import drain as drain_mod
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import modes, release, standby, state
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cluster import (
    ClusterError, NodeCluster, workload_info)
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.lease import LeaseLock, LockHeld, micro_time
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.start import StartFailed, wait_started

PHASES = ("validate", "lock", "drain", "sleep", "stop", "release", "standby", "wake", "start", "health", "record")

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
    "sleep_timeout": standby.SLEEP_TIMEOUT,
    "wake_timeout": standby.WAKE_TIMEOUT,
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
        self._asleep_before = set()  # running Deployments whose servers were asleep when the switch began
        self._slept = []  # Deployments this switch put to sleep
        self._woken = []  # Deployments this switch woke (or restarted cold after a failed wake-up)
        self._started = []  # Deployments this switch scaled up from 0

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
                                                    for d in list(plan["start"]) + plan["standby_start"]] or [0.0])
        if self._serving(plan, deployments, recorded) and not self._lock_busy():
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
        sleepable = [n for n, d in deployments.items() if standby.sleep_info(d)]
        self._asleep_before, unanswered = self._sleep_states(deployments, live, sleepable)
        plan = modes.plan(book, recorded, self.mode, live, asleep=self._asleep_before, sleepable=sleepable,
                          unanswered=unanswered)
        for name in plan["sleep"] + plan["standby_start"] + list(plan["wake"]):
            if name not in sleepable:
                raise SwitchError("mode %s keeps %s in standby, but its Deployment cannot sleep (no "
                                  "baremetal.gpu/sleep-level annotation): run site.yml after setting sleep_mode: true "
                                  "on its catalog entry" % (self.mode, name), dict(self.result, outcome="invalid"))
        if plan["missing"]:
            raise SwitchError("mode %s needs Deployment(s) %s in namespace %s, which do not exist: run site.yml "
                              "(the vllm role creates them)" % (self.mode, ", ".join(plan["missing"]), self.namespace),
                              dict(self.result, plan=plan, outcome="invalid"))
        return plan, deployments

    def _lock_busy(self):
        """Whether another switch holds the node's Lease now: then what runs may be half-way through it, and
        "already serving" cannot be answered without the lock."""
        from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.lease import LEASE_API, lease_state

        lease = self.kube.get(LEASE_API, "Lease", modes.configmap_name(self.node), self.namespace)
        return lease_state(lease, time.time())[0] is not None

    def _sleep_states(self, deployments, live, sleepable):
        """``(asleep, unanswered)``: the running sleep-mode Deployments whose servers all say they are asleep
        (``GET /is_sleeping``), and those with a server that answers neither way (not loaded, crashing)."""
        asleep, unanswered = set(), set()
        for name in sleepable:
            if not live.get(name):
                continue
            info = standby.sleep_info(deployments[name])
            pods = [p for p in self.cluster.pods(deployments[name]) if not p["metadata"].get("deletionTimestamp")]
            answers = [standby.is_sleeping(self.kube, p, info["engine_port"]) for p in pods]
            if answers and all(a is True for a in answers):
                asleep.add(name)
            elif not answers or None in answers:
                unanswered.add(name)
        return asleep, unanswered

    def _serving(self, plan, deployments, recorded):
        """The target mode is recorded, runs as it should (its standby asleep) and its workloads are ready:
        nothing to do."""
        if plan["stop"] or plan["start"] or plan["sleep"] or plan["wake"] or plan["standby_start"] or \
                recorded != self.mode:
            return False
        for name, replicas in plan["keep"].items():
            status = deployments[name].get("status") or {}
            if int(status.get("readyReplicas") or 0) < replicas:
                return False
        return True

    def _memory_poller(self, plan):
        if not self.options.get("memory_wait", True) or not (plan["stop"] or plan["sleep"] or plan["standby_start"]):
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
        leaving = plan["stop"] + [n for n in plan["sleep"] if n not in plan["stop"]]
        outgoing = [deployments[n] for n in leaving]
        outgoing_pods = [p for d in outgoing for p in self.cluster.pods(d)]
        self.timer.begin("drain", ", ".join(leaving) or "nothing to drain")
        if outgoing_pods and not opts.get("force"):
            self._out_of_service(outgoing)
            self.result["drain_seconds"] = self._drain(outgoing, outgoing_pods)
        elif outgoing_pods:
            self._out_of_service([deployments[n] for n in plan["sleep"]])  # a sleeper never stays in its Service

        uids = [p["metadata"]["uid"] for p in outgoing_pods]
        before = release.snapshot(self._poller, uids, opts.get("proc_root", "/proc")) if self._poller else {}
        keep = {}
        if plan["sleep"]:
            self.timer.begin("sleep", ", ".join(plan["sleep"]))
            for name in plan["sleep"]:
                keep.update(self._sleep(deployments[name]))

        self.timer.begin("stop", ", ".join(plan["stop"]) or "nothing to stop")
        for name in plan["stop"]:
            self._touched = True
            self.cluster.scale(name, 0)
        self.cluster.wait_pods_gone([deployments[n] for n in plan["stop"]], self.clock() + opts["stop_timeout"])

        self.timer.begin("release", "GPU memory of %d pod(s)" % len(uids))
        if self._poller is not None and uids:
            names = dict((p["metadata"]["uid"], "%s/%s" % (p["metadata"]["namespace"], p["metadata"]["name"]))
                         for p in outgoing_pods)
            self.result["release"] = release.wait_released(
                uids, opts["release_timeout"], poller=self._poller, proc_root=opts.get("proc_root", "/proc"),
                tolerance_mib=opts["memory_tolerance_mib"], before=before, describe_pod=names.get, keep_mib=keep,
                clock=self.clock)

        if plan["standby_start"]:
            self.timer.begin("standby", ", ".join(plan["standby_start"]))
            for name in plan["standby_start"]:
                self._start_asleep(deployments[name])
        if plan["wake"]:
            self.timer.begin("wake", ", ".join(sorted(plan["wake"])))
            for name in sorted(plan["wake"]):
                self._wake(deployments[name], plan["wake"][name])
        self._start(plan["start"], deployments, list(plan["wake"]))

    def _out_of_service(self, deployments):
        """Take the pods of ``deployments`` out of their Service (their in-flight requests finish)."""
        for deployment in deployments:
            keys = self.cluster.service_only_labels(deployment)
            for pod in self.cluster.pods(deployment):
                labels = (pod.get("metadata") or {}).get("labels") or {}
                for key in keys:
                    if key in labels:
                        self.cluster.set_pod_label(pod, key, None)
                        self._relabelled.append((pod, key, labels[key]))

    def _into_service(self, deployment):
        """Put the pods of ``deployment`` (awake, checked) back behind their Service."""
        wanted = self.cluster.service_labels(deployment)
        for pod in self.cluster.pods(deployment):
            labels = (pod.get("metadata") or {}).get("labels") or {}
            for key, value in sorted(wanted.items()):
                if labels.get(key) != value:
                    self.cluster.set_pod_label(pod, key, value)
        names = set(p["metadata"]["name"] for p in self.cluster.pods(deployment))
        self._relabelled = [r for r in self._relabelled if r[0]["metadata"]["name"] not in names]

    def _sleep(self, deployment):
        """Put the servers of ``deployment`` to sleep; ``{pod uid: residue MiB}`` for the memory wait."""
        info = standby.sleep_info(deployment)
        keep = {}
        self._touched = True
        self._slept.append(deployment["metadata"]["name"])
        for pod in self.cluster.pods(deployment):
            self.result.setdefault("sleep_seconds", {})[pod["metadata"]["name"]] = standby.sleep_pod(
                self.kube, pod, info, self.options["sleep_timeout"])
            keep[pod["metadata"]["uid"]] = info["residue_mib"]
        return keep

    def _start_asleep(self, deployment):
        """A standby workload that does not run: start it while nothing of the target is awake (it needs its
        share to start), keep it out of its Service, wait until it is ready, put it to sleep, see its memory
        come down to its residue."""
        opts = self.options
        name = deployment["metadata"]["name"]
        self._touched = True
        self._started.append(name)
        self.cluster.scale(name, 1)
        deadline = self.clock() + opts["start_timeout"]
        self.cluster.wait_pods_exist(deployment, 1, deadline)
        self._out_of_service([deployment])
        wait_started(self.cluster, {name: (deployment, 1)}, deadline, opts["crash_restarts"])
        pods = self.cluster.pods(deployment)
        uids = [p["metadata"]["uid"] for p in pods]
        before = release.snapshot(self._poller, uids, opts.get("proc_root", "/proc")) if self._poller else {}
        keep = self._sleep(deployment)
        if self._poller is not None:
            release.wait_released(uids, opts["release_timeout"], poller=self._poller,
                                  proc_root=opts.get("proc_root", "/proc"), tolerance_mib=opts["memory_tolerance_mib"],
                                  before=before, keep_mib=keep, clock=self.clock)

    def _wake(self, deployment, replicas):
        """Wake the servers of ``deployment``, check each answers its model and a completion, put them back in
        their Service. A wake-up that fails (an error, a server still asleep, a wedged engine) falls back to a
        cold restart of the workload: scaled to 0, its memory released, scaled up again."""
        name = deployment["metadata"]["name"]
        info = standby.sleep_info(deployment)
        served = (workload_info(deployment)["served_model_names"] or [None])[0]
        self._touched = True
        self._woken.append(name)
        pod = None
        try:
            for pod in self.cluster.pods(deployment):
                seconds = standby.wake_pod(self.kube, pod, info, self.options["wake_timeout"])
                self.result.setdefault("wake_seconds", {})[pod["metadata"]["name"]] = seconds
                standby.verify_serving(self.kube, pod, info, served, self.options["health_timeout"])
        except Exception as exc:  # pylint: disable=broad-except  # any failed wake-up: restart it cold
            why = str(exc)
            if pod is not None:
                container = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
                    "containers", [{}])[0].get("name")
                logged = standby.error_lines(self.kube, pod, container)
                if logged:
                    why += "; its log: " + " | ".join(logged)
            self.result.setdefault("cold_restarts", []).append({"workload": name, "why": why[:1000]})
            self.progress_note("wake", "%s did not wake (%s): restarting it cold" % (name, why[:300]))
            self._restart_cold(deployment, replicas)
            return
        self._into_service(deployment)

    def _restart_cold(self, deployment, replicas):
        opts = self.options
        name = deployment["metadata"]["name"]
        pods = self.cluster.pods(deployment)
        uids = [p["metadata"]["uid"] for p in pods]
        before = release.snapshot(self._poller, uids, opts.get("proc_root", "/proc")) if self._poller else {}
        self.cluster.scale(name, 0)
        self.cluster.kill_pods(deployment)  # a server that did not wake serves nobody: no grace period
        self.cluster.wait_pods_gone([deployment], self.clock() + opts["stop_timeout"])
        if self._poller is not None and uids:
            release.wait_released(uids, opts["release_timeout"], poller=self._poller,
                                  proc_root=opts.get("proc_root", "/proc"), tolerance_mib=opts["memory_tolerance_mib"],
                                  before=before, clock=self.clock)
        self.cluster.scale(name, replicas)
        wait_started(self.cluster, {name: (deployment, replicas)}, self.clock() + opts["start_timeout"],
                     opts["crash_restarts"])

    def progress_note(self, phase, message):
        self.timer.progress(phase, message, round(self.clock() - self.timer.started, 3))

    def _drain(self, outgoing, pods):
        by_port = {}
        for deployment in outgoing:
            port = workload_info(deployment)["port"]
            by_port.setdefault(port, []).extend(self.cluster.pods(deployment))
        waited = 0.0
        for port, port_pods in by_port.items():
            waited += drain_mod.wait_drained(self.kube, port_pods, port, self.options["drain_timeout"], clock=self.clock)
        return round(waited, 3)

    def _start(self, start, deployments, woken=()):
        self.timer.begin("start", ", ".join("%s=%d" % kv for kv in sorted(start.items())) or "nothing to start")
        self.result["ready_seconds"] = self._scale_up(start, deployments)
        self.timer.begin("health", "through the Service")
        self.result["health"] = self._serving_check(set(start) | set(woken), deployments)

    def _scale_up(self, replicas_by_name, deployments):
        """Scale to the replicas and wait until their pods are Ready (failing fast on a crash)."""
        for name, replicas in sorted(replicas_by_name.items()):
            self._touched = True
            self._started.append(name)
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
                check_models=bool(info["served_model_names"]), timeout=self.options["health_timeout"], interval=0.05)
        return checks

    # ------------------------------------------------------------------ failure handling
    def _rollback(self, plan, deployments, previous_mode):
        """Take off the GPU what the failed switch brought up (stopped at once, or put back to sleep when it was
        a sleeper that still serves), see its memory released, then bring back what was awake before (woken,
        or scaled back) and see it serve through its Service."""
        out = {"ok": False, "steps": [], "seconds": {}}
        opts = self.options
        self.timer.begin("rollback", "back to %s" % (previous_mode or "what ran before"))
        step_started = [self.clock()]

        def step(name, text):
            now = self.clock()
            out["seconds"][name] = round(now - step_started[0], 3)
            step_started[0] = now
            out["steps"].append(text)

        was_running = set(plan["stop"]) | set(plan["sleep"]) | set(plan["keep"]) | set(plan["keep_asleep"]) | \
            set(plan["wake"])
        was_asleep = self._asleep_before
        try:
            to_stop = [n for n in dict.fromkeys(self._started) if n not in was_running]
            to_sleep = []
            for name in dict.fromkeys(self._woken):
                if name not in was_asleep:
                    continue  # awake before the switch too (put to sleep and woken to start a standby)
                if self._awake_and_serving(deployments[name]):
                    to_sleep.append(name)
                elif name not in to_stop:
                    to_stop.append(name)
            stopping = [deployments[n] for n in to_stop]
            pods = [p for d in stopping + [deployments[n] for n in to_sleep] for p in self.cluster.pods(d)]
            uids = [p["metadata"]["uid"] for p in pods]
            before = release.snapshot(self._poller, uids, opts.get("proc_root", "/proc")) if self._poller else {}
            keep = {}
            for name in to_sleep:
                self._out_of_service([deployments[name]])
                keep.update(self._sleep(deployments[name]))
            if to_sleep:
                step("sleep", "%s asleep again" % ", ".join(to_sleep))
            for d in stopping:
                self.cluster.scale(d["metadata"]["name"], 0)
                self.cluster.kill_pods(d)  # a target that failed serves nobody: no grace period to sit out
            self.cluster.wait_pods_gone(stopping, self.clock() + opts["stop_timeout"])
            step("stop", "stopped %s" % (", ".join(to_stop) or "nothing"))
            if self._poller is not None and uids:
                release.wait_released(uids, opts["release_timeout"], poller=self._poller,
                                      proc_root=opts.get("proc_root", "/proc"),
                                      tolerance_mib=opts["memory_tolerance_mib"], before=before, keep_mib=keep,
                                      clock=self.clock)
                step("release", "their GPU memory was released")
            woken = set(self._woken)
            rewoken = [n for n in dict.fromkeys(self._slept) if n not in was_asleep and n not in to_sleep and
                       n not in woken]
            for name in rewoken:
                self._wake(deployments[name], int((deployments[name].get("spec") or {}).get("replicas") or 1))
            if rewoken:
                step("wake", "%s awake again" % ", ".join(rewoken))
            restore = dict((n, int((deployments[n].get("spec") or {}).get("replicas") or 0)) for n in plan["stop"]
                           if n not in was_asleep)
            self._scale_up(restore, deployments)
            self._restore_labels()
            step("start", "%s ready again" % (", ".join(sorted(restore)) or "nothing to restore"))
            self._serving_check([n for n, r in restore.items() if r] + rewoken, deployments)
            step("health", "serving through the Service")
            lost = sorted(set(n for n in plan["stop"] if n in was_asleep) | set(n for n in to_stop if n in was_asleep))
            if lost:
                out["steps"].append("standby %s not restored (the next switch to a mode that keeps it starts it)"
                                    % ", ".join(lost))
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

    def _awake_and_serving(self, deployment):
        """Whether every server of a sleep-mode Deployment says it is awake (so it can be put to sleep)."""
        info = standby.sleep_info(deployment)
        pods = self.cluster.pods(deployment)
        return bool(pods) and all(standby.is_sleeping(self.kube, p, info["engine_port"]) is False for p in pods)

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
