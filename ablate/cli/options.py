"""The command-line options the commands share (typer's ``Annotated`` types) and their allowed values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

StudyArg = Annotated[Path, typer.Argument(help="Study YAML file, e.g. studies/aspp_rates.yaml.", show_default=False)]
ResultsOpt = Annotated[
    Path, typer.Option("--results", "-r", help="Folder that holds results/<study>/runs/<run id>/ folders.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a recipe key for every run, as KEY=VALUE with a YAML value "
        "(e.g. --set train.steps=20 --set model.head.rates='[6,12]'). Repeatable.",
        show_default=False,
    ),
]
AxisOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--axis",
        "-a",
        help="With a recipe instead of a study: an axis of an ad-hoc study, KEY=V1,V2 (YAML values; lists in "
        "brackets: model.head.rates=[1],[6,12,18]). Repeatable; the study is named from the recipe and its axes.",
        show_default=False,
    ),
]
SeedsOpt = Annotated[
    str | None,
    typer.Option("--seeds", help="The seeds, e.g. 3,4,5: a study's in place of its own (a disjoint set checks that an "
                 "effect holds on other draws); with adaptive seeds, the initial ones (the added ones follow the "
                 "largest); an ad-hoc study's (default 0).", show_default=False),
]
RecipeOpt = Annotated[
    Path | None,
    typer.Option("--recipe", help="Run the study's grid on this recipe instead of its own (e.g. a paper study's GPU "
                 "recipe).", show_default=False),
]
SaveStudyOpt = Annotated[
    Path | None,
    typer.Option("--save-study", help="Ad-hoc study: also write it to this YAML file.", show_default=False),
]
WandbOpt = Annotated[
    str | None,
    typer.Option(
        "--wandb",
        help="W&B logging: online, offline, disabled or auto (default: the study's wandb.mode, else auto: online "
        "when an API key is configured, else offline files under results/<study>/wandb/).",
        show_default=False,
    ),
]
FORMAT_CHOICES = ("terminal", "md", "csv", "latex", "html")
WANDB_MODES = ("auto", "online", "offline", "disabled")
