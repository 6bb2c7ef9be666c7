"""The local executor: this machine's CPU cores and GPUs.

One job at a time runs in this process; more run in worker processes (``python -m ablate.study.worker --serve``),
each started once with its own GPUs or its CPU threads and fed job after job (the imports are paid once per worker,
not per job). A DDP job (``train.devices > 1``) gets a process of its own, which launches its ranks.

CPU jobs use ``threads`` intra-op threads each (default 1). The thread count changes the order of floating-point
sums, so it is fixed per job rather than sized to the load: a run's weights do not depend on how many jobs run at
once or how busy the machine is. How many jobs run at once is sized to the cores other processes leave free (and
to the free GPUs). Torch-free."""

from __future__ import annotations

import ctypes
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field, PositiveInt, PrivateAttr
from rich.markup import escape

from ablate.core import signals
from ablate.core.jobs import THREADS_ENV
from ablate.core.machine import free_cores
from ablate.core.schema import Strict
from ablate.study.executors.base import EXECUTORS, Context, Item, Report, select
from ablate.study.executors.slurm_queue import held_by_slurm
from ablate.study.progress import RunClock, step_line, study_eta

DEFAULT_CPU_THREADS = 1


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


def devices_of(item: Item) -> int:
    return int(item.run.config["train"].get("devices", 1))


