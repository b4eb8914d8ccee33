"""The kubelet's device manager on one node: device plugins register resources (`nvidia.com/gpu` with one
device id per GPU, or per time-slicing replica: `<GPU uuid>::<n>`); node capacity and allocatable follow
(a plugin that stops: allocatable 0 at once, capacity kept for the endpoint grace period of 5 minutes,
then reported as 0); pods get device ids at admission, and through them the physical GPU(s) behind.

With time-slicing, a request is placed on the GPU with the fewest replicas in use (the NVIDIA plugin's
preferred allocation for shared GPUs); `failRequestsGreaterThanOne` refuses requests above 1."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from .timing import SimClock

ENDPOINT_STOP_GRACE = 300.0  # simulated seconds (devicemanager's endpointStopGracePeriod)
Device = Tuple[str, int]  # (device id, physical GPU index)


class AdmissionError(Exception):
    """The kubelet rejects the pod: phase Failed with this reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Endpoint:
    owner: str
    resource: str
    devices: List[Device]
    fail_requests_greater_than_one: bool
    stopped_at: Optional[float] = None


class DeviceManager:
    def __init__(self, clock: SimClock, on_change: Callable[[], None] = lambda: None) -> None:
        self.clock = clock
        self.on_change = on_change
        self._endpoints: Dict[str, Endpoint] = {}  # by resource name
        self._in_use: Dict[str, Dict[str, List[Device]]] = {}  # pod uid -> container -> devices
        self._lock = threading.RLock()

    def register(self, owner: str, resource: str, devices: List[Device], fail_requests_greater_than_one: bool) -> None:
        with self._lock:
            self._endpoints[resource] = Endpoint(owner, resource, list(devices), fail_requests_greater_than_one)
            for other in [e for e in self._endpoints.values() if e.owner == owner and e.resource != resource]:
                other.stopped_at = other.stopped_at or self.clock.now()
        self.on_change()

    def unregister(self, owner: str) -> None:
        with self._lock:
            for endpoint in self._endpoints.values():
                if endpoint.owner == owner and endpoint.stopped_at is None:
                    endpoint.stopped_at = self.clock.now()
        self.on_change()

    def resources(self) -> Tuple[Dict[str, int], Dict[str, int]]:
        """(capacity, allocatable) per registered resource; 0 for those removed after their grace period."""
        capacity: Dict[str, int] = {}
        allocatable: Dict[str, int] = {}
        with self._lock:
            for name, endpoint in self._endpoints.items():
                expired = endpoint.stopped_at is not None and \
                    self.clock.now() - endpoint.stopped_at > self.clock.real(ENDPOINT_STOP_GRACE)
                capacity[name] = 0 if expired else len(endpoint.devices)
                allocatable[name] = len(endpoint.devices) if endpoint.stopped_at is None else 0
        return capacity, allocatable

    def next_expiry(self) -> Optional[float]:
        """Real seconds until a stopped endpoint's grace period ends (the status must be updated then)."""
        with self._lock:
            times = [e.stopped_at + self.clock.real(ENDPOINT_STOP_GRACE) - self.clock.now()
                     for e in self._endpoints.values() if e.stopped_at is not None]
        times = [t for t in times if t > 0]
        return min(times) if times else None

    def allocate(self, pod_uid: str, container: str, resource: str, count: int) -> List[Device]:
        with self._lock:
            endpoint = self._endpoints.get(resource)
            if endpoint is None or endpoint.stopped_at is not None:
                raise AdmissionError("UnexpectedAdmissionError", f"Allocate failed due to no healthy devices present; "
                                     f"cannot allocate unhealthy devices {resource}, which is unexpected")
            if endpoint.fail_requests_greater_than_one and count > 1:
                raise AdmissionError("UnexpectedAdmissionError", f"Allocate failed due to rpc error: code = Unknown "
                                     f"desc = request for '{resource}: {count}' too large: maximum request size for "
                                     "shared resources is 1, which is unexpected")
            used = {d for containers in self._in_use.values() for devices in containers.values() for d in devices}
            free = [d for d in endpoint.devices if d not in used]
            if len(free) < count:
                raise AdmissionError("UnexpectedAdmissionError", f"Allocate failed due to requested number of devices "
                                     f"unavailable for {resource}. Requested: {count}, Available: {len(free)}, "
                                     "which is unexpected")
            load: Dict[int, int] = {}
            for device in used:
                load[device[1]] = load.get(device[1], 0) + 1
            chosen: List[Device] = []
            for _n in range(count):
                pick = min(free, key=lambda d: (load.get(d[1], 0) + sum(1 for c in chosen if c[1] == d[1]), d[1], d[0]))
                chosen.append(pick)
                free.remove(pick)
            self._in_use.setdefault(pod_uid, {})[container] = chosen
            return chosen

    def release(self, pod_uid: str) -> None:
        with self._lock:
            self._in_use.pop(pod_uid, None)

    def allocated(self, pod_uid: str) -> Dict[str, List[Device]]:
        with self._lock:
            return {c: list(d) for c, d in self._in_use.get(pod_uid, {}).items()}
