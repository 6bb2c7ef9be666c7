"""bench.md from bench.json (``ablate.bench.suite.to_markdown``, one Jinja2 template): the committed reports render to
the committed bench.md, and the parts a bench did not measure are left out. No bench runs here."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from ablate.bench.suite import to_markdown


@pytest.mark.parametrize("folder", ["bench", "bench_load"])
def test_committed_bench_json_renders_to_committed_bench_md(folder):
    report = json.loads((REPO / "results" / folder / "bench.json").read_text())
    assert to_markdown(report) + "\n" == (REPO / "results" / folder / "bench.md").read_text()


def test_bench_markdown_leaves_out_what_was_not_measured():
    machine = dict(cpu="CPU", cores=4, cores_usable=2, torch="2.5.0", torch_threads=2, gpu=None, avx512_bf16=False)
    together = dict(together_train_s=[1.5, 1.6], together_wall_s=[2.5, 2.6], train_ratio=1.6, wall_ratio=1.3)
    report = {
        "command": "ablate bench --quick",
        "quick": True,
        "machine": {**machine, "load_avg_start": [0.123, 1.0, 2]},
        "load_avg_end": [1.005, 0.5, 0.25],
        "total_s": 12.3,
        "step": {},  # an empty section is left out like a missing one
        "metrics": dict(tensors="8 x 64 x 64", ablate_update_ms=0.5, torchmetrics_jaccard_update_ms=2.0, ratio=0.25),
        "crf": {"available": False, "reason": "not available: ImportError: pydensecrf"},
        "load": dict(steps=20, alone_train_s=1.0, alone_wall_s=2.0, target="<= 2.5x", **together),  # no -j study
    }
    assert to_markdown(report) == (
        "# ablate bench\n\n"
        "Command: `ablate bench --quick`  \n"
        "Machine: CPU, 4 cores (2 usable), torch 2.5.0, 2 threads, GPU: none, AVX-512 BF16: False  \n"
        "Load average at start (0.12, 1.0, 2), at end (1.0, 0.5, 0.25); total 12.3 s"
        " (quick mode: figures are not meaningful)\n\n"
        "## 5. Metric update and dense CRF\n\n"
        "Confusion-matrix update (8 x 64 x 64): ablate 0.5 ms, torchmetrics MulticlassJaccardIndex 2.0 ms: "
        "**0.25x**.\n\n"
        "Dense CRF: not available: ImportError: pydensecrf\n\n"
        "## 6. Sharing the machine\n\n"
        "Two one-run studies (20 steps each) started together vs one alone: training [1.5, 1.6] s vs 1.0 s alone, "
        "**1.6x** (<= 2.5x); wall [2.5, 2.6] s vs 2.0 s, 1.3x.\n"
    )
