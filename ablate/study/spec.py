"""The study schema: a recipe plus the axes to vary, the seeds, the baseline, the table layout, where jobs run
(``executor``, the discriminated union of ``ablate.study.executors``), W&B and a paper's published numbers.
Torch-free."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Discriminator, Field, PositiveInt, Tag, field_validator, model_validator

from ablate.core.schema import Strict, default_tag
from ablate.core.text import parse_duration
from ablate.report.sequential import DEFAULT_SHAPE, SHAPES
from ablate.study.executors import ExecutorConfig
from ablate.study.executors.local import LocalExecutor

# a table's metric: one of the four scalar metrics, SegNet's boundary F1 (``bf``), the mIoU in a trimap band,
# ``trimap:<width>`` (eval.trimap), or ``reach`` (px, on data that record the distance to a class's evidence: the
# synthetic set)
Scalar = Literal["miou", "pixel_acc", "mean_acc", "fwiou", "bf", "reach"]
Metric = Scalar | Annotated[str, Field(pattern=r"^trimap:[0-9]+$")]
SEED_MAX = 2**32 - 1  # what every RNG a run seeds (torch, numpy, Python) accepts
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]


class AdaptiveSeeds(Strict):
    """``seeds: {initial: 3, max: 8}``: every configuration runs ``initial`` seeds (``first``, ``first`` + 1, ...);
    then ``ablate run`` adds seeds, ``step`` at a time and paired (the baseline's too), only to the rows whose
    comparison with the baseline is still undecided, until each is decided, has ``max`` seeds, or ``budget`` (e.g.
    10m) is spent. Decided: significant after Holm across the rows at ``alpha`` (a group-sequential paired t-test:
    ``ablate.report.sequential``), or its repeated confidence interval inside ±``effect`` (metric points; default
    table.min_effect). ``boundary``: how the test spends alpha over the looks: obrien-fleming (0, strict early),
    pocock (0.5, the same level at every look) or a shape in between (default 0.25)."""

    initial: int = Field(default=3, ge=2)
    max: int = Field(default=8, ge=3)
    first: Seed = 0
    effect: float | None = Field(default=None, gt=0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    boundary: float = Field(default=DEFAULT_SHAPE, ge=0, le=0.5)
    step: PositiveInt = 1
    budget: str | None = None
    # the initial seeds in place of first, first + 1, ... (``ablate run --seeds 8,9,10,11``: a disjoint set); the
    # added ones are the next integers above the largest
    given: list[Seed] | None = None

    @field_validator("boundary", mode="before")
    @classmethod
    def _named_boundary(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in SHAPES:
                raise ValueError(f"{value!r}: expected obrien-fleming, pocock or a shape between 0 and 0.5")
            return SHAPES[value]
        return value

    @field_validator("budget")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _more_than_initial(self) -> AdaptiveSeeds:
        if self.max <= self.initial:
            raise ValueError(f"max {self.max} must exceed initial {self.initial}: seeds are added up to max")
        last = (max(self.given) + self.max - len(self.given)) if self.given else self.first + self.max - 1
        if last > SEED_MAX:
            raise ValueError(f"seeds up to {last} pass {SEED_MAX}")
        if self.given is not None:
            if len(set(self.given)) < len(self.given):
                raise ValueError(f"seed {sorted(s for s in self.given if self.given.count(s) > 1)[0]} is given twice")
            if len(self.given) != self.initial:  # (initial >= 2 and max > initial bound their number)
                raise ValueError(f"{len(self.given)} seeds given for initial {self.initial}")
        return self

    def starting_from(self, seeds: list[int]) -> AdaptiveSeeds:
        """These seeds as the initial ones (``--seeds``), the added ones the next integers above the largest."""
        return AdaptiveSeeds.model_validate({**self.model_dump(), "given": seeds, "initial": len(seeds)})

    @property
    def seeds(self) -> list[int]:
        """Every seed a configuration may get, in the order they are added: the initial ones first."""
        if self.given:
            return [*self.given, *range(max(self.given) + 1, max(self.given) + 1 + self.max - len(self.given))]
        return list(range(self.first, self.first + self.max))


def _seeds_form(value: Any) -> str:
    return "adaptive" if isinstance(value, dict | AdaptiveSeeds) else "list"


# a list of seeds, or adaptive seeds (the tag is the form written, never a key the user writes)
Seeds = Annotated[
    Annotated[list[Seed], Tag("list"), Field(min_length=1)] | Annotated[AdaptiveSeeds, Tag("adaptive")],
    Discriminator(_seeds_form),
]


class TableConfig(Strict):
    rows: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    metric: Metric = "miou"
    min_effect: float = Field(default=1.0, gt=0)  # metric points: the "seeds needed" line sizes seeds for this Δ

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("rows", "columns"):
                if isinstance(data.get(key), str):
                    data[key] = [data[key]]
        return data


class ScaleRule(Strict):
    """Coupled axes. ``{scale: A, with: B, reference: r}``: values of A are written as they apply at B = r and are
    scaled by r / B in every run (DeepLab's ASPP rates (6, 12, 18) at output stride 16 become (12, 24, 36) at 8).
    ``{scale: A, feature_map: m}``: values of A (atrous rates) are written for a feature map of side m and scaled by
    s / m, s the run's map side ceil(crop / output stride): DeepLabv3 writes (6, 12, 18) for 513-px crops at OS 16,
    m = 33; on 128-px images at OS 16 (s = 8) they become (1, 3, 4), keeping their share of the map. Scaled numbers
    are rounded to integers, at least 1."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    scale: str
    with_: str | None = Field(default=None, alias="with")
    reference: float | None = Field(default=None, gt=0)
    feature_map: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_form(self) -> ScaleRule:
        if self.feature_map is None and (self.with_ is None or self.reference is None):
            raise ValueError("give either 'with' and 'reference', or 'feature_map'")
        if self.feature_map is not None and (self.with_ is not None or self.reference is not None):
            raise ValueError("'feature_map' scales to the map by itself: give it without 'with' and 'reference'")
        return self


class WandbConfig(Strict):
    """Where runs are logged on W&B (see ``ablate.study.wandb_sink``). Not part of any run's identity: a run's id
    does not change with it. ``auto``: online when an API key is configured, else offline (files only)."""

    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str | None = None  # default "ablate"; the group is always the study's name
    entity: str | None = None


class ReferenceRow(Strict):
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
    bf: float | None = None
    # per-class IoU as published, by ablate's class names (the report puts them beside the reproduced ones)
    per_class_iou: dict[str, float] = Field(default_factory=dict)


class Contrast(Strict):
    """A claim of the paper: configuration ``a`` against ``b`` (axis values; the others as in the reference's
    ``scope``) on each of ``metrics``. The published Δ comes from the rows whose ``where`` are ``a`` and ``b``; the
    reproduced one is paired over seeds."""

    label: str
    metrics: list[Scalar] = Field(min_length=1)
    a: dict[str, Any]
    b: dict[str, Any]
    # the published Δ by metric when the paper gives it for a contrast its rows do not hold (e.g. another table's)
    published: dict[Scalar, float] = Field(default_factory=dict)


class Reference(Strict):
    """Published numbers of the table a study reproduces (in %, as printed in the paper)."""

    paper: str  # authors, title, arXiv id
    table: str  # e.g. "Table 5"
    dataset: str = ""  # e.g. "PASCAL VOC 2012 val"
    metric: Metric = "miou"
    note: str = ""  # setup differences, reconstructed check marks, ...
    rows: list[ReferenceRow] = Field(min_length=1)
    # the axis values of the configurations the per-class table sets beside the rows' ``per_class_iou`` (e.g.
    # {eval.split: test}: every configuration evaluated on test); {}: every configuration
    scope: dict[str, Any] = Field(default_factory=dict)
    contrasts: list[Contrast] = Field(default_factory=list)


class Study(Strict):
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
    executor: ExecutorConfig = Field(default_factory=LocalExecutor)
    seeds: Seeds = Field(default_factory=lambda: [0])
    baseline: dict[str, Any] = Field(default_factory=dict)
    table: TableConfig = Field(default_factory=TableConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    reference: Reference | None = None  # the paper's published numbers (ablate.report.reference joins them)
    # recipe overrides of the reduced run (CPU-sized, embedded synthetic data), applied after ``set`` when the
    # study is loaded with ``--set reduced=true``
    reduced: dict[str, Any] = Field(default_factory=dict)
    # the seeds of the reduced run, in place of ``seeds``: a CPU-sized run is noisier than the paper's, so its signs
    # need several seeds where the paper's one run per row was enough
    reduced_seeds: list[Seed] | None = Field(default=None, min_length=1)
    # the user's modules imported before anything is validated: module names or .py files relative to this file
    # (``ablate.core.plugins``; imported by ``ablate.study.load`` before this schema validates the study)
    plugins: list[str] = Field(default_factory=list)
    # left out when empty: the dump of a study without plugins is what it was before the key existed
    late_keys: ClassVar[tuple[str, ...]] = ("plugins",)

    @field_validator("seeds", "reduced_seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | AdaptiveSeeds | None) -> list[int] | AdaptiveSeeds | None:
        if seeds is None or isinstance(seeds, AdaptiveSeeds):
            return seeds
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"seed {repeated[0]} is given twice: every seed is one run per configuration")
        return seeds

    @property
    def initial_seeds(self) -> list[int]:
        """The seeds every configuration runs: the list, or adaptive seeds' initial ones."""
        if isinstance(self.seeds, AdaptiveSeeds):
            return self.seeds.seeds[: self.seeds.initial]
        return list(self.seeds)

    @property
    def adaptive(self) -> AdaptiveSeeds | None:
        return self.seeds if isinstance(self.seeds, AdaptiveSeeds) else None

    @model_validator(mode="before")
    @classmethod
    def _default_executor_kind(cls, data: Any) -> Any:
        """``executor: {max_parallel: 2}`` without a kind is the local executor."""
        return default_tag(data, "executor", "kind", "local")


REDUCED_KEY = "reduced"  # ``--set reduced=true``: apply the study's ``reduced:`` block
