"""``python -m ablate.bench.val_spread``: a study's runs evaluated again on a larger validation sample, image by
image. Its first ``num_val`` images are the runs' own, so it must give each run's own mIoU there."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import pytest
from tests_helpers import quiet_env

from ablate.bench import val_spread

STUDY = """
name: vs
recipe: recipe.yaml
axes:
  model.head.rates: [[1], [2, 4]]
seeds: [0, 1, 2]
baseline: {model.head.rates: [1]}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from conftest import TINY_RECIPE

    root = tmp_path_factory.mktemp("vs")
    (root / "recipe.yaml").write_text(TINY_RECIPE)
    (root / "study.yaml").write_text(STUDY)
    out = subprocess.run([sys.executable, "-m", "ablate.cli", "run", "study.yaml", "-r", "results", "--no-report"],
                         capture_output=True, text=True, cwd=root, env=quiet_env(OMP_NUM_THREADS="1"))  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return root / "results" / "vs"


def test_the_first_images_give_each_run_s_own_miou(store):
    confusions, own = val_spread.per_image_confusions(store, {}, ["model.head.rates"], 24, flip=False)
    assert own == 8  # the runs' num_val
    assert sorted(confusions) == [(f"rates={r}", s) for r in ("(1)", "(2,4)") for s in (0, 1, 2)]
    for run in (store / "runs").iterdir():
        record = json.loads((run / "metrics.json").read_text())
        label = f"rates=({','.join(map(str, record['axes']['model.head.rates']))})"
        per_image = confusions[(label, record["seed"])]
        assert per_image.shape == (24, 6, 6)
        assert val_spread.miou(per_image[:8].sum(0)) == pytest.approx(100 * record["metrics"]["miou"], abs=1e-9)

    rows = val_spread.spread(confusions, "rates=(1)", [8, 24])
    first, whole = rows
    diffs = [val_spread.miou(confusions[("rates=(2,4)", s)][:8].sum(0))
             - val_spread.miou(confusions[("rates=(1)", s)][:8].sum(0)) for s in (0, 1, 2)]  # fmt: skip
    assert first["images"] == 8 and first["blocks"] == 3 and first["seeds"] == 3
    assert first["sd_first"] == pytest.approx(statistics.stdev(diffs)) and first["mean"] == pytest.approx(
        statistics.mean(diffs))
    assert whole["images"] == 24 and whole["blocks"] == 1 and whole["sd_blocks"] == whole["sd_first"]


def test_command_line(store):
    cli = [sys.executable, "-m", "ablate.bench.val_spread", str(store)]
    out = subprocess.run([*cli, "--baseline", "model.head.rates=[1]", "--images", "16"], capture_output=True,
                         text=True, env=quiet_env(OMP_NUM_THREADS="1"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "| rates=(2,4) | 8 | 3 |" in out.stdout and "| rates=(2,4) | 16 | 3 |" in out.stdout
    bad = subprocess.run([*cli, "--baseline", "model.head.rates=[9]"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --baseline")
