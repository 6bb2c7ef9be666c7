"""``train.ema``: the moving average of the weights, what it saves, and exact resume with it (in process: a tiny
training stopped by SIGINT resumes to the same bytes)."""

from __future__ import annotations

import signal

import pytest
import torch

from ablate.config.schema import EMAConfig, Recipe
from ablate.core import signals
from ablate.data.loader import build_datasets
from ablate.train.checkpoint import CHECKPOINT_FILE
from ablate.train.ema import WeightAverage
from ablate.train.loop import MODEL_FILE, train

RECIPE = {
    "seed": 0,
    "data": {"name": "synthetic", "image_size": 32, "num_train": 16, "num_val": 8, "context_distance": [4, 12]},
    "model": {"backbone": "test_resnet", "output_stride": 16,
              "head": {"name": "aspp", "rates": [2, 4], "channels": 16, "dropout": 0.3}},
    "train": {"steps": 12, "batch_size": 4, "lr": 0.05, "accelerator": "cpu", "log_every": 1, "checkpoint_every": 1,
              "ema": {"decay": 0.8, "start": 3}},
}  # fmt: skip


@pytest.fixture
def own_signals():
    """The loop installs ablate's SIGINT/SIGTERM handlers; give pytest its own back afterwards."""
    saved = {s: signal.getsignal(s) for s in signals.SIGNALS}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _recipe(**train) -> Recipe:
    return Recipe.model_validate({**RECIPE, "train": {**RECIPE["train"], **train}})


def test_ema_off_by_default_and_out_of_the_dump():
    """Off unless asked; at its default the key is not in the recipe dump, so existing run ids do not change."""
    plain = Recipe.model_validate({})
    assert plain.train.ema is None and "ema" not in plain.model_dump(mode="json")["train"]
    assert Recipe.model_validate({"train": {"ema": False}}).model_dump(mode="json") == plain.model_dump(mode="json")
    assert Recipe.model_validate({"train": {"ema": True}}).train.ema == EMAConfig(decay=0.99, start=0)
    assert _recipe().model_dump(mode="json")["train"]["ema"] == {"decay": 0.8, "start": 3}


def test_average_by_hand():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    avg = WeightAverage(model, EMAConfig(decay=0.75, start=1))
    history = []
    for step in range(1, 5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(8, 3))  # moves the BN statistics
        history.append({k: v.clone() for k, v in model.state_dict().items()})
        avg.update(model, step)
        assert avg.started == (step > 1)
    expected = history[1]  # a copy after step 2 (start 1), then the average of steps 3 and 4
    for later in history[2:]:
        expected = {k: 0.75 * expected[k] + 0.25 * later[k] if v.is_floating_point() else later[k]
                    for k, v in expected.items()}  # fmt: skip
    got = avg.weights()
    for key, value in expected.items():
        if value.is_floating_point():
            torch.testing.assert_close(got[key], value, rtol=1e-6, atol=1e-6)
    assert set(got) == set(model.state_dict())  # model.pt keeps the model's keys


def test_ema_is_what_is_saved_and_resume_is_exact(tmp_path, own_signals):
    data = build_datasets(_recipe().data)
    train(_recipe(), data, tmp_path / "straight")
    raw = tmp_path / "raw"
    train(_recipe(ema=None), data, raw)
    # the average never changes the training: same losses; model.pt holds the average, not the raw weights
    assert (tmp_path / "straight" / "curve.csv").read_text() == (raw / "curve.csv").read_text()
    ema_weights = torch.load(tmp_path / "straight" / MODEL_FILE)
    raw_weights = torch.load(raw / MODEL_FILE)
    assert any(not torch.equal(ema_weights[k], raw_weights[k]) for k in raw_weights)

    # stopped by SIGINT after step 7 (the loop checkpoints at the next step boundary), then resumed
    def ctrl_c(step: int) -> None:
        if step == 7:
            signal.raise_signal(signal.SIGINT)

    stopped = tmp_path / "stopped"
    with pytest.raises(signals.Interrupted, match="step 8/12"):
        train(_recipe(), data, stopped, hooks=[ctrl_c])
    state = torch.load(stopped / CHECKPOINT_FILE, weights_only=False)
    assert state["global_step"] == 8 and int(state["ema"]["n_averaged"]) == 5  # steps 4..8 averaged
    train(_recipe(), data, stopped)
    assert (stopped / MODEL_FILE).read_bytes() == (tmp_path / "straight" / MODEL_FILE).read_bytes()

    # the average at the end, by hand: the one checkpointed after step 11, times decay, plus the last raw weights
    # (the raw run's: the average does not change the training)
    last = torch.load(tmp_path / "straight" / CHECKPOINT_FILE, weights_only=False)
    assert last["global_step"] == 11
    for key, value in raw_weights.items():
        if value.is_floating_point():
            expected = 0.8 * last["ema"][f"module.{key}"] + 0.2 * value
            torch.testing.assert_close(ema_weights[key], expected, rtol=1e-5, atol=1e-6)

    # a resume that lost the average's state (restarted from the raw weights) ends elsewhere: the state matters
    lost = tmp_path / "lost"
    with pytest.raises(signals.Interrupted):
        train(_recipe(), data, lost, hooks=[ctrl_c])
    state = torch.load(lost / CHECKPOINT_FILE, weights_only=False)
    state["ema"] = {k: (v.zero_() if k == "n_averaged" else v) for k, v in state["ema"].items()}
    torch.save(state, lost / CHECKPOINT_FILE)
    train(_recipe(), data, lost)
    assert (lost / MODEL_FILE).read_bytes() != (tmp_path / "straight" / MODEL_FILE).read_bytes()
