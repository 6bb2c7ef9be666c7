"""The CamVid studies: their grids on the CPU and the GPU recipe (--recipe), and their tables from planted results:
a baseline per evaluated split, the paper's metrics line by line, its contrasts paired over seeds, and per-class IoU
beside the paper's rows in the paper's class order. No training."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests_helpers import Quiet, run_study

from ablate.data.camvid import CamVidData
from ablate.report.render import to_markdown
from ablate.study.grid import expand
from ablate.study.load import load_study
from ablate.study.session import StudySession

REPO = Path(__file__).resolve().parents[1]
CAMVID = REPO.parent / "shared" / "data" / "camvid"
SEGNET = REPO / "studies" / "paper" / "segnet_table1.yaml"
HEADS = REPO / "studies" / "camvid_heads.yaml"
CLASSES = CamVidData.classes


@pytest.fixture(autouse=True)
def camvid_root(monkeypatch):
    monkeypatch.setenv("ABLATE_CAMVID_ROOT", str(CAMVID))


def test_grids_on_the_cpu_and_the_gpu_recipe():
    segnet = expand(load_study(SEGNET))
    assert len(segnet) == 24 and len({r.train_id for r in segnet}) == 12  # val and test share each training
    gpu = expand(load_study(SEGNET, recipe=REPO / "recipes" / "camvid" / "segnet_gpu.yaml"))
    assert {r.config["train"]["steps"] for r in gpu} == {20000} and {r.id for r in gpu}.isdisjoint(r.id for r in segnet)
    heads = expand(load_study(HEADS))
    assert len(heads) == 30 and len({r.train_id for r in heads}) == 12
    crf = [r for r in heads if r.config["eval"]["crf"]["enabled"]]
    assert len(crf) == 6 and {r.config["model"]["head"]["name"] for r in crf} == {"aspp"}
    assert {r.config["eval"].get("split") for r in crf} == {"val", "test"}
    rates = {tuple(r.config["model"]["head"]["rates"]) for r in heads if r.config["model"]["head"]["name"] == "aspp"}
    assert rates == {(3, 7, 10)}  # DeepLabv3's (6, 12, 18) on its 33-px map, scaled to the 18-px map of 288 / 16
    on_gpu = expand(load_study(HEADS, recipe=REPO / "recipes" / "camvid" / "lite0_gpu.yaml", seeds=[5]))
    assert {r.seed for r in on_gpu} == {5}
    assert {tuple(r.config["model"]["head"]["rates"]) for r in on_gpu
            if r.config["model"]["head"]["name"] == "aspp"} == {(8, 16, 25)}  # fmt: skip # 45-px map: 360 / 8


def segnet_job(config, run_dir, train_dir, progress):
    """The decoder adds 4 mIoU and 15 BF, balancing moves G down 1 and C up 7, test 2 points below val; seeds
    wobble by a few tenths."""
    decoder = config["model"]["decoder"]["enabled"]
    balanced = config["train"].get("class_weights", "none") == "median_frequency"  # left out at its default
    s = 0.003 * (config["seed"] - 1) * (1 + decoder)
    shift = 0.02 if config["eval"].get("split") == "val" else 0.0
    miou = 0.40 + 0.04 * decoder + shift + s
    metrics = {"miou": miou, "pixel_acc": 0.80 - 0.01 * balanced + s, "mean_acc": 0.55 + 0.07 * balanced - s,
               "fwiou": 0.7, "bf": 0.20 + 0.15 * decoder + s}  # fmt: skip
    return {"metrics": metrics, "classes": list(CLASSES), "per_class_iou": dict.fromkeys(CLASSES, miou)}


def test_segnet_table_contrasts_and_per_split_baselines(tmp_path):
    run_study(load_study(SEGNET), tmp_path / "r", segnet_job, Quiet())
    t = StudySession(SEGNET, {}, tmp_path / "r").table()
    base = t.summary[t.summary["baseline"]]
    assert sorted(base["eval.split"]) == ["test", "val"]  # each split has its own baseline row
    assert (t.summary["delta_miou"].round(6).abs() <= 0.0400001 * 100).all()  # never a val-vs-test difference
    lines = {(r["contrast"], r["metric"]): r for r in t.contrasts.to_dict("records")}
    decoder = lines[("learnt decoder vs bilinear upsampling", "mIoU")]
    assert decoder["published Δ"] == "+4.40" and decoder["reproduced Δ"].startswith("+4.00") and decoder["n"] == 3
    assert lines[("learnt decoder vs bilinear upsampling", "BF")]["published Δ"] == "+14.95"
    g = lines[("median-frequency balancing vs natural frequency", "G (pixel acc.)")]
    c = lines[("median-frequency balancing vs natural frequency", "C (class acc.)")]
    assert g["published Δ"] == "-1.30" and g["reproduced Δ"].startswith("-1.00") and g["same sign"] == "yes"
    assert c["published Δ"] == "+7.40" and c["same sign"] == "yes"
    assert set(t.published["metric"]) == {"G (pixel acc.)", "C (class acc.)", "mIoU", "BF"}
    text = to_markdown(t)
    assert "The paper's contrasts" in text and "SegNet-Basic (natural frequency)" in text


def heads_job(config, run_dir, train_dir, progress):
    head = config["model"]["head"]["name"]
    level = {"none": 0.40, "aspp": 0.47, "ppm": 0.46, "context": 0.44}[head] + 0.002 * config["seed"]
    level += 0.01 if config["eval"]["crf"]["enabled"] else 0.0
    per_class = {c: level + 0.01 * i for i, c in enumerate(CLASSES)}
    return {"metrics": {"miou": level, "pixel_acc": 0.8, "mean_acc": 0.6, "fwiou": 0.7, "bf": 0.3},
            "classes": list(CLASSES), "per_class_iou": per_class}  # fmt: skip


def test_heads_per_class_table_in_the_papers_order(tmp_path):
    run_study(load_study(HEADS), tmp_path / "r", heads_job, Quiet())
    t = StudySession(HEADS, {}, tmp_path / "r").table()
    table = t.per_class
    paper_order = ["building", "tree", "sky", "car", "sign", "road", "pedestrian", "fence", "pole", "pavement",
                   "bicyclist"]  # fmt: skip
    assert list(table.columns) == ["", "n", *paper_order, "mIoU"]
    assert list(table[""][:3]) == ["SegNet", "DeepLab-LFOV", "Dilation8 (front end + context module)"]
    assert table.iloc[0]["pole"] == "16.00" and table.iloc[2]["mIoU"] == "65.30"
    ours = table.iloc[3:]
    assert len(ours) == 5 and all(label.startswith("ablate: ") for label in ours[""])  # test split only: 4 + CRF
    aspp = ours[ours[""].str.contains("aspp") & ours[""].str.contains("crf=False")].iloc[0]
    # per-class means over the three seeds, in % (the planted class index adds 1 point per class)
    assert aspp["building"] == f"{47 + 0.2 + 1:.2f}" and aspp["n"] == "3"
