"""Recipes and studies: pydantic models, YAML loading with one-line errors, dotted overrides.

Torch-free: ``ablate plan`` and ``--help`` import this module and nothing heavy.
"""

from __future__ import annotations

import copy
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from ablate.errors import ConfigError, did_you_mean
from ablate.models.params import HEAD_PARAMS, HeadParams, NoneParams, field_type


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------------- recipe
class SyntheticData(_Strict):
    """The embedded synthetic data set (see ``ablate.data.synthetic``)."""

    name: Literal["synthetic"] = "synthetic"
    image_size: int = Field(default=96, ge=32, le=1024)
    num_train: PositiveInt = 256
    num_val: PositiveInt = 64
    seed: int = 0
    num_workers: int = Field(default=0, ge=0)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _FolderData(_Strict):
    """A real data set read from a local root folder (see ``ablate.data.layout`` for the folder layouts).

    ``root``: the folder; when not given, the environment variable ``ABLATE_<VOC|CITYSCAPES|ADE20K>_ROOT``, else
    ``$ABLATE_DATA_ROOT/<voc|cityscapes|ade20k>``. Training augmentation as in the papers: random scale in
    [scale_min, scale_max], pad + random crop of crop_size, random left-right flip, mean/std normalisation."""

    root: str | None = None
    crop_size: PositiveInt = 513
    scale_min: float = Field(default=0.5, gt=0)
    scale_max: float = Field(default=2.0, gt=0)
    flip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    max_train: PositiveInt | None = None  # first N training images only (smoke tests, reduced runs)
    max_val: PositiveInt | None = None  # first N validation images only
    num_workers: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _scale_order(self) -> _FolderData:
        if self.scale_min > self.scale_max:
            raise ValueError(f"scale_min {self.scale_min} > scale_max {self.scale_max}")
        return self


class VOCData(_FolderData):
    """PASCAL VOC 2012 (+ SBD for ``trainaug``): 21 classes; DeepLab's crop 513."""

    name: Literal["voc"] = "voc"
    train_split: Literal["trainaug", "train", "val"] = "trainaug"
    val_split: Literal["val", "train"] = "val"
    crop_size: PositiveInt = 513


class CityscapesData(_FolderData):
    """Cityscapes gtFine, 19 train ids; DeepLabv3's crop 769."""

    name: Literal["cityscapes"] = "cityscapes"
    train_split: Literal["train", "val"] = "train"
    val_split: Literal["val", "train"] = "val"
    crop_size: PositiveInt = 769


class ADE20KData(_FolderData):
    """ADE20K SceneParsing (ADEChallengeData2016), 150 classes; PSPNet's crop 473."""

    name: Literal["ade20k"] = "ade20k"
    train_split: Literal["training", "validation"] = "training"
    val_split: Literal["validation", "training"] = "validation"
    crop_size: PositiveInt = 473


DataConfig = Annotated[SyntheticData | VOCData | CityscapesData | ADE20KData, Field(discriminator="name")]
DATA_CONFIGS: dict[str, type[BaseModel]] = {
    "synthetic": SyntheticData,
    "voc": VOCData,
    "cityscapes": CityscapesData,
    "ade20k": ADE20KData,
}


class DecoderConfig(_Strict):
    """DeepLabv3+ decoder: low-level 1x1 -> ``low_level_channels``, concat, 2 x [3x3, ``channels``]."""

    enabled: bool = False
    low_level_channels: PositiveInt = 48
    channels: PositiveInt = 256


class ModelConfig(_Strict):
    backbone: str = "test_resnet"
    pretrained: bool = False
    weights: str | None = None  # local weights file for the backbone (no downloads at run time)
    output_stride: Literal[8, 16, 32] = 16
    head: HeadParams = Field(default_factory=NoneParams)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    # last stage of the backbone (see ablate/models/backbone.py)
    multi_grid: list[PositiveInt] | None = None  # DeepLabv3 unit rates: dilation = unit x (32 / output_stride)
    hdc_rates: list[PositiveInt] | None = None  # HDC: the dilations themselves, cycled; not with multi_grid
    deformable_blocks: int = Field(default=0, ge=0)  # deformable 3x3 convs in the last N blocks (Dai et al.)
    deformable_modulated: bool = False  # DCNv2 modulation of those deformable convs
    # PSPNet's auxiliary loss: an FCN head (3x3 conv-BN-ReLU, dropout, 1x1) on the stage before the last, its
    # cross-entropy added with this weight during training (PSPNet: 0.4); 0 = no auxiliary head
    aux_loss: float = Field(default=0.0, ge=0)


