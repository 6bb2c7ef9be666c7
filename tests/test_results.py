"""Results people can read and trust: tables (Δ, significance, cost, failed/missing), cost measurement, the report
opened in headless Chromium, W&B offline files read back, and a study with failing runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests_helpers import Quiet, run_study

from ablate.report.render import to_csv, to_html, to_latex, to_markdown
from ablate.report.table import build, mark
from ablate.study.grid import expand
from ablate.study.load import load_study
from ablate.study.results import collect
from ablate.study.store import Store

# ------------------------------------------------------------------------------------------------- tables, no torch
FAKE = """
name: fake
recipe: recipe.yaml
axes:
  model.head.rates: [[1], [2, 4], [6, 12]]
  model.output_stride: [8, 16]
seeds: [0, 1, 2]
baseline: {model.head.rates: [1], model.output_stride: 16}
table: {rows: model.head.rates, columns: model.output_stride, metric: miou}
"""


def fake_job(config, run_dir, train_dir, progress):
    rates, os_, seed = config["model"]["head"]["rates"], config["model"]["output_stride"], config["seed"]
    if rates == [6, 12] and os_ == 8:
        raise FloatingPointError("loss is nan at step 2")
    # (2,4) is clearly better than the baseline (1); (1) at OS 8 differs from it by noise only. Runs of one seed
    # share their initialisation: the seed moves every configuration alike (0.01 x seed), plus a little noise of
    # their own, so the paired differences vary (a constant difference has no t statistic)
    base = {(1,): 0.50, (2, 4): 0.70, (6, 12): 0.60}[tuple(rates)]
    own = (0.0, 0.001, -0.001)[seed] if rates == [2, 4] else 0.0
    value = base + 0.01 * seed + own + (0.005 * (-1) ** seed if os_ == 8 else 0)
    cost = {"params": 1000 * len(rates), "macs": 2_000_000 * len(rates) * (2 if os_ == 8 else 1)}
    cost.update(latency_ms=1.5, peak_mem_mb=0.25, hardware="CPU Test (1 thread)", image_size=[32, 32])
    return {
        "metrics": {"miou": value, "pixel_acc": 0.9, "mean_acc": 0.6, "fwiou": 0.8},
        "per_class_iou": {"background": 0.9, "disc": value},
        "cost": cost,
    }


@pytest.fixture
def fake_study(tiny_study, tmp_path):
    loaded = load_study(tiny_study(FAKE))
    run_study(loaded, tmp_path / "results", fake_job, Quiet())
    store = Store(tmp_path / "results", "fake")
    runs = expand(loaded)
    missing = next(r for r in runs if r.axes["model.head.rates"] == [6, 12] and r.axes["model.output_stride"] == 16)
    (store.run_dir(missing) / "metrics.json").unlink()  # one run not run yet
    return loaded, runs, store


def test_table_delta_significance_cost_and_failures(fake_study):
    loaded, runs, store = fake_study
    t = build(loaded.study, collect(runs, store), {r.id: r.label for r in runs})
    s = t.summary.set_index(["model.head.rates", "model.output_stride"])
    assert s.loc[("(2,4)", "16"), "delta_miou"] == pytest.approx(20.0)
    assert s.loc[("(2,4)", "16"), "test_miou"] == "paired t-test over shared seeds"
    assert s.loc[("(2,4)", "16"), "p_miou"] < 0.001  # 3 shared seeds, 20 points apart, the differences 0.1 apart
    assert s.loc[("(1)", "8"), "p_miou"] > 0.05  # noise only
    assert s.loc[("(1)", "16"), "baseline"]
    assert s.loc[("(6,12)", "8"), "n"] == 0 and s.loc[("(6,12)", "8"), "failed"] == 3
    assert s.loc[("(6,12)", "16"), "n"] == 2 and s.loc[("(6,12)", "16"), "missing"] == 1
    assert s.loc[("(2,4)", "8"), "macs"] == 8_000_000

    shown = t.shown.set_index(["rates", "output_stride"])
    assert shown.loc[("(2,4)", "16"), "Δ mIoU"] == "+20.00***"
    assert shown.loc[("(1)", "8"), "Δ mIoU"] == "+0.17"  # no mark: not significant
    assert shown.loc[("(1)", "16"), "Δ mIoU"] == "baseline"
    assert shown.loc[("(2,4)", "16"), "mIoU"] == "71.00 ± 0.95"
    assert shown.loc[("(6,12)", "8"), "mIoU"] == "FAILED"
    assert shown.loc[("(6,12)", "8"), "status"] == "FAILED 3/3"
    assert shown.loc[("(6,12)", "16"), "status"] == "missing 1/3"
    assert shown.loc[("(2,4)", "8"), "MACs (G)"] == "0.008" and shown.loc[("(2,4)", "8"), "n"] == 3
    assert len(t.shown) == 6  # every configuration, failed and missing ones included

    layout = t.layout.set_index("rates")
    assert list(layout.columns) == ["output_stride=8", "output_stride=16"]
    assert layout.loc["(2,4)", "output_stride=16"] == "71.00 ± 0.95 (+20.00***)"
    assert layout.loc["(6,12)", "output_stride=8"] == "FAILED"
    assert "missing 1/3" in layout.loc["(6,12)", "output_stride=16"]

    assert len(t.failures) == 3 and all("FloatingPointError: loss is nan" in f[2] for f in t.failures)
    assert len(t.missing) == 1
    note = " ".join(t.footnote)
    assert "paired t-test over shared seeds" in note and "Holm" in note
    assert "CPU Test (1 thread)" in note and "32×32" in note


def test_formats(fake_study):
    loaded, runs, store = fake_study
    t = build(loaded.study, collect(runs, store), {r.id: r.label for r in runs})
    md = to_markdown(t)
    flat = re.sub(" {2,}", " ", md)  # the columns are padded to line up
    assert "| rates | output_stride | mIoU |" in flat and "+20.00***" in md and "FAILED 3/3" in md
    assert "Failed runs:" in md and "Missing runs:" in md
    tex = to_latex(t)
    for needle in (r"\toprule", r"\midrule", r"\bottomrule", r"71.00 $\pm$ 0.95", r"+20.00$^{***}$", r"$\Delta$ mIoU"):
        assert needle in tex
    assert "±" not in tex and "_" not in tex.replace(r"\_", "")  # escaped for LaTeX
    html = to_html(t)
    def rows(cls: str) -> int:
        return re.search(f'<table class="ablate {cls}">(.*?)</table>', html).group(1).count("<tr>")

    assert rows("comparison") == 1 + 6 and rows("layout") == 1 + 3  # header + one row per configuration
    assert rows("seeds") == 1 + 6 and "Which axis matters" in html and rows("effects") > 1
    assert "Which axis matters" in md and "of every seed" in md  # the markdown has them as well
    assert '<td class="failed">FAILED</td>' in html
    csv = to_csv(t)
    assert csv.splitlines()[0].startswith("model.head.rates,model.output_stride,miou_mean,miou_std")
    assert "p_miou" in csv.splitlines()[0] and len(csv.splitlines()) == 7


def test_marks():
    assert [mark(p) for p in (0.0001, 0.005, 0.03, 0.2, None, float("nan"))] == ["***", "**", "*", "", "", ""]


def test_study_package_imports_no_torch():
    code = (
        "import sys, ablate.report.table, ablate.report.page, ablate.study.wandb_sink; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------- cost
def test_cost_counts_what_it_says():
    import torch

    from ablate.train.cost import measure

    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    cost = measure(conv, 16, "cpu", warmup=1, repeats=3)
    assert cost["params"] == 8 * 3 * 9
    assert cost["macs"] == 8 * 3 * 9 * 16 * 16
    assert cost["latency_ms"] > 0
    assert cost["peak_mem_mb"] * 2**20 >= 8 * 16 * 16 * 4  # at least the output activation (fp32)
    assert cost["hardware"].startswith("CPU ") and cost["image_size"] == [16, 16]


# ------------------------------------------------------------------------------------------------- end to end
FAILING = """
name: fails
recipe: recipe.yaml
axes:
  model.head.rates: [[1], [2, 4]]
  train.lr: [0.01, 1.0e+9]
