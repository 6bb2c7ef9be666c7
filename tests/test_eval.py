"""Evaluation: inference strategies, eval output stride, dense CRF, eval-only config keys, `ablate eval`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from tests_helpers import quiet_env, stacked, synthetic
from torch import nn

from ablate.config.errors import validate
from ablate.config.schema import CRFConfig, EvalConfig, Recipe
from ablate.core.errors import ConfigError
from ablate.core.hashing import stable_hash
from ablate.data.synthetic import CLASSES, make_sample
from ablate.models.heads import HEADS
from ablate.models.heads.aspp import ASPPParams
from ablate.models.segmenter import build_model
from ablate.models.spec import ModelConfig
from ablate.study.grid import Run
from ablate.train.crf import CRFPool, dense_crf
from ablate.train.evaluate import evaluate
from ablate.train.inference import build_eval_model, eval_model_config, predict, sliding_window

K = len(CLASSES)
MODEL = ModelConfig(backbone="test_resnet", output_stride=16, head=ASPPParams(rates=[2, 4], channels=16))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two OpenMP threads can be 100x slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def net(one_thread) -> nn.Module:
    """The tiny model, trained for a few seconds so that its predictions are neither constant nor perfect."""
    torch.manual_seed(0)
    model = build_model(MODEL, K).train()
    images, labels = stacked(synthetic("train", 32, 48))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        i = torch.randint(0, 32, (8,))
        loss = nn.functional.cross_entropy(model(images[i]), labels[i], ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


class Pointwise(nn.Module):
    """A 1x1 conv net: its prediction at a pixel depends on that pixel only."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, K, 1)

    def forward(self, x):
        return self.conv(x)


# ------------------------------------------------------------------------------------------- inference
def test_sliding_window_covering_the_image_is_whole_image(net):
    """The net is trained on 48-pixel crops; the validation images are larger (64). A window that covers the image
    gives exactly the whole-image prediction; crop-sized windows give another, valid one."""
    images = stacked(synthetic("val", 2, 64))[0]
    whole = predict(net, images, EvalConfig())
    for tile in (64, 96):  # the window covers the image (a window is never larger than the image)
        assert torch.equal(predict(net, images, EvalConfig(tile=tile)), whole)
    tiled = predict(net, images, EvalConfig(tile=48, overlap=0.5))  # windows of the training crop's size
    assert tiled.shape == whole.shape and not torch.allclose(tiled, whole)
    assert torch.allclose(tiled.sum(1), torch.ones(2, 64, 64), atol=1e-5)


@pytest.mark.parametrize("tile,overlap,size", [(32, 0.5, (80, 72)), (24, 0.0, (50, 50)), (40, 1 / 3, (41, 100))])
def test_sliding_window_stitches_exactly(tile, overlap, size):
    """With a pointwise net every window agrees with the whole image where it overlaps, so any tiling, even
    a ragged one, must give the whole-image probabilities back: checks window placement and averaging."""
    model = Pointwise()
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        whole = model(images).softmax(1)
    assert torch.allclose(sliding_window(model, images, tile, overlap), whole, atol=1e-6)


def test_multiscale_and_flip(net):
    images = torch.randn(2, 3, 45, 53)  # odd sizes: every scale is resized back to 45 x 53
    plain = predict(net, images, EvalConfig())
    ms = predict(net, images, EvalConfig(scales=[0.5, 0.75, 1.25], flip=True))
    assert ms.shape == plain.shape and not torch.allclose(ms, plain)
    assert torch.allclose(ms.sum(1), torch.ones(2, 45, 53), atol=1e-5)
    assert torch.equal(predict(net, images, EvalConfig(scales=[1.0, 1.0])), plain)
    # flip averages the prediction of the mirrored image, mirrored back
    flipped = net(images.flip(-1)).softmax(1).flip(-1)
    assert torch.allclose(predict(net, images, EvalConfig(flip=True)), (plain + flipped) / 2, atol=1e-6)
    pointwise = Pointwise()  # mirror-equivariant: flip changes nothing
    with torch.no_grad():
        assert torch.allclose(predict(pointwise, images, EvalConfig(flip=True)), pointwise(images).softmax(1))


