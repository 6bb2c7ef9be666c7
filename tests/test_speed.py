"""The fast defaults (channels_last, bf16 autocast, no host sync per step, device-side metrics) and ``ablate bench``.
Timings are never asserted: only that every path runs and gives the right answers and files."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import TINY_RECIPE
from torchmetrics.classification import MulticlassConfusionMatrix

from ablate.config.schema import Recipe
from ablate.train.job import run_job
from ablate.train.metrics import confusion_metric
from ablate.train.module import SegmentationModule


def _dirs(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "train").mkdir()
    return tmp_path / "run", tmp_path / "train"


def _config(**train) -> dict:
    config = Recipe.model_validate(yaml.safe_load(TINY_RECIPE)).model_dump()
    config["train"].update(train)
    return config


@pytest.mark.parametrize(
    "train",
    [
        {"channels_last": True, "precision": "32-true"},
        {"channels_last": True, "precision": "bf16-mixed"},
        {"channels_last": False, "precision": "32-true"},
    ],
)
def test_training_paths_run(train, tmp_path):
    """Each path trains, and the record's metrics are those of the saved model evaluated again from model.pt."""
    from ablate.config.schema import Recipe as R
    from ablate.data.loader import build_datasets
    from ablate.train.record import evaluate_trained

    config = _config(**train)
    run_dir, train_dir = _dirs(tmp_path)
    record = run_job(config, run_dir, train_dir)
    assert record["steps"] == 3 and record["trained"] and record["eval"]["eval_time_s"] >= 0
    recipe = R.model_validate(config)
    again = evaluate_trained(recipe, build_datasets(recipe.data), train_dir)
    assert again["metrics"] == record["metrics"] and again["per_class_iou"] == record["per_class_iou"]


def test_channels_last_model_and_same_state_dict_keys():
    recipe = Recipe.model_validate(_config(channels_last=True))
    module = SegmentationModule(recipe, num_classes=5)
    conv = next(m for m in module.model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = SegmentationModule(Recipe.model_validate(_config(channels_last=False)), num_classes=5)
    assert module.model.state_dict().keys() == plain.model.state_dict().keys()


def test_nonfinite_loss_is_caught_without_a_sync_per_step():
    module = SegmentationModule(Recipe.model_validate(_config()), num_classes=5)
    module.track_loss(torch.tensor(0.5), 0)
    module.check_finite()  # finite so far: nothing
    module.track_loss(torch.tensor(0.25), 1)
    module.track_loss(torch.tensor(float("nan")), 2)
    module.track_loss(torch.tensor(float("inf")), 3)  # later ones do not overwrite the first
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 2"):
        module.check_finite()


def test_fused_sgd_makes_the_same_updates_as_torch_sgd():
    """Real backward passes through the channels_last model (fused SGD reads the gradients in the parameters'
    memory layout, which autograd guarantees): three steps match ``torch.optim.SGD``'s per-tensor loop."""
    import copy

    import torch.nn.functional as F

    recipe = Recipe.model_validate(_config(lr=0.1, momentum=0.9, weight_decay=1e-3, channels_last=True))
    module = SegmentationModule(recipe, num_classes=5)
    twin = copy.deepcopy(module)
    fused = module.configure_optimizers()["optimizer"]
    assert fused.defaults["fused"] is True
    plain = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, foreach=False)
    start = [p.detach().clone() for p in module.parameters()]
    gen = torch.Generator().manual_seed(0)
    for i in range(3):
        x, y = torch.randn(2, 3, 32, 32, generator=gen), torch.randint(0, 5, (2, 32, 32), generator=gen)
        for model, opt in ((module, fused), (twin, plain)):
            torch.manual_seed(i)  # the same dropout masks
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    pairs = list(zip(module.parameters(), twin.parameters(), strict=True))
    assert max((p - q).abs().max().item() for p, q in pairs) < 1e-4
    assert max((p - s).abs().max().item() for p, s in zip(module.parameters(), start, strict=True)) > 1e-2
    bufs = [fused.state[p]["momentum_buffer"] for p in module.parameters() if p.grad is not None]
    assert all(b.stride() == p.stride() for b, p in zip(bufs, module.parameters(), strict=True))  # the param's layout


