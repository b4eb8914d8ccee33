"""Simulated time: one factor turns every simulated duration into real seconds, and the kubelet's back-off.

Every duration the simulated node stands in for (probe delays, periods and timeouts, crash-loop and image
pull back-off, termination grace, image pull time, garbage collection, the Deployment progress deadline, the
fake vLLM's load and shutdown, GPU memory release) is written in SIMULATED seconds and slept as
`seconds * time_scale` real seconds. 1.0 is real time; tests of logic use a small scale.

The scale comes from `KubeletSimulator(time_scale=...)`, else `$BAREMETAL_GPU_SIM_TIME_SCALE`, else 1.0.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Dict, Optional

TIME_SCALE_ENV = "BAREMETAL_GPU_SIM_TIME_SCALE"
# What the pytest fixtures use for tests of logic (a 10 s probe period is 0.5 s): tests of timing say 1.0.
LOGIC_TEST_TIME_SCALE = 0.05
# Real work (an HTTP request to loopback, a command run for an exec probe) takes real time on a busy
# machine: a probe's timeout is never shorter than this many real seconds, whatever the scale.
MIN_REAL_TIMEOUT = 0.25


def resolve_time_scale(value: Optional[float] = None) -> float:
    """The scale to use: `value`, else $BAREMETAL_GPU_SIM_TIME_SCALE, else 1.0 (> 0 in every case)."""
    if value is None:
        text = os.environ.get(TIME_SCALE_ENV, "").strip()
        try:
            value = float(text) if text else 1.0
        except ValueError:
            raise ValueError(f"{TIME_SCALE_ENV}={text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"time scale must be > 0, got {value}")
    return float(value)


class SimClock:
    """Converts simulated seconds to real ones and sleeps them."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def real(self, seconds: float) -> float:
        return max(0.0, float(seconds)) * self.scale

    def sim(self, real_seconds: float) -> float:
        return real_seconds / self.scale

    def timeout(self, seconds: float) -> float:
        """A timeout for real work: scaled, but never below MIN_REAL_TIMEOUT."""
        return max(self.real(seconds), MIN_REAL_TIMEOUT)

    @staticmethod
    def now() -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.real(seconds))


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it: 10s, 1m20s, 5m0s, 1.5s."""
    if seconds < 60:
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return f"{text}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{rest}s"


@dataclass
class _Entry:
    backoff: float  # simulated seconds
    last_update: float  # monotonic real time


class BackOff:
    """client-go's flowcontrol.Backoff as the kubelet uses it for container restarts and image pulls:
    per key, `initial` doubling to `cap` (simulated seconds); an entry idle for more than 2 x cap is
    forgotten (a container that ran 10 minutes starts again from 10 s)."""

    def __init__(self, clock: SimClock, initial: float = 10.0, cap: float = 300.0) -> None:
        self.clock = clock
        self.initial = initial
        self.cap = cap
        self._entries: Dict[str, _Entry] = {}

    def _expired(self, event_time: float, entry: _Entry) -> bool:
        return event_time - entry.last_update > self.clock.real(2 * self.cap)

    def get(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        """True while less than the current back-off has passed since `event_time` (a real monotonic time)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            return False
        return self.clock.now() - event_time < self.clock.real(entry.backoff)

    def remaining(self, key: str, event_time: float) -> float:
        """Real seconds until `key` leaves its back-off counted from `event_time`."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, event_time + self.clock.real(entry.backoff) - self.clock.now())

    def next(self, key: str, event_time: float) -> float:
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            entry = self._entries[key] = _Entry(self.initial, self.clock.now())
        else:
            entry.backoff = min(entry.backoff * 2, self.cap)
            entry.last_update = self.clock.now()
        return entry.backoff

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)
