"""The recipe schema: one fully specified experiment (``data``, ``model``, ``train``, ``eval`` and the seed).

The ``data:`` and ``model.head:`` sections are the discriminated unions of the registered data sets and heads
(``ablate.data``, ``ablate.models.heads``); ``model:`` is ``ablate.models.spec.ModelConfig``. Every key has a
default; a recipe file gives only what it changes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from ablate.core.errors import ConfigError
from ablate.core.schema import Strict, default_tag
from ablate.data import DataConfig
from ablate.data.synthetic import SyntheticData
from ablate.models.spec import ModelConfig, OutputStride
from ablate.models.weights import source_of


class EMAConfig(Strict):
    """An exponential moving average of the weights (BN statistics too) over training, evaluated and saved in place
    of the raw weights: w_ema <- decay * w_ema + (1 - decay) * w after every step past ``start`` (it starts as a
    copy of the weights after step ``start`` + 1). It averages over about 1 / (1 - decay) steps, so the last
    steps' noise counts less. ``train.ema: true`` is short for the defaults."""

    decay: float = Field(default=0.99, gt=0, lt=1)
    start: NonNegativeInt = 0  # steps trained before the average starts

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, data: Any) -> Any:
        return {} if data is True else data


class TrainConfig(Strict):
    steps: PositiveInt = 100
    batch_size: PositiveInt = 8
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    poly_power: float = Field(default=0.9, ge=0)
    # linear learning-rate warm-up over the first steps (0: none, as DeepLab and PSPNet); a small CPU model trained
    # at a high rate from a random init is steadier with it
    warmup_steps: NonNegativeInt = 0
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: PositiveInt = 1  # processes (GPUs) per node; more than 1 trains with DDP
    num_nodes: PositiveInt = 1
    sync_batchnorm: bool = True  # SyncBN across processes when devices x num_nodes > 1 (GPUs only)
    freeze_bn: bool = False  # BN of the backbone in eval mode with frozen affine parameters (DeepLab's OS 8 stage)
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = "32-true"  # bf16-mixed: bf16 autocast, CPU or GPU
    channels_last: bool = True  # NHWC memory format for the model and its inputs (faster convolutions)
    compile: bool = False  # torch.compile the model (pays a compile time up front)
    log_every: PositiveInt = 10
    checkpoint_every: PositiveInt = 100  # steps between resumable checkpoints (trainings/<id>/last.ckpt)
    # steps between validations during training (0: none, only the final evaluation): mIoU of the model as it is,
    # whole image at one scale, written to trainings/<id>/val.csv for the report's training curves
    val_every: NonNegativeInt = 0
    # class weights of the loss: ``median_frequency`` (SegNet, after Eigen & Fergus) weighs class c by
    # median(f) / f(c), f(c) = pixels of c / pixels of the training images that hold c (counted once, cached)
    class_weights: Literal["none", "median_frequency"] = "none"

    ema: EMAConfig | None = None  # a moving average of the weights, evaluated in place of them (None/false: off)

    # learning rate of everything but the backbone (head, decoder, classifier) as a multiple of ``lr``: new layers
    # on a pretrained backbone learn faster than the layers they fine-tune (1: one rate for all)
    head_lr_mult: float = Field(default=1.0, gt=0)

    late_keys: ClassVar[tuple[str, ...]] = ("class_weights", "ema", "head_lr_mult")

    @field_validator("ema", mode="before")
    @classmethod
    def _ema_off(cls, value: Any) -> Any:
        return None if value is False else value


class GaussianCRF(Strict):
    """Smoothness kernel: penalises label changes between nearby pixels (std ``sxy`` pixels, weight ``compat``)."""

    sxy: float = Field(default=3.0, gt=0)
    compat: float = Field(default=3.0, ge=0)


class BilateralCRF(Strict):
    """Appearance kernel: nearby pixels of similar colour (std ``sxy`` pixels, ``srgb`` RGB levels) agree."""

    sxy: float = Field(default=50.0, gt=0)
    srgb: float = Field(default=13.0, gt=0)
    compat: float = Field(default=10.0, ge=0)