def test_fused_sgd_updates_channels_last_weights_through_views():
    """From the second step on, ``FusedSGD`` hands the kernel NHWC views of channels_last weights (the bench times
    what that saves): the same values as torch's fused SGD, in place, in the weights' own layout."""
    from ablate.train.optim import FusedSGD, nhwc_view

    def params():
        gen = torch.Generator().manual_seed(0)
        ws = [torch.randn(8, 4, 3, 3, generator=gen).contiguous(memory_format=torch.channels_last) for _ in range(2)]
        ws.append(torch.randn(8, generator=gen))
        ws = [torch.nn.Parameter(w) for w in ws]
        for w in ws:
            w.grad = torch.randn(w.shape, generator=gen).as_strided(w.shape, w.stride())  # the param's layout
        return ws

    ours, theirs = params(), params()
    opt_ours = FusedSGD(ours, lr=0.1, momentum=0.9, weight_decay=1e-3)
    opt_theirs = torch.optim.SGD(theirs, lr=0.1, momentum=0.9, weight_decay=1e-3, fused=True)
    storage = [p.data_ptr() for p in ours]
    for opt in (opt_ours, opt_theirs):
        opt.step()  # creates the momentum buffers
        opt.step()  # through the views
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs, strict=True))
    assert [p.data_ptr() for p in ours] == storage  # updated in place
    assert ours[0].is_contiguous(memory_format=torch.channels_last) and not ours[0].is_contiguous()
    view = nhwc_view(ours[0])
    assert view is not None and view.is_contiguous() and view.data_ptr() == ours[0].data_ptr()
    assert nhwc_view(ours[2]) is None and nhwc_view(ours[0].contiguous()) is None
    calls = []

    def closure():  # runs once, before the update, and its loss comes back
        calls.append(1)
        return torch.tensor(1.5)

    before = ours[0].detach().clone()
    assert opt_ours.step(closure).item() == 1.5 and calls == [1] and not torch.equal(ours[0], before)


def test_training_loss_is_logged_at_the_curve_points(tmp_path):
    """The progress printer (and through it W&B, in a study) gets the loss at step 1, every ``log_every`` steps and
    the last step: the very values curve.csv holds. The hooks see every step."""
    from ablate.data.loader import build_datasets
    from ablate.train.loop import train

    class Progress:
        def __init__(self):
            self.points = []

        def step(self, step, steps, loss):
            self.points.append((step, loss))

        def note(self, message):
            pass

    recipe = Recipe.model_validate(_config(steps=5, log_every=2))
    progress, seen = Progress(), []
    record = train(recipe, build_datasets(recipe.data), tmp_path, progress, hooks=[seen.append])
    assert record["steps"] == 5 and seen == [1, 2, 3, 4, 5]
    curve = [line.split(",") for line in (tmp_path / "curve.csv").read_text().splitlines()[1:]]
    assert [s for s, _ in progress.points] == [int(row[0]) for row in curve] == [1, 2, 4, 5]
    assert [v for _, v in progress.points] == pytest.approx([float(row[1]) for row in curve], rel=1e-5)


def test_diverging_run_fails_with_a_clear_error(tmp_path):
    with pytest.raises(FloatingPointError, match="loss is"):
        run_job(_config(lr=1e30, steps=6, log_every=2), *_dirs(tmp_path))
    assert not (tmp_path / "train" / "model.pt").exists()


def test_confusion_matrix_matches_torchmetrics():
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 5, (3, 17, 19), generator=g)
    target = torch.randint(0, 5, (3, 17, 19), generator=g)
    target[:, ::4] = 255
    ours, theirs = confusion_metric(5), MulticlassConfusionMatrix(5, ignore_index=255)
    for _ in range(2):
        ours.update(preds, target)
        theirs.update(preds, target)
    assert torch.equal(ours.compute(), theirs.compute())
    ours.reset()
    assert ours.compute().sum() == 0


