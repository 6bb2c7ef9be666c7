"""Load a study and check everything that would otherwise fail inside a run, before anything runs: the recipe, every
axis value, the grid language (zip, rules, include/exclude, baseline), the table layout, the published reference and
the command line's ``--set``. Each problem is one ``ConfigError`` line naming the file and the key. Torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ablate.config.errors import validate
from ablate.config.overrides import apply_overrides, check_block, check_override, get_dotted
from ablate.config.schema import Recipe
from ablate.config.yaml_io import load_yaml
from ablate.core import plugins
from ablate.core.errors import ConfigError, did_you_mean
from ablate.core.text import format_value
from ablate.study.spec import REDUCED_KEY, Study, WandbConfig


class LoadedStudy(BaseModel):
    """A validated study with its recipe (as a plain dict, so axes can be applied) and where each came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    path: str
    study: Study
    recipe_path: str
    recipe: dict[str, Any]

    overrides: dict[str, Any] = {}
    recipe_arg: str | None = None  # ``--recipe``: the recipe that replaced the study's
    seeds_arg: list[int] | None = None  # ``--seeds``: the seeds that replaced the study's

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


def _not_axis(study: Study, source: str, where: str, key: str) -> ConfigError:
    return ConfigError(
        f"{source}: {where}: '{key}' is not an axis{did_you_mean(key, study.axes)}; "
        f"axes: {', '.join(study.axes) or 'none'}"
    )


def _not_a_value(study: Study, source: str, where: str, key: str, value: Any) -> ConfigError:
    values = ", ".join(format_value(v) for v in study.axes[key])
    return ConfigError(f"{source}: {where}: {format_value(value)} is not a value of axis {key}; its values: {values}")


def scale_value(value: Any, factor: float) -> Any:
    """Multiply a number or a list of numbers by ``factor``; results rounded to integers (at least 1)."""
    if isinstance(value, list | tuple):
        return [scale_value(v, factor) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"cannot scale {value!r}: rules scale numbers or lists of numbers")
    return max(1, round(value * factor))


def rule_axis(study: Study, key: str) -> tuple[str, str] | None:
    """(axis, key inside its values) of a rule's ``scale``: the axis itself (``model.head.rates``, inner ""), or an
    axis above it whose values are sections (``model.head`` with values ``{name: aspp, rates: [...]}``, inner
    ``rates``: scaled in the values that have it); None when neither."""
    if key in study.axes:
        return key, ""
    for axis, values in study.axes.items():
        if key.startswith(axis + ".") and any(isinstance(v, dict) for v in values):
            return axis, key[len(axis) + 1 :]
    return None


def scale_in(value: Any, inner: str, factor: float) -> Any:
    """``value`` scaled at ``inner`` (a dotted key inside a section; "" for the value itself); a section without
    that key is left as it is."""
    if not inner:
        return scale_value(value, factor)
    head, _, rest = inner.partition(".")
    if not isinstance(value, dict) or head not in value:
        return value
    return {**value, head: scale_in(value[head], rest, factor)}


