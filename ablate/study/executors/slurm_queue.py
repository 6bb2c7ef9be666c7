"""Which runs a SLURM job holds: the job id ``ablate run --executor slurm`` recorded in a run's folder
(``runs/<id>/slurm.json``), and whether that job is still in SLURM's queue. Every executor asks, so that no process
starts a run a queued job will run; ``squeue`` is called only where a run's folder names a job. Torch-free."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ablate.study.grid import Run
    from ablate.study.store import Store

SLURM_FILE = "slurm.json"  # in a run folder: {job_id, submitted, log} of the SLURM job that runs it


def submitted_job(run_dir: Path) -> str | None:
    """The SLURM job id recorded in a run folder, or None."""
    path = run_dir / SLURM_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["job_id"])
    except (ValueError, KeyError):
        return None


def queued_jobs(job_ids: list[str]) -> dict[str, str]:
    """{job id: SLURM state} for those of ``job_ids`` still in the queue (pending, running, requeued...); no
    ``squeue`` call for no ids (or without SLURM)."""
    if not job_ids or shutil.which("squeue") is None:
        return {}
    cmd = ["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(job_ids)]  # -r: one line per array task
    out = subprocess.run(cmd, capture_output=True, text=True)
    states = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return {j: states[j] for j in job_ids if j in states}


def held_by_slurm(runs: list[Run], store: Store) -> set[str]:
    """The ids of those ``runs`` whose SLURM job (from an earlier ``ablate run --executor slurm``) is still queued:
    nothing else may start them. Reads the run folders; asks ``squeue`` only when one of them names a job."""
    jobs = {r.id: job for r in runs if (job := submitted_job(store.run_dir(r)))}
    if not jobs:
        return set()
    active = queued_jobs(sorted(set(jobs.values())))
    return {rid for rid, job in jobs.items() if job in active}