def test_bench_quick_writes_report(tmp_path):
    from ablate.bench.measure import BenchConfig
    from ablate.bench.suite import run_bench

    cfg = BenchConfig.quick_config(out=tmp_path / "bench", loop_steps=3, command="pytest")
    report = run_bench(cfg, ("metrics", "crf", "loop"), log=lambda _: None)
    data = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["torch"] == torch.__version__
    assert {"cpu", "torch_threads", "load_avg_start"} <= set(data["machine"])
    assert data["command"] == "pytest" and data["quick"] is True
    assert {"ablate_update_ms", "torchmetrics_jaccard_update_ms", "ratio"} <= set(data["metrics"])
    assert {"bare_s", "ablate_s", "ratio", "steps", "pair_ratios", "ratio_of_best", "blocks"} <= set(data["loop"])
    assert len(data["loop"]["pair_ratios"]) == cfg.loop_pairs and data["loop"]["ratio"] > 0
    assert len(data["loop"]["blocks"]) == cfg.loop_interleaved and data["loop"]["block_steps"] == 3
    probe = data["loop"]["interleaved"]  # 3 steps: 2 timed intervals, no checkpoint inside
    assert probe["ablate_step_ms"] > 0 and probe["bare_step_ms"] > 0 and probe["checkpoints"] == 0
    assert "available" in data["crf"]
    md = (tmp_path / "bench" / "bench.md").read_text()
    assert "# ablate bench" in md and "Whole training loop" in md and "Metric update" in md
    assert report["loop"]["steps"] == 3


def test_block_interleaved_charges_each_loop_its_own_time():
    """A fake clock: the 'training' costs 5 to set up, 3 a step and 1 to finish; the bare loop 7 to build its model and
    2 a step. 10 steps in blocks of 4: each side's whole time comes out exact, whatever runs inside the other."""
    from ablate.bench.loop import _block_interleaved

    now = [0.0]

    def clock() -> float:
        return now[0]

    def bare():
        now[0] += 7
        for _ in range(10):
            now[0] += 2
            yield

    def run(after_step) -> None:
        now[0] += 5
        for step in range(1, 11):
            now[0] += 3
            after_step(step)
        now[0] += 1

    out = _block_interleaved(run, bare(), 4, clock=clock)
    assert out["ablate_s"] == 5 + 3 * 10 + 1 and out["bare_s"] == 7 + 2 * 10
    assert out["ratio"] == round(36 / 27, 4)


def test_interleaved_probe_charges_each_step_and_checkpoint():
    """A fake clock: ablate's steps cost 3 ms and 13 ms when they save a checkpoint (every 4th, not the last); the
    bare steps 2 ms. The probe finds +1 ms a step and +10 ms a checkpoint."""
    from ablate.bench.loop import _interleaved_probe

    now = [0.0]

    def bare():
        while True:
            now[0] += 0.002
            yield

    def run(after_step) -> None:
        for step in range(1, 11):
            now[0] += 0.013 if step % 4 == 0 else 0.003
            after_step(step)

    out = _interleaved_probe(run, bare(), 4, clock=lambda: now[0])
    assert out["checkpoints"] == 2 and out["ablate_step_ms"] == 3 and out["bare_step_ms"] == 2
    assert out["overhead_ms_per_step"] == 1 and out["checkpoint_ms"] == 10