seeds: [0, 1]
baseline: {model.head.rates: [2, 4], train.lr: 0.01}
table: {rows: model.head.rates, columns: train.lr}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A real tiny study (8 runs; lr 1e9 makes 4 of them fail with a NaN loss), run by the CLI with W&B offline."""
    from conftest import TINY_RECIPE

    root = tmp_path_factory.mktemp("results_e2e")
    (root / "recipe.yaml").write_text(TINY_RECIPE)
    (root / "study.yaml").write_text(FAILING)
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, "-m", "ablate.cli", "run", "study.yaml", "--results", str(root / "results")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env, timeout=600)
    return root, out


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ablate.cli", *args, "study.yaml", "--results", str(root / "results")]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=300)


@pytest.mark.slow
def test_failing_study_still_gives_table_and_report(finished):
    root, out = finished
    assert out.returncode == 1, out.stdout + out.stderr  # failures are reported with exit code 1 ...
    assert "4 run(s) failed" in out.stdout and "FloatingPointError: loss is nan" in out.stdout
    study = root / "results" / "fails"
    md = (study / "table.md").read_text()  # ... and the table and report are there all the same
    assert "FAILED 2/2" in md and "baseline" in md and "paired t-test" in md
    report = (study / "report.html").read_text()
    assert "FloatingPointError: loss is nan at step 2" in report
    from ablate.report.plots import PLOTS

    assert report.count("data:image/png;base64,") == len(PLOTS) == 9  # every plot inline, none missing
    records = [json.loads(p.read_text()) for p in (study / "runs").glob("*/metrics.json")]
    done = [r for r in records if r["status"] == "done"]
    assert len(records) == 8 and len(done) == 4
    assert all({"params", "macs", "latency_ms", "peak_mem_mb", "hardware"} <= set(r["cost"]) for r in done)


@pytest.mark.slow
def test_table_formats_from_cli(finished):
    root, _ = finished
    terminal = _cli(root, "table")
    assert terminal.returncode == 0, terminal.stderr
    for needle in ("mIoU", "±", "Δ mIoU", "Params", "MACs", "Latency", "Memory", "FAILED", "baseline", "CPU "):
        assert needle in terminal.stdout, needle
    for fmt, name, needle in (
        ("latex", "table.tex", r"\toprule"),
        ("csv", "table.csv", "miou_mean"),
        ("md", "table.md", "| rates "),
        ("html", "table.html", "<table"),
    ):
        res = _cli(root, "table", "--format", fmt)
        assert res.returncode == 0, res.stderr
        assert needle in res.stdout and needle in (root / "results" / "fails" / name).read_text()


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        message = "headless Chromium is needed (apt-get install -y chromium; `nox -s tests` installs it as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


@pytest.mark.slow
def test_report_renders_in_headless_chromium(finished, tmp_path):
    root, _ = finished
    exe = _chromium()
    before = (root / "results" / "fails" / "report.html").stat().st_mtime_ns
    again = _cli(root, "report")  # the report command on its own, from the run folders
    assert again.returncode == 0, again.stdout + again.stderr
    assert "report.html" in again.stdout and "not drawn" not in again.stdout
    assert (root / "results" / "fails" / "report.html").stat().st_mtime_ns > before
    assert (root / "results" / "fails" / "report_files" / "qualitative.png").is_file()
    page = (root / "results" / "fails" / "report.html").as_uri()
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_CACHE_HOME": str(tmp_path)}
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,2400",
    ]
    dom = subprocess.run([exe, *flags, "--dump-dom", page], capture_output=True, text=True, env=env, timeout=120)
    assert 'data-images="9"' in dom.stdout, dom.stderr[-2000:]
    assert 'data-broken-images="0"' in dom.stdout  # every image decoded (naturalWidth > 0)
    assert 'data-table-rows="4"' in dom.stdout  # the comparison table rendered, one row per configuration
    width = int(re.search(r'data-scroll-width="(\d+)"', dom.stdout).group(1))
    assert 'data-viewport-width="1280"' in dom.stdout and width <= 1280  # nothing wider than the window
    shot = tmp_path / "report.png"
    subprocess.run([exe, *flags, f"--screenshot={shot}", page], capture_output=True, env=env, timeout=120)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2400, 1280) and pixels.std() > 0.05  # not a blank page
    keep = os.environ.get("ABLATE_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def _inspect(run_dir: Path) -> dict:
    wandb_exe = Path(sys.executable).with_name("wandb")
    out = subprocess.run(
        [str(wandb_exe), "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow
def test_wandb_offline_runs_read_back(finished):
    root, _ = finished
    base = root / "results" / "fails" / "wandb"
    dirs = sorted(base.glob("offline-run-*"))
    assert len(dirs) == 8 + 1  # one per run, plus the study's summary run
    runs = [(_inspect(d), d) for d in dirs]
    summary = [(r, d) for r, d in runs if r["name"] == "fails-summary"]
    assert len(summary) == 1
    per_run = [r for r, _ in runs if r["name"] != "fails-summary"]
    assert {r["project"] for r, _ in runs} == {"ablate"}
    done = [r for r in per_run if r["summary"].get("status") == "done"]
    failed = [r for r in per_run if r["summary"].get("status") == "failed"]
    assert len(done) == 4 and len(failed) == 4
    for r in done:
        assert r["config"]["ablate"]["study"] == "fails" and r["config"]["train"]["lr"] == 0.01
        assert 0 <= r["summary"]["miou"] <= 1 and r["summary"]["cost/macs"] > 0
        assert r["summary"]["train/loss"] > 0  # the training loss, logged by the training loop
        assert r["summary"]["per_class_iou"]["_type"] == "table-file" and r["exit_code"] == 0
    assert all("loss is nan" in r["summary"]["error"] and r["exit_code"] == 1 for r in failed)
    raw = subprocess.run(
        [str(Path(sys.executable).with_name("wandb")), "leet", "inspect", "--json", str(dirs[0])],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    header = next(json.loads(line)["run"] for line in raw.splitlines() if '"type":"run"' in line)
    assert header["run_group"] == "fails" and header["job_type"] in ("run", "summary")
    tags = {t for r, _ in runs for t in r["tags"]}
    assert {"rates=(1)", "rates=(2,4)", "lr=0.01", "lr=1000000000.0", "seed=0", "seed=1"} <= tags
    local = {
        d.name: json.loads((d / "files" / r["summary"]["comparison_table"]["path"]).read_text()) for r, d in summary
    }
    table = next(iter(local.values()))
    assert table["columns"][:3] == ["rates", "lr", "mIoU"] and len(table["data"]) == 4
    assert sum("FAILED" in row[2] for row in table["data"]) == 2
    r, d = summary[0]
    assert r["summary"]["failed_runs"] == 4
    assert len(list((d / "files" / "media" / "images").rglob("*.png"))) == 9  # the report's plots


# ------------------------------------------------------------------------------------------------- W&B settings
def test_wandb_settings_from_recipe_or_study_never_change_run_ids(tiny_study, tmp_path, monkeypatch):
    from ablate.study import wandb_sink

    plain = load_study(tiny_study(FAKE))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe.read_text() + "wandb: {mode: disabled, project: p}\n")
    with_recipe = load_study(tiny_study(FAKE))
    assert with_recipe.study.wandb.mode == "disabled" and with_recipe.study.wandb.project == "p"
    with_study = load_study(tiny_study(FAKE + "wandb: {mode: offline}\n"))
    assert with_study.study.wandb.mode == "offline"  # the study's block wins over the recipe's
    ids = [r.id for r in expand(plain)]
    assert ids == [r.id for r in expand(with_recipe)] == [r.id for r in expand(with_study)]

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert wandb_sink.resolve_mode("auto") == "offline"  # no key: offline, never a prompt
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_sink.resolve_mode("auto") == "online"
    assert wandb_sink.resolve_mode("disabled") == "disabled"
    ctx = wandb_sink.settings("fake", tmp_path / "results", with_study.study.wandb, "disabled")
    monkeypatch.setenv(wandb_sink.ENV, "")  # restored (unset) after the test
    wandb_sink.export(ctx)
    assert wandb_sink.current() is None  # disabled: the job logs nothing


# ------------------------------------------------------------------------------------------------- outlier seeds
PLANTED = """
name: planted
recipe: recipe.yaml
axes:
  model.head.rates: [[1], [2, 4]]