def test_eval_output_stride_same_weights_other_numbers(net):
    ev8 = EvalConfig(output_stride=8)
    cfg8 = eval_model_config(MODEL, ev8)
    assert cfg8.output_stride == 8 and cfg8.head.rates == [4, 8]  # rates doubled, as DeepLabv3 does at OS 8
    assert eval_model_config(MODEL, EvalConfig(output_stride=8, scale_rates=False)).head.rates == [2, 4]
    assert eval_model_config(MODEL, EvalConfig(output_stride=16)) == MODEL
    model8 = build_eval_model(MODEL, ev8, K, net.state_dict())  # strict load: no shape changed
    for (name, a), (_, b) in zip(net.state_dict().items(), model8.state_dict().items(), strict=True):
        assert torch.equal(a, b), name

    def dilations(model):
        return {m.dilation for m in model.backbone.modules() if isinstance(m, nn.Conv2d)}

    assert dilations(net) == {(1, 1), (2, 2)} and dilations(model8) == {(1, 1), (2, 2), (4, 4)}
    data = synthetic("val", 8, 64)
    m16 = evaluate(net, data, EvalConfig(batch_size=4), K)
    m8 = evaluate(model8, data, EvalConfig(batch_size=4, output_stride=8), K)
    assert m8["miou"] != m16["miou"]
    images = stacked(data)[0][:2]
    assert not torch.allclose(predict(net, images, EvalConfig()), predict(model8, images, ev8))


# ------------------------------------------------------------------------------------------- dense CRF
def _noisy(label: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    onehot = np.eye(K, dtype=np.float32)[np.where(label < K, label, 0)].transpose(2, 0, 1)
    p = 0.5 * onehot + rng.random(onehot.shape, dtype=np.float32)
    return p / p.sum(0, keepdims=True)


def test_rgb_is_the_denormalised_uint8_image():
    data = synthetic("val", 2, 40, seed=3)
    rgb = data.rgb(1)
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 40, 3) and rgb.flags["C_CONTIGUOUS"]
    image = make_sample(3, "val", 1, 40, (40 / 8, 40 / 2.5))[0]  # as tests_helpers.synthetic draws it
    assert np.abs(rgb.astype(int) - np.round(image * 255).astype(int)).max() <= 1


def test_dense_crf_cleans_up_noise():
    data = synthetic("val", 2, 64)
    label = data[0][1].numpy()
    probs = _noisy(label)
    q = dense_crf(probs, data.rgb(0), CRFConfig(enabled=True))
    assert q.shape == probs.shape and np.allclose(q.sum(0), 1, atol=1e-4)
    keep = label != 255
    before = (probs.argmax(0) == label)[keep].mean()
    after = (q.argmax(0) == label)[keep].mean()
    assert after > before + 0.1


def test_crf_pool_matches_one_worker():
    data = synthetic("val", 6, 48, seed=1)
    items = [(_noisy(data[i][1].numpy(), i), data.rgb(i)) for i in range(6)]
    cfg = CRFConfig(enabled=True, iterations=3)
    with CRFPool(cfg, 1) as one, CRFPool(cfg, 2) as two:
        serial = list(one.imap(items))
        assert all(np.array_equal(a, b) for a, b in zip(serial, two.imap(items), strict=True))
        assert all(np.array_equal(a, b) for a, b in zip(serial, two.submit(items), strict=True))


def test_crf_benchmark_times_each_worker_count():
    """The CRF bench (``python -m ablate.bench.crf``, the bench's crf section) times every worker count it is given,
    cold and warm: the best wall time is at most the median, and a warm pool's workers' CPU time is unknown."""
    from ablate.bench.crf import benchmark

    data = synthetic("val", 2, 32, seed=2)
    probs, rgbs = [_noisy(data[i][1].numpy(), i) for i in range(2)], [data.rgb(i) for i in range(2)]
    cfg = CRFConfig(enabled=True, iterations=2)
    for warm in (False, True):
        times = benchmark(probs, rgbs, cfg, [1, 2], repeats=2, warm=warm)
        assert set(times) == {1, 2}
        for n, (best, median, cpu) in times.items():
            assert 0 < best <= median
            assert np.isnan(cpu) == (warm and n > 1)


def test_evaluate_with_crf(net):
    data = synthetic("val", 6, 48)
    off = evaluate(net, data, EvalConfig(batch_size=4), K)
    on1 = evaluate(net, data, EvalConfig(batch_size=4, crf=CRFConfig(enabled=True, workers=1)), K)
    on2 = evaluate(net, data, EvalConfig(batch_size=4, crf=CRFConfig(enabled=True, workers=2)), K)
    assert on1["miou"] == on2["miou"] and on1["per_class_iou"] == on2["per_class_iou"]
    assert on1["miou"] != off["miou"] and on2["crf_workers"] == 2