def _check_axes(study: Study, base: dict[str, Any], source: str) -> None:
    zipped = {key for group in study.zip for key in group}  # zipped axes repeat values; their tuples may not
    for key, values in study.axes.items():
        if not values:
            raise ConfigError(f"{source}: axes.{key}: an axis needs at least one value")
        for i, value in enumerate(values):
            if key not in zipped and value in values[:i]:
                raise ConfigError(
                    f"{source}: axes.{key}: {format_value(value)} is given twice; every value of an axis is a "
                    "different configuration (remove the repeat)"
                )
            check_override(base, key, value, f"{source}: axes.{key}")


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
        tuples = list(zip(*(study.axes[key] for key in group), strict=True))
        for j, values in enumerate(tuples):
            if values in tuples[:j]:
                shown = ", ".join(f"{k}={format_value(v)}" for k, v in zip(group, values, strict=True))
                raise ConfigError(f"{source}: zip[{i}]: ({shown}) is given twice (remove the repeat)")
    for i, rule in enumerate(study.rules):
        if rule_axis(study, rule.scale) is None:
            raise _not_axis(study, source, f"rules[{i}].scale", rule.scale)
        if rule.feature_map is not None or rule.scale not in study.axes:  # checked when the grid expands
            continue
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
                check_override(base, rule.scale, scaled, f"{source}: rules[{i}]")
    for where, entries in (("include", study.include), ("exclude", study.exclude)):
        for i, entry in enumerate(entries):
            for key, value in entry.items():
                if key not in study.axes:
                    raise _not_axis(study, source, f"{where}[{i}]", key)
                if value not in study.axes[key]:
                    raise _not_a_value(study, source, f"{where}[{i}].{key}", key, value)
    if study.adaptive is not None and not study.baseline:
        raise ConfigError(f"{source}: seeds: adaptive seeds are added where a row's comparison with the baseline is "
                          "undecided; give the study a baseline (or a list of seeds)")  # fmt: skip
    if study.adaptive is not None and study.baseline and set(study.baseline) != set(study.axes):
        raise ConfigError(f"{source}: seeds: adaptive seeds pair every row with one baseline; give a value for every "
                          f"axis in baseline (missing: {', '.join(sorted(set(study.axes) - set(study.baseline)))})")
    for key, value in study.baseline.items():
        if key not in study.axes:
            raise _not_axis(study, source, f"baseline.{key}", key)
        if value not in study.axes[key]:
            raise _not_a_value(study, source, f"baseline.{key}", key, value)
    metric = study.table.metric
    if metric.startswith("trimap:"):
        widths = get_dotted(Recipe.model_validate(base).model_dump(mode="json"), "eval.trimap")
        if int(metric.split(":")[1]) not in widths:
            raise ConfigError(
                f"{source}: table.metric: {metric} is not measured; eval.trimap measures the bands "
                f"{', '.join(map(str, widths))} (add the width there or choose one of them)"
            )
    for where, keys in (("table.rows", study.table.rows), ("table.columns", study.table.columns)):
        for key in keys:
            if key not in study.axes and key != "seed":
                raise _not_axis(study, source, where, key)


def _check_reference(study: Study, source: str) -> None:
    if study.reference is None:
        return
    metric = study.reference.metric
    for i, row in enumerate(study.reference.rows):
        for key, value in row.where.items():
            if key not in study.axes:
                raise _not_axis(study, source, f"reference.rows[{i}].where", key)
            if value not in study.axes[key]:
                raise _not_a_value(study, source, f"reference.rows[{i}].where.{key}", key, value)
        if getattr(row, metric) is None:
            raise ConfigError(f"{source}: reference.rows[{i}]: no published '{metric}' (reference.metric)")
    checked = [("reference.scope", study.reference.scope)]
    for i, contrast in enumerate(study.reference.contrasts):
        checked += [(f"reference.contrasts[{i}].a", contrast.a), (f"reference.contrasts[{i}].b", contrast.b)]
    for where, values in checked:
        for key, value in values.items():
            if key not in study.axes:
                raise _not_axis(study, source, where, key)
            if value not in study.axes[key]:
                raise _not_a_value(study, source, f"{where}.{key}", key, value)


def grid_keys(study: Study) -> dict[str, str]:
    """The recipe keys the study's grid decides, with where: ``{key: "axis" | "rule" | "baseline" | ...}``."""
    keys = {key: "axis" for key in study.axes}
    for i, rule in enumerate(study.rules):
        if rule.with_:  # (a feature_map rule follows --set of the crop or the stride: that is what it is for)
            keys.setdefault(rule.with_, f"rules[{i}].with")
    return keys


def _check_cli_overrides(study: Study, overrides: dict[str, Any], source: str) -> None:
    """``--set`` changes every run: on a key the grid decides it would be overwritten by each run (or, on a coupled
    key, change what the rule computes), so it is refused rather than silently doing nothing."""
    decided = grid_keys(study)
    for key in overrides:
        for grid_key, what in decided.items():
            if key == grid_key or key.startswith(grid_key + ".") or grid_key.startswith(key + "."):
                how = "an axis" if what == "axis" else f"used by {what}"
                raise ConfigError(
                    f"--set {key}: '{grid_key}' is {how} of {source}, so every run sets it itself; change its "
                    f"values in the study's axes (or remove --set {key})"
                )