class TrainConfig(_Strict):
    steps: PositiveInt = 100
    batch_size: PositiveInt = 8
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    poly_power: float = Field(default=0.9, ge=0)
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


class GaussianCRF(_Strict):
    """Smoothness kernel: penalises label changes between nearby pixels (std ``sxy`` pixels, weight ``compat``)."""

    sxy: float = Field(default=3.0, gt=0)
    compat: float = Field(default=3.0, ge=0)


class BilateralCRF(_Strict):
    """Appearance kernel: nearby pixels of similar colour (std ``sxy`` pixels, ``srgb`` RGB levels) agree."""

    sxy: float = Field(default=50.0, gt=0)
    srgb: float = Field(default=13.0, gt=0)
    compat: float = Field(default=10.0, ge=0)


class CRFConfig(_Strict):
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


class EvalConfig(_Strict):
    """Evaluation only: nothing here changes training, so a study axis over ``eval.*`` reuses one trained model.

    Inference: whole image (``tile: null``) or a sliding window of ``tile`` pixels whose neighbours overlap by
    ``overlap`` (a fraction of the tile); each of ``scales`` (image resized by that factor) and, with ``flip``,
    its left-right mirror is predicted, and the class probabilities are averaged at the image's size.
    ``output_stride``: evaluate at another output stride than training's (null = training's) with the same
    weights, the backbone's dilations rebuilt; with ``scale_rates`` the ASPP head's atrous rates follow
    (x train OS / eval OS, as DeepLabv3 doubles its ASPP rates at OS 8). Then the optional dense CRF.
    """

    batch_size: PositiveInt = 16
    output_stride: Literal[8, 16, 32] | None = None
    scale_rates: bool = True
    scales: list[float] = Field(default_factory=lambda: [1.0], min_length=1)
    flip: bool = False
    tile: int | None = Field(default=None, ge=16)
    overlap: float = Field(default=1 / 3, ge=0, lt=1)
    crf: CRFConfig = Field(default_factory=CRFConfig)

    @field_validator("scales")
    @classmethod
    def _check_scales(cls, scales: list[float]) -> list[float]:
        for s in scales:
            if not 0.1 <= s <= 4:
                raise ValueError(f"every scale must be between 0.1 and 4, got {s}")
        return scales


class Recipe(_Strict):
    """One fully specified experiment: data, model, training, evaluation and the seed."""

    seed: int = 0
    data: DataConfig = Field(default_factory=SyntheticData)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_data_name(cls, data: Any) -> Any:
        """A ``data:`` block without ``name`` is the synthetic set (recipes written before the real data sets)."""
        if isinstance(data, dict) and isinstance(data.get("data"), dict) and "name" not in data["data"]:
            data = {**data, "data": {"name": "synthetic", **data["data"]}}
        return data


# ---------------------------------------------------------------------------------------------------- study
class TableConfig(_Strict):
    rows: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    metric: Literal["miou", "pixel_acc", "mean_acc", "fwiou"] = "miou"

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("rows", "columns"):
                if isinstance(data.get(key), str):
                    data[key] = [data[key]]
        return data


