"""Containers run the program their argv names, and live and die as on a node: exit codes, crash-loop
back-off (10 s doubling to 300 s, reset after 10 minutes), StartError, init containers in order, and
termination with grace (SIGTERM, preStop, SIGKILL). Time scale 0.05 unless a test says otherwise."""

import time

import pytest

from tests.harness.kubelet import KubeletSimulator
from tests.harness.kubelet.testing import (available, container, deployment, events, messages, pod, pods_of, ready,
                                           status_of, waiting_reason, wait_for)

SCALE = 0.05


@pytest.fixture
def sim(kube_api):
    with KubeletSimulator(kube_api.url, time_scale=SCALE) as simulator:
        yield simulator
    assert not simulator.errors, simulator.errors


def last_terminated(kube_api, app):
    return [status_of(p)["lastState"]["terminated"] for p in pods_of(kube_api, app)
            if status_of(p).get("lastState", {}).get("terminated")]


def test_commands_that_cannot_succeed_crash_loop_with_their_exit_code(kube_api, sim):
    kube_api.create(deployment("exit3", container(command=["sh", "-c", "exit 3"])))
    kube_api.create(deployment("false", container(command=["/bin/false"])))
    kube_api.create(deployment("true", container(command=["true"])))
    for app, code, reason in (("exit3", 3, "Error"), ("false", 1, "Error"), ("true", 0, "Completed")):
        [terminated] = wait_for(lambda a=app: last_terminated(kube_api, a), what=f"{app} exited")
        assert (terminated["exitCode"], terminated["reason"]) == (code, reason)
        [crashing] = wait_for(lambda a=app: [p for p in pods_of(kube_api, a)
                                             if waiting_reason(p) == "CrashLoopBackOff"],
                              what=f"{app} in CrashLoopBackOff")
        name, uid = crashing["metadata"]["name"], crashing["metadata"]["uid"]
        assert status_of(crashing)["state"]["waiting"]["message"] == \
            f"back-off 10s restarting failed container=main pod={name}_default({uid})"
        assert status_of(crashing)["restartCount"] == 1 and not ready(crashing)
        wait_for(lambda n=name, u=uid: f"Back-off restarting failed container main in pod {n}_default({u})" in
                 messages(kube_api, "BackOff", about=n), what="BackOff event")
        assert not available(kube_api, app, 1)


def test_crash_loop_back_off_doubles_from_10s(kube_api):
    # time scale 0.02: waits of 10, 20, 40 s are 0.2, 0.4, 0.8 s
    pods = kube_api.resource("Pod")
    seen = []
    kube_api.store.add_listener(lambda e: seen.append((time.monotonic(), e.obj)) if e.resource is pods else None)
    with KubeletSimulator(kube_api.url, time_scale=0.02):
        kube_api.create(pod("crash", container(command=["sh", "-c", "exit 1"])))
        wait_for(lambda: status_of(kube_api.get("Pod", "crash")).get("restartCount", 0) >= 4, what="4 restarts")
    backoffs = []
    for _stamp, obj in seen:
        message = ((status_of(obj).get("state") or {}).get("waiting") or {}).get("message", "")
        if message and (not backoffs or backoffs[-1] != message.split()[1]):
            backoffs.append(message.split()[1])
    assert backoffs[:3] == ["10s", "20s", "40s"]
    restarts = {}
    for stamp, obj in seen:
        restarts.setdefault(status_of(obj).get("restartCount"), stamp)
    # restart 1 at once, 2 after 10 s, 3 after 20 s, 4 after 40 s (simulated), at least
    gaps = [(restarts[n + 1] - restarts[n]) / 0.02 for n in (1, 2, 3)]
    assert gaps[0] >= 9 and gaps[1] >= 19 and gaps[2] >= 39, gaps