def on_cpu(item: Item, gpus: list[str]) -> bool:
    return not gpus or item.run.config["train"].get("accelerator") == "cpu"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """A worker gets SIGTERM (checkpoint, then exit) when the process that started it dies, even by kill -9."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@EXECUTORS.register
class LocalExecutor(Strict):
    """Jobs on this machine. ``max_parallel``: jobs at once (default: one per free set of GPUs; on a CPU-only
    machine, as many as free cores / ``threads``). ``threads``: intra-op CPU threads of each CPU job (default 1:
    a run's numbers then do not depend on how many jobs share the machine)."""

    kind: Literal["local"] = "local"
    max_parallel: PositiveInt | None = None
    threads: PositiveInt | None = Field(default=None)
    _pool: _Pool | None = PrivateAttr(default=None)  # worker processes kept between runs (``keep_workers``)
    _keep: int = PrivateAttr(default=0)

    @contextmanager
    def keep_workers(self) -> Iterator[None]:
        """Inside, the worker processes outlive each ``execute`` and take the next one's jobs (adaptive seeds' rounds):
        each pays its imports and its generated data once, not once a round. They end when it is left."""
        self._keep += 1
        try:
            yield
        finally:
            self._keep -= 1
            if not self._keep:
                self.close()

    def close(self) -> None:
        """End the kept worker processes (each ends at the end of its input)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def cpu_threads(self) -> int:
        return self.threads or DEFAULT_CPU_THREADS

    def jobs_at_once(self, items: list[Item], gpus: list[str]) -> int:
        trainings = len({item.run.train_id for item in items})
        if self.max_parallel is not None:
            return max(1, min(self.max_parallel, trainings))
        if gpus:
            per_job = max((devices_of(item) for item in items), default=1)
            return max(1, min(len(gpus) // per_job, trainings))
        return max(1, min(free_cores() // self.cpu_threads(), trainings))

    def select(self, runs: list, store: Any, retry_failed: bool = False) -> tuple[list, list]:
        """The runs to do here; a run a queued SLURM job holds (``ablate run --executor slurm --detach``) is busy."""
        states = {r.id: store.state(r) for r in runs}
        return select(runs, store, retry_failed, held=held_by_slurm([r for r in runs if states[r.id] != "done"], store))

    def execute(self, ctx: Context, items: list[Item], report: Report, progress: Any = None) -> bool:
        """Run ``items``; ``report(item, record)`` as each finishes; returns True (it waits for every job). Raises
        ``Interrupted`` (after the running jobs have checkpointed) when this process is asked to stop."""
        if not items:
            return True
        gpus = visible_gpus()
        parallel = self.jobs_at_once(items, gpus)
        if parallel == 1 and all(devices_of(item) == 1 for item in items):
            self._inline(ctx, items, report, gpus, progress)
            return True
        pool = self._pool
        if pool is not None and pool.fits(ctx, gpus):
            pool.renew(ctx, parallel)
        else:
            self.close()
            pool = self._pool = _Pool(self, ctx, parallel, gpus)
        try:
            pool.execute(items, report)
        except BaseException:
            self._pool = None  # stopped (its workers have ended) or broken: never reused
            raise
        finally:
            if not self._keep:
                self.close()
        return True

    def _inline(self, ctx: Context, items: list[Item], report: Report, gpus: list[str], progress) -> None:
        from ablate.study.worker import execute_job

        for item in items:
            if on_cpu(item, gpus):
                os.environ[THREADS_ENV] = str(self.cpu_threads())
            if progress is not None:
                progress.start_run(item.index, item.run)
            record = execute_job(ctx.job, item.run_dir, item.train_dir, progress)
            if progress is not None:
                progress.end_run()
            report(item, record)


class _Worker:
    """A worker process and what it is doing: ``item`` (None when idle), its GPUs."""

    def __init__(self, proc: subprocess.Popen, gpus: list[str], serve: bool):
        self.proc, self.gpus, self.serve = proc, gpus, serve
        self.item: Item | None = None
        self.started = time.monotonic()  # of its current item
        self.clock = RunClock()

    def give(self, item: Item) -> None:
        self.item, self.started, self.clock = item, time.monotonic(), RunClock()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"run_dir": str(item.run_dir), "train_dir": str(item.train_dir)}) + "\n")
        self.proc.stdin.flush()


class _Pool:
    """Runs items on worker processes, at most ``parallel`` at once, never two of one training at once."""

    def __init__(self, cfg: LocalExecutor, ctx: Context, parallel: int, gpus: list[str]):
        self.cfg, self.ctx, self.parallel, self.gpus = cfg, ctx, parallel, gpus
        self.events: queue.Queue = queue.Queue()  # (worker, line or None at its end)
        self.workers: list[_Worker] = []
        self.started = time.monotonic()
        self.durations: list[float] = []  # of the items finished so far, for the study's ETA

    def _env(self, gpus: list[str], cpu: bool) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if cpu:
            threads = str(self.cfg.cpu_threads())
            env.update({THREADS_ENV: threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        return env

    def _start(self, gpus: list[str], cpu: bool, item: Item | None = None) -> _Worker:
        cmd = [sys.executable, "-m", "ablate.study.worker", "--job", self.ctx.job]
        cmd += [str(item.run_dir), str(item.train_dir)] if item is not None else ["--serve"]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self._env(gpus, cpu),
            start_new_session=True,  # the terminal's Ctrl-C reaches this process only; it passes it on once
            preexec_fn=_die_with_parent,
        )
        worker = _Worker(proc, gpus, serve=item is None)
        worker.item = item
        threading.Thread(target=self._relay, args=(worker,), daemon=True).start()
        self.workers.append(worker)
        return worker

    def _relay(self, worker: _Worker) -> None:
        assert worker.proc.stdout is not None
        with worker.proc.stdout:
            for line in worker.proc.stdout:
                self.events.put((worker, line.rstrip("\n")))
        self.events.put((worker, None))

    def _announce(self, item: Item) -> None:
        where = f"[bold][{item.index}/{self.ctx.total}][/bold]"
        self.ctx.console.print(f"{where} {item.run.id}  {escape(item.run.label)}  (started)")

    def fits(self, ctx: Context, gpus: list[str]) -> bool:
        """Whether this pool's workers can take ``ctx``'s jobs: the same job and the same GPUs."""
        return ctx.job == self.ctx.job and gpus == self.gpus

    def renew(self, ctx: Context, parallel: int) -> None:
        """Take the next run's items (adaptive seeds' next round) on the same worker processes."""
        self.ctx, self.parallel, self.started = ctx, parallel, time.monotonic()

    def close(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None and w.proc.stdin is not None and not w.proc.stdin.closed:
                w.proc.stdin.close()  # idle servers end at EOF

    def execute(self, items: list[Item], report: Report) -> None:
        waiting = list(items)
        free = list(self.gpus)
        for w in self.workers:  # kept from an earlier run: their GPUs are theirs still
            free = [g for g in free if g not in w.gpus]
        try:
            while waiting or any(w.item is not None for w in self.workers):
                self._dispatch(waiting, free)
                worker, line = self.events.get()
                self._handle(worker, line, report, free)
        except signals.Interrupted as stop:
            self._stop(stop)

    def _dispatch(self, waiting: list[Item], free: list[str]) -> None:
        busy_trainings = {w.item.run.train_id for w in self.workers if w.item is not None}
        for item in list(waiting):
            if sum(w.item is not None for w in self.workers) >= self.parallel:
                return
            if item.run.train_id in busy_trainings:
                continue
            cpu = on_cpu(item, self.gpus)
            need = 0 if cpu else min(devices_of(item), len(self.gpus))
            if devices_of(item) > 1:  # DDP: a process of its own that launches its ranks
                if need > len(free):
                    continue
                taken = [free.pop(0) for _ in range(need)]
                waiting.remove(item)
                self._announce(item)
                self._start(taken, cpu, item)
            else:
                idle = next((w for w in self.workers if w.serve and w.item is None and w.proc.poll() is None), None)
                if idle is None:
                    if need > len(free):
                        continue
                    idle = self._start([free.pop(0) for _ in range(need)], cpu)
                waiting.remove(item)
                self._announce(item)
                idle.give(item)
            busy_trainings.add(item.run.train_id)

    def _handle(self, worker: _Worker, line: str | None, report: Report, free: list[str]) -> None:
        item = worker.item
        if line is None:  # the process ended
            code = worker.proc.wait()
            self.workers.remove(worker)
            free += worker.gpus
            if item is not None:  # it died inside a job (killed, out of memory, a crash in native code)
                report(item, self.ctx.store.read_metrics(item.run) or self._died(item, code))
            return
        if line.startswith("@@interrupted"):  # stopped by a signal to the worker alone: checkpointed, pending
            worker.item = None
            if item is not None:
                where = json.loads(line.split(" ", 1)[1]).get("where") or ""
                self.ctx.console.print(f"    [{item.index}/{self.ctx.total}] stopped {where}: run again to resume",
                                       highlight=False, markup=False)  # fmt: skip
            return
        if line.startswith("@@done"):
            worker.item = None
            self.durations.append(time.monotonic() - worker.started)
            if item is not None:
                report(item, self.ctx.store.read_metrics(item.run) or {})
            return
        if line.startswith("@@step") and item is not None:
            self._step(worker, item, *json.loads(line.split(" ", 1)[1]))
            return
        if line.startswith("failed: ") and item is not None:  # the worker's own log line: the report names the run
            return
        if line and item is not None and not line.startswith("@@"):
            self.ctx.console.print(f"    [{item.index}/{self.ctx.total}] {line}", highlight=False, markup=False)

    def _died(self, item: Item, code: int) -> dict:
        """The failed record of a job whose worker process ended without one (the training's checkpoint stays:
        ``--retry-failed`` resumes from it)."""
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        hint = " (out of memory?)" if code == -signal.SIGKILL else ""
        run = item.run
        record = {"id": run.id, "seed": run.seed, "axes": run.axes, "train_id": run.train_id, "status": "failed",
                  "error": f"the worker process ended by {how}{hint} before recording the run"}  # fmt: skip
        self.ctx.store.write_record(item.run_dir, record)
        return record

    def _step(self, worker: _Worker, item: Item, step: int, steps: int, loss: float) -> None:
        """The worker's step as the in-process progress prints it; the study's ETA: this run's, then the runs not
        yet finished at the mean duration so far, ``parallel`` at a time."""
        now = time.monotonic()
        elapsed = now - worker.started
        run_left = worker.clock.eta(step, steps, now)
        waiting = self.ctx.total - len(self.durations) - sum(w.item is not None for w in self.workers)
        eta = study_eta(run_left, elapsed, self.durations, waiting, self.parallel)
        line = step_line(step, steps, loss, elapsed, run_left, now - self.started, eta)
        self.ctx.console.print(f"    [{item.index}/{self.ctx.total}] {line}", highlight=False, markup=False)

    def _stop(self, stop: signals.Interrupted) -> None:
        """Pass the signal on once to every worker, wait while they checkpoint, then stop with what they said."""
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.send_signal(stop.signum)
        stopped = []
        while any(w.proc.poll() is None for w in self.workers) or not self.events.empty():
            try:
                worker, line = self.events.get(timeout=1)
            except queue.Empty:
                continue
            if line is not None and line.startswith("@@interrupted") and worker.item is not None:
                where = json.loads(line.split(" ", 1)[1]).get("where", "")
                stopped.append(where or f"{worker.item.run.id} ({worker.item.run.label})")  # where names the run
        raise signals.Interrupted(stop.signum, "; ".join(stopped) or stop.where)
