"""SLURM executor (submitit): one job per training, running that training's runs (train once, then each
eval-only variant). Jobs are arrays; a job killed by preemption, time-out or ``scontrol requeue`` is requeued and
resumes from its checkpoint. The submitting process may exit: a later ``ablate run`` sees the jobs in the queue
(``runs/<id>/slurm.json``) instead of submitting them again, and collects their results. Torch-free."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveInt
from rich.markup import escape

from ablate.core.errors import ConfigError
from ablate.core.files import atomic_write
from ablate.core.schema import Strict
from ablate.core.text import plural
from ablate.study.executors.base import EXECUTORS, Context, Item, Report, select
from ablate.study.executors.slurm_queue import SLURM_FILE, held_by_slurm, queued_jobs, submitted_job


@EXECUTORS.register
class SlurmExecutor(Strict):
    """One SLURM job per training (job arrays, via submitit). Each job is a DDP job (Lightning Fabric) with one
    task per GPU (``gpus_per_node`` tasks per node, at least 1); the recipe's ``train.devices`` must equal the tasks
    per node and ``train.num_nodes`` the nodes. On preemption or time-out the job is requeued and resumes from its
    checkpoint."""

    kind: Literal["slurm"] = "slurm"
    partition: str | None = None
    nodes: PositiveInt = 1
    gpus_per_node: int = Field(default=0, ge=0)
    cpus_per_task: PositiveInt = 2
    time_min: PositiveInt = 60
    mem_gb: float | None = Field(default=None, gt=0)
    array_parallelism: PositiveInt = 32
    sbatch: dict[str, Any] = Field(default_factory=dict)  # extra sbatch options, e.g. {account: x, qos: high}
    setup: list[str] = Field(default_factory=list)  # shell lines run first in each job (module load ...)
    poll_s: float = Field(default=5.0, gt=0)
    detach: bool = False  # submit and return (``ablate run --detach``); a later run collects the results

    def select(self, runs: list, store: Any, retry_failed: bool = False) -> tuple[list, list]:
        """The runs to do, and first those of this study whose SLURM job is still queued: waited for, whatever
        their record says (a requeued job may record a failure when it is killed), never submitted again."""
        states = {r.id: store.state(r) for r in runs}
        queued = held_by_slurm([r for r in runs if states[r.id] != "done"], store)
        todo, busy = select(runs, store, retry_failed, held=queued)
        waited = [r for r in runs if r.id in queued]
        return waited + todo, [r for r in busy if r.id not in queued]

    def execute(self, ctx: Context, items: list[Item], report: Report, progress: Any = None) -> bool:
        """Submit what is not already queued, then (unless ``detach``) wait for every job and report each run.
        Returns whether it waited for the results."""
        console, store = ctx.console, ctx.store
        previous = {item.run.id: submitted_job(item.run_dir) for item in items}
        queued = queued_jobs([j for j in previous.values() if j])
        fresh = [item for item in items if previous[item.run.id] not in queued]
        if fresh:
            check_runs(self, fresh, ctx.study_path)
            ids = submit(self, fresh, store.root / "slurm", ctx.job)
            jobs, runs = plural(len(ids), "SLURM job"), plural(len(fresh), "run")
            console.print(f"submitted {jobs} for {runs}: {', '.join(ids)}")
        if len(fresh) < len(items):
            left = plural(len(items) - len(fresh), "run")
            console.print(f"{left} already queued on SLURM: {', '.join(sorted(queued))}")
        if self.detach:
            console.print("not waiting (--detach): `ablate run` or `ablate status` again later collects the results")
            return False
        job_of = {item.run.id: submitted_job(item.run_dir) for item in items}
        pending = {item.run.id: item for item in items}
        while pending:
            active = queued_jobs(sorted({j for j in job_of.values() if j}))
            for run_id, item in list(pending.items()):
                record = store.read_metrics(item.run)
                status = (record or {}).get("status")
                in_queue = job_of[run_id] in active
                # a failure recorded by a job that is still queued (requeued: its next attempt runs the run again)
                # is not final
                finished = status == "done" or (status == "failed" and not in_queue)
                if finished or not in_queue:
                    if not finished:
                        log = json.loads((item.run_dir / SLURM_FILE).read_text()).get("log", "")
                        record = {
                            "status": "failed",
                            "id": run_id,
                            "error": f"SLURM job {job_of[run_id]} ended without a result (log: {log})",
                        }
                        store.write_metrics(item.run, record)
                    where = f"[bold][{item.index}/{len(items)}][/bold]"
                    console.print(f"{where} {item.run.id}  {escape(item.run.label)}")
                    report(item, record)
                    del pending[run_id]
            if pending:
                time.sleep(self.poll_s)
        return True


class GroupTask:
    """The function a SLURM job runs: each (run_dir, train_dir) of one training, in order. Checkpointable: on
    preemption or time-out submitit requeues it, and the training resumes from its last checkpoint."""

    def __init__(self, job_ref: str, pairs: list[tuple[str, str]]):
        self.job_ref, self.pairs = job_ref, pairs

    def __call__(self) -> list[str]:
        from ablate.study.worker import LinePrinter, execute_job

        statuses = []
        for run_dir, train_dir in self.pairs:
            record = execute_job(self.job_ref, run_dir, train_dir, LinePrinter())
            print(f"{Path(run_dir).name}: {record.get('status')} {record.get('error', '')}", flush=True)
            statuses.append(record.get("status", ""))
        return statuses

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(GroupTask(self.job_ref, self.pairs))


def check_runs(cfg: SlurmExecutor, items: list[Item], source: str) -> None:
    tasks = max(1, cfg.gpus_per_node)
    for item in items:
        train = item.run.config["train"]
        if train["devices"] != tasks or train["num_nodes"] != cfg.nodes:
            raise ConfigError(
                f"{source}: executor: a SLURM job runs {tasks} task(s) per node on {cfg.nodes} node(s) "
                f"(gpus_per_node, nodes) but run {item.run.id} has train.devices={train['devices']}, "
                f"train.num_nodes={train['num_nodes']}; make them equal"
            )


def submit(cfg: SlurmExecutor, items: list[Item], folder: Path, job_ref: str) -> list[str]:
    """Submit one job per training (as a job array); records the job id in each run folder. Returns job ids."""
    import submitit

    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.run.train_id, []).append(item)
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    tasks = max(1, cfg.gpus_per_node)
    params: dict[str, Any] = {
        "nodes": cfg.nodes,
        "tasks_per_node": tasks,
        "cpus_per_task": cfg.cpus_per_task,
        "timeout_min": cfg.time_min,
        "slurm_array_parallelism": cfg.array_parallelism,
        "name": "ablate",
    }
    if cfg.gpus_per_node:
        params["gpus_per_node"] = cfg.gpus_per_node
    if cfg.partition:
        params["slurm_partition"] = cfg.partition
    if cfg.mem_gb:
        params["mem_gb"] = cfg.mem_gb
    if cfg.setup:
        params["slurm_setup"] = list(cfg.setup)
    extra = {"requeue": True, **cfg.sbatch}
    params["slurm_additional_parameters"] = extra
    executor.update_parameters(**params)
    tasks_list = [GroupTask(job_ref, [(str(i.run_dir), str(i.train_dir)) for i in group]) for group in groups.values()]
    with executor.batch():
        jobs = [executor.submit(task) for task in tasks_list]
    ids = []
    for job, group in zip(jobs, groups.values(), strict=True):
        ids.append(str(job.job_id))
        for item in group:
            record = {"job_id": str(job.job_id), "submitted": time.time(), "log": str(job.paths.stdout)}
            atomic_write(item.run_dir / SLURM_FILE, json.dumps(record))
    return ids