# ------------------------------------------------------------------------------------------- config
def test_eval_keys_are_eval_only():
    base = Recipe().model_dump(mode="json")
    assert Recipe.model_validate({"eval": {"crf": True}}).eval.crf.enabled
    variants = [
        {"crf": True},
        {"crf": {"enabled": True, "iterations": 10, "bilateral": {"srgb": 5}}},
        {"output_stride": 8},
        {"scales": [0.5, 1.0, 1.5], "flip": True},
        {"tile": 64, "overlap": 0.5},
    ]
    ids = {Run("x", 0, {}, base).train_id}
    for v in variants:
        config = Recipe.model_validate({"eval": v}).model_dump(mode="json")
        ids.add(Run(stable_hash(config), 0, {}, config).train_id)
    assert len(ids) == 1


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"crf": {"iterations": 0}}, "eval.crf.iterations: Input should be greater than 0"),
        ({"crf": {"bilaterl": {}}}, "unknown key 'bilaterl' (did you mean 'bilateral'?)"),
        ({"output_stride": 4}, "eval.output_stride: Input should be 8, 16, 32, 64, 128 or 256"),
        ({"scales": [0.0]}, "eval.scales: every scale must be between 0.1 and 4"),
        ({"overlap": 1.0}, "eval.overlap: Input should be less than 1"),
    ],
)
def test_bad_eval_keys_one_line(bad, message):
    with pytest.raises(ConfigError) as err:
        validate(Recipe, {"eval": bad}, "r.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------- end to end
STUDY = """
name: ev
recipe: recipe.yaml
set: {train.steps: 2, eval.crf.iterations: 2}
axes:
  eval.output_stride: [16, 8]
  eval.crf.enabled: [false, true]
table: {rows: eval.output_stride, columns: eval.crf.enabled}
"""


@pytest.mark.slow
def test_eval_axes_train_once_and_ablate_eval(tiny_study, tmp_path):
    study = tiny_study(STUDY)
    results = tmp_path / "results"
    cli = [sys.executable, "-m", "ablate.cli"]
    env = quiet_env(OMP_NUM_THREADS="1")
    out = subprocess.run(
        [*cli, "run", str(study), "-r", str(results), "--no-report"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 runs (1 training)" in out.stdout and out.stdout.count("(trained)") == 1
    assert len(list((results / "ev" / "trainings").iterdir())) == 1
    runs = sorted((results / "ev" / "runs").iterdir())
    records = {r: json.loads((r / "metrics.json").read_text()) for r in runs}
    by_axes = {(rec["axes"]["eval.output_stride"], rec["axes"]["eval.crf.enabled"]): rec for rec in records.values()}
    assert by_axes[(8, False)]["eval"]["output_stride"] == 8 and by_axes[(8, False)]["eval"]["head"]["rates"] == [4, 8]
    assert "crf_workers" in by_axes[(16, True)]["eval"] and "crf_workers" not in by_axes[(16, False)]["eval"]

    run = next(r for r, rec in records.items() if rec["axes"] == {"eval.output_stride": 16, "eval.crf.enabled": False})
    before = (run / "metrics.json").read_bytes()
    sets = ["--set", "eval.output_stride=8", "--set", "eval.crf.enabled=false"]
    out = subprocess.run([*cli, "eval", str(run), *sets], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (run / "metrics.json").read_bytes() == before  # the run's own record is left alone
    (written,) = (run / "evals").glob("*.json")
    again = json.loads(written.read_text())
    assert again["metrics"] == by_axes[(8, False)]["metrics"]  # same settings as the study's run: same numbers
    assert again["overrides"] == {"eval.output_stride": 8, "eval.crf.enabled": False}

    bad = subprocess.run(
        [*cli, "eval", str(run), "--set", "model.output_stride=8"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "only eval.* keys" in bad.stderr and bad.stderr.count("\n") == 1
    bad = subprocess.run([*cli, "eval", str(tmp_path)], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "not a run folder" in bad.stderr


def test_eval_output_stride_checked_before_training(tiny_study):
    """A backbone that cannot dilate is refused at the eval output stride too, naming the eval axis."""
    from ablate.study.grid import expand
    from ablate.study.load import load_study
    from ablate.train.preflight import preflight

    study = tiny_study(
        "name: v\nrecipe: recipe.yaml\n"
        "set: {model.backbone: vgg11, model.output_stride: 32, model.head: {name: none, channels: 8}}\n"
        "axes: {eval.output_stride: [32, 8]}\n"
    )
    loaded = load_study(study)
    with pytest.raises(ConfigError, match=r"axes\.eval\.output_stride: backbone 'vgg11' cannot run at output stride 8"):
        preflight((r.config for r in expand(loaded)), loaded.source_of)


def test_eval_at_a_lower_output_stride_is_training_s_function_only_denser():
    """DeepLabv3 evaluates an OS-16 training at OS 8: on training's lattice (every other position) the OS-8 net
    must give the OS-16 net's very numbers, in the backbone (timm's average-pool shortcut of the dilated stage
    respaced) and after ASPP with its rates doubled; between them, the OS-16 net's numbers on the moved image."""
    cfg = ModelConfig(backbone="test_resnet", output_stride=16,
                      head=ASPPParams(rates=[1, 2, 3], channels=16, image_pooling=False))  # fmt: skip
    torch.manual_seed(0)
    trained = build_model(cfg, K)
    for m in trained.modules():  # batch-norm statistics far from (0, 1): an eval-mode BN that is not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
    trained.eval()
    model8 = build_eval_model(cfg, EvalConfig(output_stride=8), K, trained.state_dict())
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        feats16, feats8 = trained.backbone.body(x), model8.backbone.body(x)
        head16, head8 = trained.head(feats16[-1]), model8.head(feats8[-1])
    assert feats8[-1].shape[-2:] == (8, 10) and feats16[-1].shape[-2:] == (4, 5)
    assert torch.allclose(feats8[-1][..., ::2, ::2], feats16[-1], atol=1e-5)
    assert torch.allclose(head8[..., ::2, ::2], head16, atol=1e-5)
    assert model8.shift == 0.5 and trained.shift == 0.0
    # Between training's positions (odd rows and columns) the OS-8 net is the OS-16 net on the image moved by 8 px,
    # so those samples are as good as training's own; only near the borders does the zero padding differ.
    image = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        dense8, moved16 = model8.backbone.body(image)[-1], trained.backbone.body(image[..., 8:, 8:])[-1]
        dense_head8, moved_head16 = model8.head(dense8), trained.head(moved16)
    n = moved16.shape[-1]  # 24 (48 at OS 8)
    odd, odd_head = dense8[..., 1::2, 1::2][..., :n, :n], dense_head8[..., 1::2, 1::2][..., :n, :n]
    assert torch.allclose(odd[..., 1:-2, 1:-2], moved16[..., 1:-2, 1:-2], atol=1e-5)
    assert torch.allclose(odd_head[..., 4:-5, 4:-5], moved_head16[..., 4:-5, 4:-5], atol=1e-5)
    # timm's own OS-8 net (adjacent-position average in the dilated stage's shortcut) is another function
    plain = build_model(eval_model_config(cfg, EvalConfig(output_stride=8)), K)
    plain.load_state_dict(trained.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain.eval().backbone.body(x)[-1][..., ::2, ::2], feats16[-1], atol=1e-2)


def test_eval_at_a_lower_output_stride_keeps_cascaded_blocks_exact():
    """With DeepLabv3's cascaded blocks (rates 4 and 8 after block4 at OS 16, 8 and 16 at OS 8) the OS-8 net still
    gives the OS-16 net's numbers on training's lattice."""
    cfg = ModelConfig(backbone="test_resnet", output_stride=16, cascade_blocks=2, multi_grid=[1, 2])
    torch.manual_seed(0)
    trained = build_model(cfg, K).eval()
    model8 = build_eval_model(cfg, EvalConfig(output_stride=8), K, trained.state_dict())
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        high16, high8 = trained.backbone(x)[1], model8.backbone(x)[1]
    assert high8.shape[-2:] == (8, 10) and torch.allclose(high8[..., ::2, ::2], high16, atol=1e-5)


def test_upsampling_keeps_training_s_anchor():
    """Bilinear upsampling puts sample j at the centre of its cell; with ``shift`` (eval at OS 8 of an OS-16
    training: half a sample) it sits that much further on, where the trained net's sample of that place sat."""
    from ablate.models.layers.restride import upsample

    ramp = torch.arange(10, dtype=torch.float32).view(1, 1, 1, 10).expand(1, 1, 3, 10).contiguous()
    assert torch.equal(upsample(ramp, (24, 80)), nn.functional.interpolate(ramp, (24, 80), mode="bilinear"))
    out = upsample(ramp, (3, 80), shift=0.5)[0, 0, 0]
    pixel = torch.arange(80, dtype=torch.float32)
    expected = ((pixel + 0.5) / 8 - 0.5 - 0.5).clamp(0, 9)  # sample j at pixel 8 j + 3.5 + 4
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("head", list(HEADS))
def test_every_head_evaluates_at_another_output_stride(head):
    """Trained at OS 16, evaluated at OS 8: the weights load strictly and the net runs, whatever the head."""
    params = HEADS[head]
    kwargs = {"name": head, **({"channels": 16} if "channels" in params.model_fields else {})}
    cfg = ModelConfig(backbone="test_resnet", output_stride=16, head=params.model_validate(kwargs))
    trained = build_model(cfg, K).eval()
    model8 = build_eval_model(cfg, EvalConfig(output_stride=8), K, trained.state_dict())
    with torch.no_grad():
        assert model8(torch.randn(1, 3, 48, 48)).shape == (1, K, 48, 48)