seeds: [0, 1, 2, 3, 4]
baseline: {model.head.rates: [1]}
"""


def planted_job(config, run_dir, train_dir, progress):
    """Every seed within 0.3 points of its row's mean, but seed 3 of (2,4) collapsed (40 instead of ~70)."""
    rates, seed = config["model"]["head"]["rates"], config["seed"]
    value = (0.40 if seed == 3 else 0.70 + 0.001 * seed) if rates == [2, 4] else 0.50 + 0.0015 * seed
    return {"metrics": {"miou": value, "pixel_acc": 0.9, "mean_acc": 0.6, "fwiou": 0.8},
            "per_class_iou": {"background": 0.9, "disc": value}, "confusion": [[90, 10], [5, 95]],
            "classes": ["background", "disc"]}  # fmt: skip


def test_a_planted_outlier_seed_is_flagged_in_the_table_the_report_and_seeds(tiny_study, tmp_path):
    study = tiny_study(PLANTED)
    run_study(load_study(study), tmp_path / "results", planted_job, Quiet())
    args = [str(study), "--results", str(tmp_path / "results")]
    table = subprocess.run([sys.executable, "-m", "ablate.cli", "table", *args, "--every-seed"], capture_output=True,
                           text=True, timeout=120, env={**os.environ, "COLUMNS": "160"})  # fmt: skip
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "(2,4)" in line and "±" in line)
    assert " !" in row  # the mean of the row with the outlier is marked
    seeds = next(line for line in table.stdout.splitlines() if "(2,4)" in line and "40.00 " in line and "│" not in
                 line and "seed 3" not in line)  # fmt: skip
    assert "40.00 !" in seeds and seeds.count("!") == 1  # only seed 3
    assert "seed 3 (40.00) lies more than 3 robust SDs" in table.stdout
    report = subprocess.run([sys.executable, "-m", "ablate.cli", "report", *args], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    page = (tmp_path / "results" / "planted" / "report.html").read_text()
    assert '<td class="outlier">40.00 !</td>' in page and "seed 3 (40.00)" in page
    drawn = {p.stem for p in (tmp_path / "results" / "planted" / "report_files").glob("*.png")}
    assert drawn == {"metric_vs_axes", "seeds", "effects", "per_class_iou", "confusion"}  # what a record without
    assert "Not drawn: no training curve recorded" in page  # cost, curve or predictions allows; the rest says why
