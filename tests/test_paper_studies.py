"""Paper studies: every studies/paper/*.yaml carries a cited reference block; published numbers join the study's
table; a paper study runs end to end from the CLI on the VOC fixture folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from data_fixtures import make_voc
from tests_helpers import quiet_env

from ablate.config.schema import EvalConfig
from ablate.core.errors import ConfigError
from ablate.core.text import format_value
from ablate.report.reference import caption, join_reference, paper_layout
from ablate.study.grid import expand
from ablate.study.load import load_study

REPO = Path(__file__).resolve().parents[1]
PAPER = sorted((REPO / "studies" / "paper").glob("*.yaml"))
NEEDS_EVAL_KEYS = {"deeplabv3_table6", "deeplabv3plus_table3", "yu_koltun_table3", "deeplabv2_aspp"}


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_study_files(path):
    raw = yaml.safe_load(path.read_text())
    ref = raw["reference"]
    assert "arXiv" in ref["paper"] and ref["table"].startswith("Table")
    text = path.read_text()
    if "reduced" not in raw:  # a study on real data sized for a CPU (CamVid): its GPU recipe is the documented switch
        gpu = re.search(r"--recipe (\S+)", text)
        assert gpu and (REPO / gpu[1]).is_file(), "a real-data paper study names its GPU recipe"
        assert expand(load_study(path, recipe=REPO / gpu[1])) and expand(load_study(path))
        return
    assert raw["reduced"]["data.name"] == "synthetic"
    assert "--set reduced=true" in text  # the documented switch
    if path.stem in NEEDS_EVAL_KEYS and "crf" not in EvalConfig.model_fields:
        pytest.skip("needs the eval.* keys of the inference/CRF work")
    for reduced in (False, True):
        loaded = load_study(path, {"reduced": reduced})
        runs = expand(loaded)
        assert runs and loaded.study.reference is not None
        if reduced:
            assert all(r.config["data"]["name"] == "synthetic" for r in runs)
            assert loaded.study.seeds == raw["reduced_seeds"] and len(raw["reduced_seeds"]) >= 3
        else:
            assert all(r.config["data"]["name"] != "synthetic" for r in runs)


def test_reference_rows_must_name_axis_values(tmp_path):
    src = (REPO / "studies" / "paper" / "deeplabv3plus_table1.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    old, new = "where: {model.decoder.low_level_channels: 8}", "where: {model.decoder.low_level_channels: 7}"
    bad.write_text(src.replace(old, new))
    bad.write_text(bad.read_text().replace("../../recipes", str(REPO / "recipes")))
    with pytest.raises(ConfigError, match=r"reference.rows\[0\].where.model.decoder.low_level_channels: 7"):
        load_study(bad)


REF = {
    "paper": "Chen et al., arXiv:1706.05587",
    "table": "Table 1",
    "metric": "miou",
    "rows": [
        {"label": "OS 8", "miou": 75.18, "where": {"model.output_stride": 8}},
        {"label": "OS 16", "miou": 73.88, "where": {"model.output_stride": 16}},
        {"label": "OS 64", "miou": 59.99},
    ],
}


def test_join_reference_long_layout():
    summary = pd.DataFrame(
        {"model.output_stride": ["16", "8"], "miou_mean": [50.0, 55.0], "miou_std": [1.0, None], "n": [2, 1]}
    )
    joined = join_reference(summary, REF, baseline={"model.output_stride": 16})
    assert list(joined["paper row"]) == ["OS 8", "OS 16", "OS 64"]  # the paper's order
    assert joined["published"].tolist() == [75.18, 73.88, 59.99]
    assert joined["reproduced"].tolist()[:2] == [55.0, 50.0] and pd.isna(joined["reproduced"][2])
    assert joined["delta"][0] == pytest.approx(55.0 - 75.18)
    assert joined["published_vs_base"][0] == pytest.approx(75.18 - 73.88)
    assert joined["reproduced_vs_base"][0] == pytest.approx(5.0)
    shown = paper_layout(joined)
    assert list(shown.columns) == ["", "published", "reproduced", "n", "Δ", "published Δ base", "reproduced Δ base"]
    assert shown.iloc[1].tolist()[:5] == ["OS 16", "73.88", "50.00 ± 1.00", 2, "-23.88"]
    assert shown.iloc[2]["reproduced"] == "—" and shown.iloc[2]["Δ"] == "—"
    assert "Table 1" in caption(REF)


def test_join_reference_grid_layout():
    ref = {
        "paper": "x arXiv",
        "table": "Table 3",
        "rows": [
            {"label": "(1,1,1)", "column": "block4", "miou": 68.39, "where": {"model.multi_grid": [1, 1, 1]}},
            {"label": "(1,1,1)", "column": "block5", "miou": 73.21},
            {"label": "(1,2,1)", "column": "block4", "miou": 70.23, "where": {"model.multi_grid": [1, 2, 1]}},
            {"label": "(1,2,1)", "column": "block5", "miou": 75.67},
        ],
    }
    summary = pd.DataFrame({"model.multi_grid": ["(1,1,1)", "(1,2,1)"], "miou_mean": [60.0, 61.5], "n": [1, 1]})
    grid = paper_layout(join_reference(summary, ref))
    assert list(grid.columns) == ["published / reproduced (Δ)", "block4", "block5"]
    assert grid.iloc[0].tolist() == ["(1,1,1)", "68.39 / 60.00 (-8.39)", "73.21 / —"]
    assert grid.iloc[1, 1] == "70.23 / 61.50 (-8.73)"


@pytest.mark.slow
def test_paper_study_on_the_voc_fixture_end_to_end(tmp_path):
    """Issue 8, check 3: DeepLabv3 Table 5 from the CLI on VOC-format data (trainaug from VOC PNGs + SBD .mat)."""
    make_voc(tmp_path / "voc")
    study = REPO / "studies" / "paper" / "deeplabv3_table5.yaml"
    sets = {
        "data.root": str(tmp_path / "voc"),
        "data.crop_size": 32,
        "data.num_workers": 0,
        "model.backbone": "test_resnet",
        "model.head.channels": 8,
        "train.steps": 2,
        "train.batch_size": 2,
        "train.devices": 1,
        "train.accelerator": "cpu",
        "train.log_every": 1,
        "eval.batch_size": 2,
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(results), *args]
    out = subprocess.run([*cmd, "--no-report"], capture_output=True, text=True, cwd=tmp_path, env=quiet_env())
    assert out.returncode == 0, out.stdout + out.stderr
    loaded = load_study(study, {k: yaml.safe_load(str(v)) for k, v in sets.items()})
    runs = expand(loaded)
    rows = []
    for run in runs:
        record = json.loads((results / "deeplabv3_table5" / "runs" / run.id / "metrics.json").read_text())
        assert record["status"] == "done" and record["steps"] == 2
        assert len(record["per_class_iou"]) == 21 and "aeroplane" in record["per_class_iou"]
        comparable = record["comparable"]
        assert comparable["data"] == "voc" and comparable["crop"] == 32 and comparable["iterations"] == 2
        assert comparable["gpus_x_images"] == "1 x 2" and comparable["global_batch"] == 2
        assert comparable["weights"] is None and comparable["lr"] == 0.007
        rows.append({**{k: format_value(v) for k, v in run.axes.items()}, "miou_mean": 100 * record["metrics"]["miou"]})
    joined = join_reference(pd.DataFrame(rows).assign(n=1), loaded.study.reference, loaded.study.baseline)
    assert joined["published"].tolist() == [75.36, 75.93, 76.58, 76.46, 77.21]
    assert joined["reproduced"].notna().all() and joined["delta"].notna().all()


def test_reference_markdown_section():
    from ablate.report.reference import reference_markdown

    study = {"reference": REF, "baseline": {"model.output_stride": 16}}
    summary = pd.DataFrame({"model.output_stride": ["8", "16"], "miou_mean": [55.0, 50.0], "n": [1, 1]})
    md = reference_markdown(study, summary)
    assert md.startswith("## Published vs reproduced") and "Table 1" in md
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| OS")]
    assert ["OS 8", "75.18", "55.00", "1", "-20.18", "+1.30", "+5.00"] in rows
    assert reference_markdown({"reference": None}, summary) == ""


def test_sign_agreement_counts_rows_past_the_threshold():
    import pandas as pd

    from ablate.report.reference import agreement_note, sign_agreement

    joined = pd.DataFrame({
        "paper row": ["base", "a", "b", "c", "d"],
        "published_vs_base": [0.0, 2.0, -1.5, 0.5, 3.0],
        "reproduced_vs_base": [0.0, 0.7, 0.4, -2.0, None],
    })  # fmt: skip
    agree, counted, wrong = sign_agreement(joined)
    assert (agree, counted) == (1, 2) and wrong == ["b (-1.50 published, +0.40 here)"]  # c: a tie; d: not run
    assert agreement_note(joined).startswith("Trend: of the 2 paper rows") and "1 have" in agreement_note(joined)