def test_nominal_flops_count_every_tap_and_executed_flops_only_the_real_ones():
    from ablate.bench.flops import nominal_step_flops
    from ablate.bench.models import step_flops
    from ablate.train.cpu_speed import AtrousConv2d

    x, y = torch.randn(2, 4, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    conv = AtrousConv2d(4, 2, 3, dilation=8, bias=False)  # on 4 x 4 only the centre tap reads the map
    assert torch.allclose(conv(x), torch.nn.Conv2d.forward(conv, x), atol=1e-6)  # the same function
    per_tap = 2 * 4 * 2 * 4 * 4 * 2  # multiply-adds x 2, channels in x out, positions, batch
    assert step_flops(conv, x, y) == 2 * per_tap  # forward + weight gradient, one tap each
    assert nominal_step_flops(conv, x, y) == 2 * 9 * per_tap  # as a plain 3x3 conv


def test_gc_is_frozen_once_per_process():
    """In a fresh process: after the first training's ``freeze_gc_once`` the objects alive by then (torch,
    Lightning, ...) are out of the oldest generation a full collection walks; a second call moves nothing."""
    import subprocess
    import sys

    code = (
        "import gc, ablate.train.loop as loop; gc.collect(); before = len(gc.get_objects(generation=2)); "
        "loop.freeze_gc_once(); after = len(gc.get_objects(generation=2)); keep = [[i] for i in range(1000)]; "
        "gc.collect(); loop.freeze_gc_once(); print(before, after, len(gc.get_objects(generation=2)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, later = map(int, out.stdout.split())
    assert before > 100_000 and after < 1000 and later >= 1000  # the second call froze nothing new


def test_step_breakdown_splits_the_convolutions_from_the_other_ops():
    """The profiled step: the convolutions' time (forward and backward) is part of the step, their FLOP rate is
    the counted FLOPs over that time, and batch norm shows among the other ops."""
    from ablate.bench.flops import step_breakdown
    from ablate.bench.models import step_flops

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.Conv2d(16, 4, 1)
    )
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32))
    flops = step_flops(model, x, y)
    out = step_breakdown(model, x, y, flops, peak=1e12)
    assert 0 < out["conv_s"] < out["step_s_profiled"] and 0 < out["conv_share_of_step"] < 1
    assert out["conv_gflops"] == pytest.approx(flops / out["conv_s"] / 1e9, abs=0.06)  # rounded to 0.1
    assert out["conv_share_of_peak"] == pytest.approx(flops / out["conv_s"] / 1e12, abs=6e-4)
    assert any("batch_norm" in name for name in out["other_top_ms"])
    assert not any(name in ("aten::convolution", "aten::mm") for name in out["other_top_ms"])
    out16 = step_breakdown(model, x, y, flops, peak=1e12, bf16=True, steps=2)  # the faster of 2 profiled steps
    assert out["precision"] == "fp32" and out16["precision"] == "bf16"
    assert 0 < out16["conv_s"] < out16["step_s_profiled"]


def test_gemm_peak_engines_compute_the_same_product_and_the_peak_is_the_faster():
    """Both engines run one n x n x n product (2 n^3 FLOPs by torch's counter); the machine's peak is the best of
    the two engines and the sizes; an unknown engine is refused."""
    from torch.utils.flop_counter import FlopCounterMode

    from ablate.bench import gemm as bench

    for engine in bench.GEMM_ENGINES:
        for n in (64, 96):
            counter = FlopCounterMode(display=False)
            with counter:
                out = bench.gemm_product(n, torch.float32, engine)()
            assert counter.get_total_flops() == 2 * n**3 and out.numel() == n * n
    peak, by_engine = bench.machine_gemm_peak([64, 128], torch.float32, repeats=1)
    assert set(by_engine) == set(bench.GEMM_ENGINES) and peak == max(by_engine.values()) > 0
    with pytest.raises(ValueError, match="allowed matmul, conv1x1"):
        bench.gemm_product(64, torch.float32, "winograd")


def test_logits_come_out_fp32_and_nchw_from_a_channels_last_bf16_model():
    """The loss's log-softmax wants fp32 logits contiguous over the channels: the model upsamples its small logits
    in that form (no full-size copies in the step), and the values are the plain bilinear upsampling's."""
    import torch.nn.functional as F

    from ablate.models.segmenter import upsample_logits

    recipe = Recipe.model_validate(_config(channels_last=True))
    module = SegmentationModule(recipe, num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.model(x)
    assert out.dtype == torch.float32 and out.is_contiguous() and out.shape == (2, 5, 32, 32)
    small = torch.randn(2, 5, 4, 4).contiguous(memory_format=torch.channels_last)
    expected = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(upsample_logits(small.bfloat16(), (32, 32)), expected, atol=0.02)
    assert torch.equal(upsample_logits(small, (32, 32)), expected.contiguous())