class CRFConfig(Strict):
    """Fully connected CRF post-processing (Kraehenbuehl & Koltun 2011, as in DeepLab v1/v2) with pydensecrf.

    ``eval.crf: true`` is short for ``eval.crf: {enabled: true}`` with the defaults below. The unary is
    -log(softmax); the image it sees is the de-normalised uint8 RGB. ``workers``: processes of the pool the CRF
    runs in across images (null = every core; 1 = in this process, no pool); it changes speed, not results.
    """

    enabled: bool = False
    iterations: PositiveInt = 5
    gaussian: GaussianCRF = Field(default_factory=GaussianCRF)
    bilateral: BilateralCRF = Field(default_factory=BilateralCRF)
    workers: PositiveInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, data: Any) -> Any:
        return {"enabled": data} if isinstance(data, bool) else data


class EvalConfig(Strict):
    """Evaluation only: nothing here changes training, so a study axis over ``eval.*`` reuses one trained model.

    Inference: whole image (``tile: null``) or a sliding window of ``tile`` pixels whose neighbours overlap by
    ``overlap`` (a fraction of the tile); each of ``scales`` (image resized by that factor) and, with ``flip``,
    its left-right mirror is predicted, and the class probabilities are averaged at the image's size.
    ``output_stride``: evaluate at another output stride than training's (null = training's) with the same
    weights, the backbone's dilations rebuilt; with ``scale_rates`` the ASPP head's atrous rates follow
    (x train OS / eval OS, as DeepLabv3 doubles its ASPP rates at OS 8). Then the optional dense CRF.
    """

    batch_size: PositiveInt = 16
    output_stride: OutputStride | None = None
    scale_rates: bool = True
    scales: list[float] = Field(default_factory=lambda: [1.0], min_length=1)
    flip: bool = False
    tile: int | None = Field(default=None, ge=16)
    # mIoU is also measured in the band of each of these widths (pixels) around the label boundaries (trimap)
    trimap: list[PositiveInt] = Field(default_factory=lambda: [2, 8])
    overlap: float = Field(default=1 / 3, ge=0, lt=1)
    crf: CRFConfig = Field(default_factory=CRFConfig)
    # the split evaluated (null: the data set's validation split, ``data.val_split``); e.g. ``test``: pick on val,
    # report test, from one training (an eval-only axis ``eval.split: [val, test]`` shows both)
    split: str | None = None

    late_keys: ClassVar[tuple[str, ...]] = ("split",)

    @field_validator("scales")
    @classmethod
    def _check_scales(cls, scales: list[float]) -> list[float]:
        for s in scales:
            if not 0.1 <= s <= 4:
                raise ValueError(f"every scale must be between 0.1 and 4, got {s}")
        return scales


class Recipe(Strict):
    """One fully specified experiment: data, model, training, evaluation and the seed."""

    seed: int = 0
    data: DataConfig = Field(default_factory=SyntheticData)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _batch_fits_the_data(self) -> Recipe:
        """A global batch larger than the training set cannot make one step (the sampler draws without repeats)."""
        t, d = self.train, self.data
        size = getattr(d, "num_train", None) or getattr(d, "max_train", None)
        if size is not None and t.batch_size * t.devices * t.num_nodes > size:
            raise ValueError(
                f"train.batch_size {t.batch_size} x {t.devices * t.num_nodes} process(es) is more than the {size} "
                f"training images (data.{'num_train' if hasattr(d, 'num_train') else 'max_train'}); lower it or use "
                "more images"
            )
        return self

    @model_validator(mode="after")
    def _eval_split_exists(self) -> Recipe:
        if self.eval.split is not None:
            try:
                self.data.for_eval(self.eval.split)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _normalisation_of_the_weights(self) -> Recipe:
        """Inputs normalised as the backbone's weights were trained: a named weights source sets data.mean/std; a
        recipe that gives others is refused (feeding ImageNet mean/std to a net trained on [-1, 1] is silent)."""
        source = source_of(self.model.weights)
        if source is None:
            return self
        for key in ("mean", "std"):
            wanted = getattr(source, key)
            given = getattr(self.data, key)
            if key in self.data.model_fields_set and tuple(given) != tuple(wanted):
                raise ValueError(
                    f"data.{key}: {tuple(given)} is not the normalisation model.weights '{source.name}' was trained "
                    f"with {wanted}: leave data.{key} out (it follows the weights)"
                )
            setattr(self.data, key, tuple(wanted))
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_data_name(cls, data: Any) -> Any:
        """A ``data:`` block without ``name`` is the synthetic set (recipes written before the real data sets)."""
        return default_tag(data, "data", "name", "synthetic")