def test_the_back_off_is_forgotten_after_ten_minutes_of_running(kube_api):
    # time scale 0.002: a container that ran 700 s (1.4 s real) before failing restarts at once, each time
    with KubeletSimulator(kube_api.url, time_scale=0.002):
        kube_api.create(pod("long", container(command=["sh", "-c", "sleep 700; exit 1"])))
        reasons = set()
        deadline = time.monotonic() + 20
        while status_of(kube_api.get("Pod", "long")).get("restartCount", 0) < 2 and time.monotonic() < deadline:
            reasons.add(waiting_reason(kube_api.get("Pod", "long")))
            time.sleep(0.01)
    assert status_of(kube_api.get("Pod", "long"))["restartCount"] >= 2
    assert "CrashLoopBackOff" not in reasons


def test_a_program_the_image_lacks_fails_to_start(kube_api, sim):
    kube_api.create(pod("missing", container(command=["vllm", "serve", "Qwen/Qwen3-8B-AWQ"])))
    terminated = wait_for(lambda: last_terminated(kube_api, "missing") or
                          [status_of(p).get("state", {}).get("terminated") for p in pods_of(kube_api, "missing")
                           if status_of(p).get("state", {}).get("terminated")], what="StartError")[0]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    assert 'exec: "vllm": executable file not found in $PATH' in terminated["message"]


def test_an_unknown_program_runs_idle_and_says_so(kube_api, sim):
    kube_api.create(pod("web", container("web", "nginx:1.27", port=80)))
    wait_for(lambda: ready(kube_api.get("Pod", "web")), what="running")
    record = sim.record_of("default", "web")
    assert record.current_logs() == ["simulator: no model of program '/docker-entrypoint.sh' (argv "
                                     "['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;']): running idle, "
                                     "listening nowhere"]


def test_init_containers_run_in_order_before_the_app(kube_api, sim):
    shared = [{"name": "work", "mountPath": "/work"}]
    first = container("first", command=["sh", "-c", "echo one > /work/log"], volumeMounts=shared)
    second = container("second", command=["sh", "-c", "cat /work/log && echo two >> /work/log"], volumeMounts=shared)
    app = container("app", command=["sh", "-c", "cat /work/log; sleep infinity"], volumeMounts=shared)
    kube_api.create(pod("ordered", app, initContainers=[first, second], volumes=[{"name": "work", "emptyDir": {}}]))
    wait_for(lambda: ready(kube_api.get("Pod", "ordered")), what="ready")
    done = kube_api.get("Pod", "ordered")
    assert [s["state"]["terminated"]["reason"] for s in done["status"]["initContainerStatuses"]] == \
        ["Completed", "Completed"]
    assert sim.record_of("default", "ordered", "app").current_logs() == ["one", "two"]
    wait_for(lambda: {e["involvedObject"]["fieldPath"] for e in events(kube_api, "Started", about="ordered")} ==
             {"spec.initContainers{first}", "spec.initContainers{second}", "spec.containers{app}"},
             what="Started events naming each container")


def test_a_failing_init_container_keeps_the_pod_initializing(kube_api, sim):
    failing = container("init", command=["sh", "-c", "exit 2"])
    kube_api.create(pod("stuck", container(command=["sleep", "infinity"]), initContainers=[failing]))
    stuck = wait_for(lambda: waiting_reason(kube_api.get("Pod", "stuck"), "init", init=True) == "CrashLoopBackOff"
                     and kube_api.get("Pod", "stuck"), what="Init:CrashLoopBackOff")
    init = status_of(stuck, "init", init=True)
    assert (init["lastState"]["terminated"]["exitCode"], init["lastState"]["terminated"]["reason"]) == (2, "Error")
    assert waiting_reason(stuck) == "PodInitializing" and stuck["status"]["phase"] == "Pending"
    initialized = next(c for c in stuck["status"]["conditions"] if c["type"] == "Initialized")
    assert (initialized["status"], initialized["reason"], initialized["message"]) == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [init]")
    kube_api.create(pod("never", container(command=["sleep", "infinity"]), initContainers=[failing],
                        restartPolicy="Never"))
    wait_for(lambda: kube_api.get("Pod", "never")["status"].get("phase") == "Failed", what="Never: pod Failed")


