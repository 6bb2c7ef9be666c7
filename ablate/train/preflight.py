"""Before anything trains: every distinct data set is checked on disk and every distinct model (as trained and as
evaluated) is built once on the meta device (no memory, no compute), so a bad root, backbone, stride or head stops
a study in one line instead of failing inside its runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ablate.config.schema import Recipe
from ablate.core.errors import ConfigError
from ablate.data.base import DataRootError
from ablate.models.backbone import BuildError
from ablate.train.inference import eval_model_config
from ablate.train.job import check_model


def preflight(configs: Iterable[dict[str, Any]], source_of: Callable[[str], str]) -> None:
    """``configs``: resolved recipes; ``source_of(key)`` names the file and key that set a recipe key. Raises
    ``ConfigError``."""
    seen: set[str] = set()
    for config in configs:
        recipe = Recipe.model_validate(config)
        data_key = "data:" + recipe.data.model_dump_json()
        if data_key not in seen:
            seen.add(data_key)
            try:
                recipe.data.check()
                if recipe.eval.split is not None:
                    recipe.data.for_eval(recipe.eval.split).check()
            except DataRootError as exc:
                raise ConfigError(f"{source_of('data.root')}: {str(exc).removeprefix('data.root: ')}") from None
        for model, at_eval in ((recipe.model, False), (eval_model_config(recipe.model, recipe.eval), True)):
            key = "model:" + model.model_dump_json()
            if key in seen:
                continue
            seen.add(key)
            try:
                check_model(model)
            except BuildError as exc:
                where = "eval.output_stride" if at_eval and exc.key == "model.output_stride" else exc.key
                raise ConfigError(f"{source_of(where)}: {exc}") from None
