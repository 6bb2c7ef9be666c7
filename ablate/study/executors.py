"""Where jobs run. ``run_inline`` runs them one after another in this process; ``LocalPool`` packs them onto the
devices of this machine as worker processes (``python -m ablate.study.worker``), each given its own GPUs or an
equal share of the CPU cores. Torch-free."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.study.grid import Run


@dataclass
class Item:
    index: int
    run: Run
    run_dir: Path
    train_dir: Path


def visible_gpus() -> list[str]:
    """GPU ids this process may use, without importing torch (CUDA_VISIBLE_DEVICES, else nvidia-smi)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def gpus_wanted(run: Run) -> int:
    train = run.config.get("train", {})
    return 0 if train.get("accelerator") == "cpu" else int(train.get("devices", 1))


class LocalPool:
    """Runs items as worker processes, at most ``max_parallel`` at once, never two of one training at once."""

    def __init__(self, max_parallel: int, job_ref: str, console: Any, poll_s: float = 0.2):
        self.max_parallel, self.job_ref, self.console, self.poll_s = max_parallel, job_ref, console, poll_s
        self.gpus = visible_gpus()
        self.cpus = os.cpu_count() or 1

    def _env(self, gpus: list[str]) -> dict[str, str]:
        env = dict(os.environ)
        threads = str(max(1, self.cpus // self.max_parallel))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONUNBUFFERED="1")
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        return env

    def run(self, items: list[Item], total: int, on_done: Callable[[Item], None]) -> None:
        waiting = list(items)
        active: dict[int, tuple[Item, subprocess.Popen, list[str], threading.Thread]] = {}
        free = list(self.gpus)
        while waiting or active:
            busy_trainings = {item.run.train_id for item, *_ in active.values()}
            for item in list(waiting):
                if len(active) >= self.max_parallel:
                    break
                if item.run.train_id in busy_trainings:
                    continue
                need = min(gpus_wanted(item.run), len(self.gpus)) if self.gpus else 0
                if need > len(free):
                    continue
                taken, free = free[:need], free[need:]
                waiting.remove(item)
                busy_trainings.add(item.run.train_id)
                self.console.print(f"[bold][{item.index}/{total}][/bold] {item.run.id}  {item.run.label}  (started)")
                cmd = [
                    sys.executable,
                    "-m",
                    "ablate.study.worker",
                    str(item.run_dir),
                    str(item.train_dir),
                    "--job",
                    self.job_ref,
                ]
                proc = subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self._env(taken)
                )
                relay = threading.Thread(target=self._relay, args=(item, proc, total), daemon=True)
                relay.start()
                active[proc.pid] = (item, proc, taken, relay)
            for pid, (item, proc, taken, relay) in list(active.items()):
                if proc.poll() is not None:
                    relay.join()
                    del active[pid]
                    free += taken
                    on_done(item)
            time.sleep(self.poll_s)

    def _relay(self, item: Item, proc: subprocess.Popen, total: int) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line and "Warning" not in line and not line.startswith(" "):
                self.console.print(f"    [{item.index}/{total}] {line}", highlight=False, markup=False)