def test_a_deleted_pod_stays_terminating_until_sigkill_at_the_end_of_its_grace(kube_api):
    # time scale 0.02: grace 30 s = 0.6 s; sh as PID 1 ignores SIGTERM, so it is killed: 137
    pods = kube_api.resource("Pod")
    final = []
    kube_api.store.add_listener(lambda e: final.append(e.obj) if e.resource is pods and e.type == "MODIFIED" else None)
    with KubeletSimulator(kube_api.url, time_scale=0.02) as sim:
        kube_api.create(pod("sleepy", container(command=["sh", "-c", "sleep infinity"]),
                            terminationGracePeriodSeconds=30))
        wait_for(lambda: ready(kube_api.get("Pod", "sleepy")), what="ready")
        started = time.monotonic()
        kube_api.registry.delete(pods, "default", "sleepy")
        assert kube_api.get("Pod", "sleepy")["metadata"]["deletionTimestamp"]
        wait_for(lambda: not pods_of(kube_api, "sleepy"), what="pod removed")
        elapsed = time.monotonic() - started
        assert not sim.errors
    assert elapsed >= 30 * 0.02, elapsed
    assert status_of(final[-1])["state"]["terminated"]["exitCode"] == 137
    assert final[-1]["status"]["phase"] == "Failed"
    wait_for(lambda: messages(kube_api, "Killing") == ["Stopping container main"], what="Killing event")


def test_a_program_that_traps_sigterm_exits_at_once_with_0(kube_api):
    # time scale 0.02, grace 300 s = 6 s: the trap ends it long before
    pods = kube_api.resource("Pod")
    final = []
    kube_api.store.add_listener(lambda e: final.append(e.obj) if e.resource is pods and e.type == "MODIFIED" else None)
    with KubeletSimulator(kube_api.url, time_scale=0.02):
        kube_api.create(pod("polite", container(command=["sh", "-c", "trap 'exit 0' TERM; sleep infinity"]),
                            terminationGracePeriodSeconds=300))
        wait_for(lambda: ready(kube_api.get("Pod", "polite")), what="ready")
        started = time.monotonic()
        kube_api.registry.delete(pods, "default", "polite")
        wait_for(lambda: not pods_of(kube_api, "polite"), what="pod removed")
        assert time.monotonic() - started < 300 * 0.02
    assert status_of(final[-1])["state"]["terminated"]["exitCode"] == 0
    assert final[-1]["status"]["phase"] == "Succeeded"


def test_delete_options_grace_and_prestop_hooks(kube_api):
    # time scale 0.02: spec grace 300 s, deleted with gracePeriodSeconds 20 (0.4 s); the preStop hook runs first
    pods = kube_api.resource("Pod")
    hook = {"preStop": {"exec": {"command": ["sh", "-c", "echo bye > /hooks/said"]}}}
    with KubeletSimulator(kube_api.url, time_scale=0.02) as sim:
        kube_api.create(pod("hooked", container(command=["sleep", "infinity"], lifecycle=hook,
                                                volumeMounts=[{"name": "hooks", "mountPath": "/hooks"}]),
                            terminationGracePeriodSeconds=300,
                            volumes=[{"name": "hooks", "hostPath": {"path": "/var/tmp/hooks",
                                                                    "type": "DirectoryOrCreate"}}]))
        wait_for(lambda: ready(kube_api.get("Pod", "hooked")), what="ready")
        started = time.monotonic()
        kube_api.registry.delete(pods, "default", "hooked", {"gracePeriodSeconds": 20})
        wait_for(lambda: not pods_of(kube_api, "hooked"), what="pod removed")
        elapsed = time.monotonic() - started
        assert sim.agents["gpu-node"].host.files["/var/tmp/hooks/said"] == b"bye\n"
    assert 20 * 0.02 <= elapsed < 300 * 0.02, elapsed