class ScaleRule(_Strict):
    """Coupled axes: values of ``scale`` are written as they apply at ``with == reference`` and are scaled by
    ``reference / value of with`` in every run (DeepLab's ASPP rates (6, 12, 18) at output stride 16 become
    (12, 24, 36) at 8). Scaled numbers are rounded to integers, at least 1."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    scale: str
    with_: str = Field(alias="with")
    reference: float = Field(gt=0)


class ExecutorConfig(_Strict):
    """Where a study's jobs run: ``local`` (this machine) or ``slurm`` (one job per training, via submitit).

    On SLURM each job is a DDP job (Lightning Fabric) with one task per GPU (``gpus_per_node`` tasks per node, at
    least 1); the recipe's ``train.devices`` must equal the tasks per node and ``train.num_nodes`` the nodes. On
    preemption or time-out the job is requeued and resumes from its checkpoint."""

    kind: Literal["local", "slurm"] = "local"
    max_parallel: PositiveInt | None = None  # local: jobs at once (default: one per free GPU set, 1 on CPU)
    partition: str | None = None
    nodes: PositiveInt = 1
    gpus_per_node: int = Field(default=0, ge=0)
    cpus_per_task: PositiveInt = 2
    time_min: PositiveInt = 60
    mem_gb: float | None = Field(default=None, gt=0)
    array_parallelism: PositiveInt = 32
    sbatch: dict[str, Any] = Field(default_factory=dict)  # extra sbatch options, e.g. {account: x, qos: high}
    setup: list[str] = Field(default_factory=list)  # shell lines run first in each job (module load ...)
    poll_s: float = Field(default=5.0, gt=0)


class WandbConfig(_Strict):
    """Where runs are logged on W&B (see ``ablate.study.wandb_sink``). Not part of any run's identity: a run's id
    does not change with it. ``auto``: online when an API key is configured, else offline (files only)."""

    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str | None = None  # default "ablate"; the group is always the study's name
    entity: str | None = None


class ReferenceRow(_Strict):
    """One published number: the paper's row (and column, for tables laid out as a grid) and the axis values of
    the configuration that reproduces it (``where``; empty when this study cannot reproduce it, e.g. a column
    whose setting ablate does not have: the row is then shown with its published number only)."""

    label: str
    column: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    miou: float | None = None
    pixel_acc: float | None = None
    mean_acc: float | None = None
    fwiou: float | None = None


class Reference(_Strict):
    """Published numbers of the table a study reproduces (in %, as printed in the paper)."""

    paper: str  # authors, title, arXiv id
    table: str  # e.g. "Table 5"
    dataset: str = ""  # e.g. "PASCAL VOC 2012 val"
    metric: Literal["miou", "pixel_acc", "mean_acc", "fwiou"] = "miou"
    note: str = ""  # setup differences, reconstructed check marks, ...
    rows: list[ReferenceRow] = Field(min_length=1)


class Study(_Strict):
    """A recipe plus the axes to vary. Axis keys are dotted paths into the recipe."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    recipe: str
    set: dict[str, Any] = Field(default_factory=dict)  # fixed overrides applied to every run
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    zip: list[list[str]] = Field(default_factory=list)  # groups of axes whose values move together
    rules: list[ScaleRule] = Field(default_factory=list)
    include: list[dict[str, Any]] = Field(default_factory=list)  # extra combinations (other axes: baseline)
    exclude: list[dict[str, Any]] = Field(default_factory=list)  # combinations matching all given values
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    baseline: dict[str, Any] = Field(default_factory=dict)
    table: TableConfig = Field(default_factory=TableConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    reference: Reference | None = None  # the paper's published numbers (ablate.study.reference joins them)
    # recipe overrides of the reduced run (CPU-sized, embedded synthetic data), applied after ``set`` when the
    # study is loaded with ``--set reduced=true``
    reduced: dict[str, Any] = Field(default_factory=dict)


REDUCED_KEY = "reduced"  # ``--set reduced=true``: apply the study's ``reduced:`` block


# ---------------------------------------------------------------------------------------------------- errors
def _model_at(annotation: Any) -> type[BaseModel] | dict[str, type[BaseModel]] | None:
    """The pydantic model (or tag -> model map of a discriminated union) an annotation holds."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_at(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        tags = {}
        for m in members:
            name_field = m.model_fields.get("name")
            if name_field is not None and typing.get_origin(name_field.annotation) is Literal:
                tags[typing.get_args(name_field.annotation)[0]] = m
        return tags or None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _format_error(err: dict[str, Any], root: type[BaseModel]) -> tuple[str, str]:
    """(dotted key, message) for one pydantic error, with allowed values and a did-you-mean."""
    node: Any = root
    path: list[str] = []
    head = ""  # "head 'ppm': " once the path enters a head's parameters
    for part in err["loc"]:
        if isinstance(node, dict) and part in node:  # discriminated union tag: not a key the user wrote
            node = node[part]
            head = f"{path[-1] if path else 'section'} '{part}': "
            continue
        if isinstance(part, int):
            path[-1] = f"{path[-1]}[{part}]" if path else f"[{part}]"
            node = None
            continue
        parent = node
        path.append(str(part))
        if isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            node = _model_at(node.model_fields[part].annotation)
        else:
            node = None
    key = ".".join(path) or "<top>"
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        allowed = list(parent.model_fields) if isinstance(parent, type) else []
        scope = f" for {head[:-2]}" if head else ""
        return key, (f"unknown key '{path[-1]}'{did_you_mean(path[-1], allowed)}; allowed{scope}: {', '.join(allowed)}")
    if kind == "missing":
        return key, "required key is missing"
    if (
        head
        and isinstance(parent, type)
        and issubclass(parent, BaseModel)
        and path[-1].split("[")[0] in parent.model_fields
    ):
        field = path[-1].split("[")[0]
        expected = field_type(parent.model_fields[field])
        return key, f"{head}{field}: {err['msg']} (got {value!r}); allowed: {expected}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = list(HEAD_PARAMS)
        if isinstance(node, dict):
            tags = list(node)
        got = (err.get("ctx") or {}).get("tag", value)
        return key + ".name", f"unknown name {got!r}{did_you_mean(got, tags)}; allowed: {', '.join(tags)}"
    return key, f"{err['msg']} (got {value!r})"


def validate(cls: type[BaseModel], data: Any, source: str, prefix: str = "") -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        key, msg = _format_error(exc.errors()[0], cls)
        raise ConfigError(f"{source}: {prefix}{key}: {msg}") from None


# ---------------------------------------------------------------------------------------------------- loading
def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(d, "model.head.rates", [6, 12])``; intermediate mappings are created as needed."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise KeyError(part)
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def get_dotted(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        node = node[part]
    return node


def apply_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys. Setting a section's ``name`` (``model.head.name: ppm``) to another value swaps the section
    for that kind: its other keys are dropped (they belonged to the old kind) and take the new kind's defaults, and
    overrides of keys inside it apply on top, whatever their order."""
    out = copy.deepcopy(base)
    names = [k for k in overrides if k.endswith(".name")]
    for key in names + [k for k in overrides if k not in names]:
        value = overrides[key]
        if key in names:
            try:
                section = get_dotted(out, key.rsplit(".", 1)[0])
            except (KeyError, TypeError):
                section = None
            if isinstance(section, dict) and section.get("name") != value:
                section.clear()
        set_dotted(out, key, value)
    return out


def load_recipe(path: str | Path) -> Recipe:
    return validate(Recipe, load_yaml(path), str(path))


class LoadedStudy(BaseModel):
    """A validated study with its recipe (as a plain dict, so axes can be applied) and where each came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    path: str
    study: Study
    recipe_path: str
    recipe: dict[str, Any]

    overrides: dict[str, Any] = {}

    def source_of(self, key: str) -> str:
        """'file: key' that sets a recipe key (or a key above or below it), for errors about resolved runs."""

        def related(k: str) -> bool:
            return k == key or k.startswith(key + ".") or key.startswith(k + ".")

        for k in self.overrides:
            if related(k):
                return f"--set {k}"
        for k in self.study.axes:
            if related(k):
                return f"{self.path}: axes.{k}"
        if self.overrides.get(REDUCED_KEY):
            for k in self.study.reduced:
                if related(k):
                    return f"{self.path}: reduced.{k}"
        for k in self.study.set:
            if related(k):
                return f"{self.path}: set.{k}"
        return f"{self.recipe_path}: {key}"


def _check_override(base: dict[str, Any], key: str, value: Any, source: str) -> None:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"{source}: keys must be dotted recipe paths such as 'model.output_stride'")
    try:
        merged = apply_overrides(base, {key: value})
    except KeyError as exc:
        raise ConfigError(f"{source}: '{exc.args[0]}' in '{key}' is a value, not a section") from None
    try:
        Recipe.model_validate(merged)
    except ValidationError as exc:
        err_key, msg = _format_error(exc.errors()[0], Recipe)
        raise ConfigError(f"{source}: {msg} (recipe key {err_key})") from None


def _check_block(base: dict[str, Any], block: dict[str, Any], where: str, sep: str = ".") -> None:
    """Check a block of overrides key by key, with the block's section swaps (``data.name: voc``) applied first,
    so ``{data.name: voc, data.root: ...}`` checks ``data.root`` against the VOC section."""
    names = {k: v for k, v in block.items() if k.endswith(".name")}
    for key, value in names.items():
        _check_override(base, key, value, f"{where}{sep}{key}")
    swapped = apply_overrides(base, names)
    for key, value in block.items():
        if key not in names:
            _check_override(swapped, key, value, f"{where}{sep}{key}")


def _not_axis(study: Study, source: str, where: str, key: str) -> ConfigError:
    return ConfigError(
        f"{source}: {where}: '{key}' is not an axis{did_you_mean(key, study.axes)}; "
        f"axes: {', '.join(study.axes) or 'none'}"
    )


def scale_value(value: Any, factor: float) -> Any:
    """Multiply a number or a list of numbers by ``factor``; results rounded to integers (at least 1)."""
    if isinstance(value, list | tuple):
        return [scale_value(v, factor) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"cannot scale {value!r}: rules scale numbers or lists of numbers")
    return max(1, round(value * factor))


def _check_grid(study: Study, base: dict[str, Any], source: str) -> None:
    seen: set[str] = set()
    for i, group in enumerate(study.zip):
        for key in group:
            if key not in study.axes:
                raise _not_axis(study, source, f"zip[{i}]", key)
            if key in seen:
                raise ConfigError(f"{source}: zip[{i}]: '{key}' is already zipped with other axes")
            seen.add(key)
        lengths = {key: len(study.axes[key]) for key in group}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
            raise ConfigError(f"{source}: zip[{i}]: zipped axes need as many values each ({shown})")
    for i, rule in enumerate(study.rules):
        if rule.scale not in study.axes:
            raise _not_axis(study, source, f"rules[{i}].scale", rule.scale)
        withs = study.axes.get(rule.with_)
        if withs is None:
            try:
                withs = [get_dotted(base, rule.with_)]
            except (KeyError, TypeError):
                raise _not_axis(study, source, f"rules[{i}].with", rule.with_) from None
        for w in withs:
            if isinstance(w, bool) or not isinstance(w, int | float) or w <= 0:
                raise ConfigError(f"{source}: rules[{i}].with: values of '{rule.with_}' must be positive numbers")
            for value in study.axes[rule.scale]:
                try:
                    scaled = scale_value(value, rule.reference / w)
                except TypeError as exc:
                    raise ConfigError(f"{source}: rules[{i}].scale: {exc}") from None
                _check_override(base, rule.scale, scaled, f"{source}: rules[{i}]")
    for where, entries in (("include", study.include), ("exclude", study.exclude)):
        for i, entry in enumerate(entries):
            for key, value in entry.items():
                if key not in study.axes:
                    raise _not_axis(study, source, f"{where}[{i}]", key)
                if where == "include":
                    _check_override(base, key, value, f"{source}: include[{i}].{key}")


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> LoadedStudy:
    """Load and validate a study, its recipe, its fixed ``set:`` overrides, every axis value and the CLI's
    ``overrides`` (``--set``). Raises ``ConfigError`` with one line naming the file and the key."""
    path = Path(path)
    raw = load_yaml(path)
    study = validate(Study, raw, str(path))
    recipe_path = (path.parent / study.recipe).resolve()
    if not recipe_path.is_file():
        raise ConfigError(f"{path}: recipe: file not found: {study.recipe} (looked for {recipe_path})")
    try:
        shown = recipe_path.relative_to(Path.cwd())
    except ValueError:
        shown = recipe_path
    recipe_raw = load_yaml(recipe_path)
    recipe_wandb = recipe_raw.pop("wandb", None)  # logging settings, not part of the recipe (nor of run ids)
    if recipe_wandb is not None and "wandb" not in raw:
        study.wandb = validate(WandbConfig, recipe_wandb, str(shown), prefix="wandb.")
    validate(Recipe, recipe_raw, str(shown))
    base = apply_overrides(recipe_raw, {})
    _check_block(base, study.set, f"{path}: set")
    base = apply_overrides(base, study.set)
    overrides = dict(overrides or {})
    reduced = overrides.pop(REDUCED_KEY, False)
    if not isinstance(reduced, bool):
        raise ConfigError(f"--set {REDUCED_KEY}={reduced}: expected true or false")
    _check_block(base, study.reduced, f"{path}: reduced")
    if reduced:
        if not study.reduced:
            raise ConfigError(f"--set {REDUCED_KEY}=true: {path} has no 'reduced:' block")
        base = apply_overrides(base, study.reduced)
    _check_block(base, overrides, "--set", sep=" ")
    base = apply_overrides(base, overrides or {})
    for key, values in study.axes.items():
        if not values:
            raise ConfigError(f"{path}: axes.{key}: an axis needs at least one value")
        for value in values:
            _check_override(base, key, value, f"{path}: axes.{key}")
    _check_grid(study, base, str(path))
    for key in study.baseline:
        if key not in study.axes:
            raise _not_axis(study, str(path), f"baseline.{key}", key)
    for where, keys in (("table.rows", study.table.rows), ("table.columns", study.table.columns)):
        for key in keys:
            if key not in study.axes and key != "seed":
                raise _not_axis(study, str(path), where, key)
    if study.reference is not None:
        metric = study.reference.metric
        for i, row in enumerate(study.reference.rows):
            for key, value in row.where.items():
                if key not in study.axes:
                    raise _not_axis(study, str(path), f"reference.rows[{i}].where", key)
                if value not in study.axes[key]:
                    raise ConfigError(
                        f"{path}: reference.rows[{i}].where.{key}: {value!r} is not a value of that axis; "
                        f"values: {study.axes[key]}"
                    )
            if getattr(row, metric) is None:
                raise ConfigError(f"{path}: reference.rows[{i}]: no published '{metric}' (reference.metric)")
    return LoadedStudy(
        path=str(path),
        study=study,
        recipe_path=str(shown),
        recipe=base,
        overrides={**overrides, **({REDUCED_KEY: True} if reduced else {})},
    )
