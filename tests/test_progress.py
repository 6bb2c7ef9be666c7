"""Progress output: with jobs in parallel (-j 2) every result line names its run, whatever lines come between."""

from __future__ import annotations

import re

from rich.text import Text

from ablate.study.executors.base import Context, Item
from ablate.study.executors.local import LocalExecutor, _Pool
from ablate.study.progress import RunClock
from ablate.study.session import StudySession

STUDY = """
name: p
recipe: recipe.yaml
axes: {model.head.rates: [[1], [6, 12]], model.output_stride: [8, 16]}
seeds: [0, 1]
"""


class Lines:
    """A console that keeps the plain text of what is printed."""

    def __init__(self):
        self.lines: list[str] = []

    def print(self, *args, markup: bool = True, **kwargs):
        text = " ".join(str(a) for a in args)
        self.lines.append(Text.from_markup(text).plain if markup else text)


class FakeStore:
    def __init__(self, records):
        self.records = records

    def read_metrics(self, run):
        return self.records.get(run.id)


class FakeProc:
    def poll(self):
        return None


class FakeWorker:
    def __init__(self, item):
        self.item, self.proc, self.gpus, self.serve, self.started = item, FakeProc(), [], True, 0.0
        self.clock = RunClock()


def _record(run, miou, trained=True):
    return {"status": "done", "metrics": {"miou": miou}, "duration_s": 66, "trained": trained, "id": run.id}


def test_parallel_result_lines_name_their_runs(tiny_study, tmp_path):
    """Two workers' events interleaved as -j 2 prints them: run 1 ends after run 3 has started, run 2 fails after
    run 4 has started. Each result line carries the [i/n] and the label of the run it is about (before, the
    line "mIoU 78.10 in 1m06s (trained)" stood alone under the next run's "(started)" line)."""
    session = StudySession(tiny_study(STUDY), {}, tmp_path / "r")
    runs = session.runs[:4]
    console = Lines()
    session_items: list[Item] = []

    class Interleaving:
        """An executor that reports as the local pool does with two workers: starts and ends interleaved."""

        def execute(self, ctx: Context, items: list[Item], report, progress=None) -> bool:
            session_items.extend(items)
            records = {it.run.id: _record(it.run, 0.70 + 0.01 * it.index) for it in items}
            records[items[1].run.id] = {"status": "failed", "error": "RuntimeError: boom"}
            pool = _Pool(LocalExecutor(max_parallel=2), Context(FakeStore(records), "job", ctx.console, "s.yaml",
                                                                ctx.total), 2, [])  # fmt: skip
            w1, w2 = FakeWorker(items[0]), FakeWorker(items[1])
            pool.workers = [w1, w2]
            for item in items[:2]:
                pool._announce(item)
            pool._handle(w1, '@@step [3, 3, 0.5]', report, [])
            pool._handle(w1, "@@done {}", report, [])  # run 1 ends ...
            w1.item = items[2]
            pool._announce(items[2])  # ... and run 3 starts on that worker
            pool._handle(w2, "failed: RuntimeError: boom", report, [])
            pool._handle(w1, '@@step [1, 3, 0.9]', report, [])
            pool._handle(w2, "@@done {}", report, [])
            w2.item = items[3]
            pool._announce(items[3])
            pool._handle(w2, "@@done {}", report, [])  # run 4 before run 3
            pool._handle(w1, "@@done {}", report, [])
            return True

    session.execute(Interleaving(), console, runs, [])
    results = [line for line in console.lines if re.search(r"mIoU \d|failed:|skipped", line)
               and "started" not in line and "step" not in line]  # fmt: skip
    assert len(results) == 4, console.lines
    by_index = {int(re.search(r"\[(\d)/4\]", line).group(1)): line for line in results}
    for item in session_items:
        line = by_index[item.index]
        assert f"[{item.index}/4] {item.run.label}:" in line, line
    assert by_index[1].endswith(f"mIoU {100 * 0.71:.2f} in 1m06s (trained)")
    assert by_index[2].endswith("failed: RuntimeError: boom")
    order = [int(re.search(r"\[(\d)/4\]", line).group(1)) for line in results]
    assert order == [1, 2, 4, 3]  # printed as they ended, each naming its own run
    started = [i for i, line in enumerate(console.lines) if "(started)" in line]
    assert len(started) == 4


