"""Recipes and studies: pydantic models, YAML loading with one-line errors, dotted overrides.

Torch-free: ``ablate plan`` and ``--help`` import this module and nothing heavy.
"""

from __future__ import annotations

import copy
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from ablate.errors import ConfigError, did_you_mean
from ablate.models.params import HEAD_PARAMS, HeadParams, NoneParams


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------------- recipe
class DataConfig(_Strict):
    """The embedded synthetic data set (see ``ablate.data.synthetic``)."""

    name: Literal["synthetic"] = "synthetic"
    image_size: int = Field(default=96, ge=32, le=1024)
    num_train: PositiveInt = 256
    num_val: PositiveInt = 64
    seed: int = 0
    num_workers: int = Field(default=0, ge=0)


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


class TrainConfig(_Strict):
    steps: PositiveInt = 100
    batch_size: PositiveInt = 8
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0)
    poly_power: float = Field(default=0.9, ge=0)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: PositiveInt = 1
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = "32-true"
    log_every: PositiveInt = 10


class EvalConfig(_Strict):
    batch_size: PositiveInt = 16


class Recipe(_Strict):
    """One fully specified experiment: data, model, training, evaluation and the seed."""

    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


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


class WandbConfig(_Strict):
    """Where runs are logged on W&B (see ``ablate.study.wandb_sink``). Not part of any run's identity: a run's id
    does not change with it. ``auto``: online when an API key is configured, else offline (files only)."""

    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str | None = None  # default "ablate"; the group is always the study's name
    entity: str | None = None


class Study(_Strict):
    """A recipe plus the axes to vary. Axis keys are dotted paths into the recipe."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    recipe: str
    set: dict[str, Any] = Field(default_factory=dict)  # fixed overrides applied to every run
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    baseline: dict[str, Any] = Field(default_factory=dict)
    table: TableConfig = Field(default_factory=TableConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)


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
    for part in err["loc"]:
        if isinstance(node, dict) and part in node:  # discriminated union tag: not a key the user wrote
            node = node[part]
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
        return key, (f"unknown key '{path[-1]}'{did_you_mean(path[-1], allowed)}; allowed: {', '.join(allowed)}")
    if kind == "missing":
        return key, "required key is missing"
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
    out = copy.deepcopy(base)
    for key, value in overrides.items():
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
    for key, value in study.set.items():
        _check_override(base, key, value, f"{path}: set.{key}")
    base = apply_overrides(base, study.set)
    for key, value in (overrides or {}).items():
        _check_override(base, key, value, f"--set {key}")
    base = apply_overrides(base, overrides or {})
    for key, values in study.axes.items():
        if not values:
            raise ConfigError(f"{path}: axes.{key}: an axis needs at least one value")
        for value in values:
            _check_override(base, key, value, f"{path}: axes.{key}")
    for key in study.baseline:
        if key not in study.axes:
            raise ConfigError(
                f"{path}: baseline.{key}: not an axis{did_you_mean(key, study.axes)}; "
                f"axes: {', '.join(study.axes) or 'none'}"
            )
    for where, keys in (("table.rows", study.table.rows), ("table.columns", study.table.columns)):
        for key in keys:
            if key not in study.axes and key != "seed":
                raise ConfigError(
                    f"{path}: {where}: '{key}' is not an axis{did_you_mean(key, study.axes)}; "
                    f"axes: {', '.join(study.axes) or 'none'}"
                )
    return LoadedStudy(
        path=str(path), study=study, recipe_path=str(shown), recipe=base, overrides=dict(overrides or {})
    )
