"""Hybrid dilated convolution (Wang et al., "Understanding Convolution for Semantic Segmentation", arXiv:1702.08502).

A cascade of 3x3 dilated conv-BN-ReLU layers whose dilations follow a rate pattern (default 1, 2, 5), repeated
``repeats`` times, so that the union of the taps covers a square region without holes ("gridding"). Each layer after
the first has an identity shortcut, as the paper's rates sit in ResNet blocks (``residual``). The paper's
rule (Sec. 3.3): the rates of a group must not share a common factor > 1, and the maximum distance between two
non-zero taps, M_2 (M_n = r_n, M_i = max(M_{i+1} - 2 r_i, M_{i+1} - 2 (M_{i+1} - r_i), r_i)), must not exceed the
kernel size. A pattern that breaks it builds, with a ``GriddingWarning`` (so gridding itself can be ablated); the
backbone's ``model.hdc_rates`` follow the same rule.
"""

from __future__ import annotations

import math
import warnings
from functools import reduce
from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams, Rates


class GriddingWarning(UserWarning):
    """A dilation pattern that leaves holes in the receptive field (Wang et al.'s HDC rule)."""


def gridding_problem(rates: list[int], kernel: int = 3) -> str | None:
    """Why a cascade of ``kernel`` x ``kernel`` convs with these dilations leaves holes, or None if it does not."""
    if len(rates) == 1 and rates[0] == 1:
        return None
    common = reduce(math.gcd, rates)
    if common > 1:
        return f"rates {list(rates)} share the common factor {common}, so the cascade sees only every {common}th pixel"
    m = rates[-1]
    for r in reversed(rates[1:-1]):
        m = max(m - 2 * r, m - 2 * (m - r), r)
    if len(rates) > 1 and m > kernel:
        return f"rates {list(rates)} give M_2 = {m} > kernel size {kernel}: the cascade's receptive field has holes"
    return None


def warn_gridding(rates: list[int], where: str) -> None:
    problem = gridding_problem(list(rates))
    if problem:
        warnings.warn(f"{where}: {problem} (HDC rule, Wang et al. 2018)", GriddingWarning, stacklevel=3)


@HEADS.register
class HDCParams(HeadParams):
    """Hybrid dilated convolution (Wang et al. 2018): a cascade of 3x3 dilated convs following a rate pattern."""

    name: Literal["hdc"] = "hdc"
    module: ClassVar[str] = "ablate.models.head_modules.hdc:HDC"
    rates: Rates = Field([1, 2, 5], description="dilation pattern of one group (warned about if it grids)")
    repeats: PositiveInt = Field(2, description="how many times the pattern is cascaded")
    channels: PositiveInt = Field(256, description="channels of every conv")
    residual: bool = Field(True, description="every layer after the first adds its input, as in the paper's ResNet "
                           "blocks (false: a plain cascade)")  # fmt: skip