def load_study(path: str | Path, overrides: dict[str, Any] | None = None, recipe: str | Path | None = None,
               seeds: list[int] | None = None) -> LoadedStudy:  # fmt: skip
    """Load and validate a study, its recipe, its fixed ``set:`` overrides, every axis value and the CLI's
    ``overrides`` (``--set``). ``recipe`` (``--recipe``, a path from the working folder) replaces the study's recipe:
    the same grid on another recipe, e.g. a paper study's GPU recipe; ``seeds`` (``--seeds``) replaces its seeds.
    Raises ``ConfigError`` with one line naming the file and the key."""
    path = Path(path)
    raw = load_yaml(path)
    # plugins first: what they register (heads, data sets, executors) is then validated like a built-in
    plugins.load_entry_points()
    plugins.load(raw.get("plugins"), path.parent, f"{path}: plugins")
    study = validate(Study, raw, str(path))
    recipe_path = (path.parent / study.recipe).resolve() if recipe is None else Path(recipe).resolve()
    if recipe is not None and not recipe_path.is_file():
        raise ConfigError(f"--recipe {recipe}: file not found")
    if not recipe_path.is_file():
        raise ConfigError(f"{path}: recipe: file not found: {study.recipe} (looked for {recipe_path})")
    try:
        shown = recipe_path.relative_to(Path.cwd())
    except ValueError:
        shown = recipe_path
    recipe_raw = load_yaml(recipe_path)
    recipe_wandb = recipe_raw.pop("wandb", None)  # logging settings, not part of the recipe (nor of run ids)
    plugins.load(recipe_raw.pop("plugins", None), recipe_path.parent, f"{shown}: plugins")  # code, not a setting
    if recipe_wandb is not None and "wandb" not in raw:
        study.wandb = validate(WandbConfig, recipe_wandb, str(shown), prefix="wandb.")
    validate(Recipe, recipe_raw, str(shown))
    base = apply_overrides(recipe_raw, {})
    check_block(base, study.set, f"{path}: set")
    base = apply_overrides(base, study.set)
    overrides = dict(overrides or {})
    reduced = overrides.pop(REDUCED_KEY, False)
    if not isinstance(reduced, bool):
        raise ConfigError(f"--set {REDUCED_KEY}={reduced}: expected true or false")
    check_block(base, study.reduced, f"{path}: reduced")
    if reduced:
        if not study.reduced:
            raise ConfigError(f"--set {REDUCED_KEY}=true: {path} has no 'reduced:' block")
        base = apply_overrides(base, study.reduced)
        if study.reduced_seeds is not None:
            study = study.model_copy(update={"seeds": list(study.reduced_seeds)})
    if seeds is not None and study.adaptive is not None:  # the initial seeds; the added ones follow them
        spec = study.adaptive
        shown = f"--seeds {','.join(map(str, seeds))}"
        if not 2 <= len(seeds) < spec.max:
            raise ConfigError(f"{shown}: {path} adds seeds up to {spec.max} (seeds: {{initial: {spec.initial}, max: "
                              f"{spec.max}}}); give 2 to {spec.max - 1} initial seeds (the added ones follow the "
                              "largest)")  # fmt: skip
        try:
            study = study.model_copy(update={"seeds": spec.starting_from(seeds)})
        except ValidationError as exc:
            raise ConfigError(f"{shown}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    elif seeds is not None:
        study = study.model_copy(update={"seeds": validate(Study, {**raw, "seeds": seeds}, "--seeds").seeds})
    _check_cli_overrides(study, overrides, str(path))
    check_block(base, overrides, "--set", sep=" ")
    base = apply_overrides(base, overrides)
    _check_axes(study, base, str(path))
    _check_grid(study, base, str(path))
    _check_reference(study, str(path))
    return LoadedStudy(
        path=str(path),
        study=study,
        recipe_path=str(shown),
        recipe=base,
        overrides={**overrides, **({REDUCED_KEY: True} if reduced else {})},
        recipe_arg=None if recipe is None else str(recipe),
        seeds_arg=seeds,
    )
