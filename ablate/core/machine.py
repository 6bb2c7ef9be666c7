"""This machine: its CPU, the cores this process may use, and how many of them other processes keep busy.

Read by the cost record (the CPU's name), the local executor (how many jobs fit) and the CRF pool (its size)."""

from __future__ import annotations

import os
import platform
import time


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. what SLURM or taskset gave it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def busy_cores(window_s: float = 0.25) -> float:
    """How many cores other processes kept busy over ``window_s`` (this process sleeps meanwhile), 0 if unknown."""
    first = _cpu_times()
    time.sleep(window_s)
    second = _cpu_times()
    if first is None or second is None or second[1] <= first[1]:
        return 0.0
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def free_cores() -> int:
    """Cores of this process's share that nothing else is using now (at least 1)."""
    return max(1, round(available_cores() - busy_cores()))