def test_inline_result_line_names_the_run_too(tiny_study, tmp_path):
    session = StudySession(tiny_study(STUDY), {}, tmp_path / "r")
    run = session.runs[5]

    class One:
        def execute(self, ctx, items, report, progress=None):
            report(items[0], _record(items[0].run, 0.5, trained=False))
            return True

    console = Lines()
    session.execute(One(), console, [run], [])
    assert console.lines[-1] == f"    [1/1] {run.label}: mIoU 50.00 in 1m06s (reused training {run.train_id})"


def pid_job(config, run_dir, train_dir, progress):
    """A job (run in a worker process) that records which process ran it."""
    import os

    return {"metrics": {"miou": 0.5, "pixel_acc": 0.9, "mean_acc": 0.6, "fwiou": 0.8}, "pid": os.getpid()}


def _gone(pid: int, timeout: float = 20.0) -> bool:
    """Whether process ``pid`` has ended (or is a zombie nobody waited for) within ``timeout`` seconds."""
    import time
    from pathlib import Path

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "State:\tZ" in status.read_text():
            return True
        time.sleep(0.1)
    return False


def test_workers_stay_alive_across_runs_while_kept(tiny_study, tmp_path, monkeypatch):
    """-j 2: inside ``StudySession.workers`` (adaptive seeds' rounds) the second run's jobs go to the first run's
    worker processes, which end when it is left; without it each run starts its own."""
    import json
    import os
    from pathlib import Path

    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    session = StudySession(tiny_study(STUDY), {}, tmp_path / "r")
    executor = LocalExecutor(max_parallel=2)

    def pids(runs) -> set[int]:
        return {json.loads((session.store.run_dir(r) / "metrics.json").read_text())["pid"] for r in runs}

    rounds = [session.runs[0:2], session.runs[2:4], session.runs[4:6], session.runs[6:8]]
    with session.workers(executor):
        for runs in rounds[:2]:
            session.execute(executor, Lines(), runs, [], job="test_progress:pid_job")
    kept = [pids(rounds[0]), pids(rounds[1])]
    assert len(kept[0]) == 2 and kept[1] == kept[0], kept  # the same two workers took both runs' jobs
    assert all(_gone(pid) for pid in kept[0])  # and ended with the block
    for runs in rounds[2:]:
        session.execute(executor, Lines(), runs, [], job="test_progress:pid_job")
    fresh = [pids(rounds[2]), pids(rounds[3])]
    assert not fresh[0] & fresh[1] and not fresh[0] & kept[0], fresh  # new workers each time


def test_the_eta_leaves_the_start_up_out():
    """A run's ETA comes from its pace since its first report: 10 s of start-up before step 10, then 1 s a step,
    gives 590 s for the 590 steps left at step 10's pace, not the start-up's (an ETA of hours); none before a pace."""
    from ablate.study.progress import Progress, step_line

    clock = RunClock()
    assert clock.eta(10, 600, now=10.0) is None  # the first report: start-up only
    assert clock.eta(10, 600, now=10.5) is None  # the same step again
    assert clock.eta(20, 600, now=20.0) == 580.0  # 1 s a step since step 10
    assert clock.eta(600, 600, now=600.0) == 0.0
    line = step_line(10, 600, 1.5, 10.0, None, 10.0, None)
    assert "run 10s (eta ?)" in line and "study 10s (eta ?)" in line

    class Lines:
        def __init__(self):
            self.lines = []

        def print(self, text, **_):
            self.lines.append(str(text))

    console = Lines()
    progress = Progress(console, total_runs=3)
    progress.start_run(1, type("R", (), {"id": "abc", "label": "x"})())
    progress.step(1, 100, 1.0)
    progress.step(51, 100, 1.0)
    assert "(eta ?)" in console.lines[1] and "(eta ?)" not in console.lines[2]
