"""Finished runs made by other plugin code than now.

A run records the fingerprints of the plugins it was made with (``ablate.core.plugins``): ``plugins`` in its
metrics.json; its training records them in trainings/<train id>/plugins.json, and a run that reused a training made
by other plugin code than its own records that training's as ``train_plugins``. A run records the plugins it uses:
those that registered its head, data set or backbone (and any that registered nothing ablate sees), so editing one
plugin's head makes only the runs of that head stale. A finished run is stale when a plugin it recorded is loaded now
with another fingerprint. Stale runs stay finished (``ablate run`` skips them and
says so); ``ablate run --rerun-stale`` makes them pending again, with their trainings when those were made by other
code, and runs only them. The fingerprints are not part of the run id (README, "Extending ablate"). Torch-free."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.core import plugins
from ablate.core.errors import ConfigError
from ablate.core.files import atomic_write
from ablate.core.locks import is_locked
from ablate.data import DATASETS
from ablate.models.heads import HEADS
from ablate.study.store import Store

if TYPE_CHECKING:
    from ablate.study.grid import Run  # for annotations only: no import cycle through the grid

PLUGINS_FILE = "plugins.json"  # in a training folder: the fingerprints of the plugins it was trained with


def _read(path: Path) -> dict[str, str] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def used(config: dict[str, Any]) -> dict[str, str]:
    """The fingerprints of the loaded plugins a resolved recipe uses: those that registered its head, its data set
    or its backbone (and any plugin that registered nothing ablate can see)."""
    model = config.get("model") or {}
    names = {
        HEADS.what: (model.get("head") or {}).get("name"),
        DATASETS.what: (config.get("data") or {}).get("name"),
        plugins.TIMM: str(model.get("backbone") or "").split(".")[0],  # timm's "arch.tag" names
    }
    return plugins.fingerprints(plugins.used_by(names))


def stamp(record: dict[str, Any], train_dir: str | Path, config: dict[str, Any]) -> None:
    """Add the fingerprints of the plugins the run used (``config``: its resolved recipe) to a finished run's
    ``record``, and to its training's folder when this job trained it (a record without ``trained`` counts as
    trained)."""
    now = used(config)
    path = Path(train_dir) / PLUGINS_FILE
    if record.get("trained", True):
        if now or path.is_file():
            atomic_write(path, json.dumps(now, indent=1, sort_keys=True))
    else:
        made = _read(path)
        if made is not None and made != now:
            record["train_plugins"] = made
    if now:
        record["plugins"] = now


def changed(run: Run, store: Store, record: dict[str, Any] | None = None) -> list[str]:
    """The plugins (keys) whose code differs now from the code that made ``run`` or its training."""
    record = record if record is not None else store.read_metrics(run) or {}
    training = _read(store.trainings_dir / run.train_id / PLUGINS_FILE)
    keys = [k for made in (record.get("plugins"), record.get("train_plugins"), training) for k in plugins.changed(made)]
    return sorted(set(keys))


def find_stale(runs: list[Run], store: Store) -> dict[str, list[str]]:
    """run id -> the plugins that changed, for every finished run made by other plugin code than now."""
    if not plugins.loaded():
        return {}
    out = {}
    for run in runs:
        record = store.read_metrics(run)
        if record is not None and record.get("status") == "done":
            keys = changed(run, store, record)
            if keys:
                out[run.id] = keys
    return out


def reset(runs: list[Run], store: Store) -> None:
    """Make stale ``runs`` pending: their records go, and so does what their training folder holds (model,
    checkpoint, curves) when it was trained by other plugin code, so that the next job trains it again."""
    for tid in sorted({r.train_id for r in runs}):
        folder = store.trainings_dir / tid
        made = _read(folder / PLUGINS_FILE)
        if not folder.is_dir() or (made is not None and not plugins.changed(made)):
            continue
        if is_locked(folder / ".lock"):
            raise ConfigError(f"training {tid} is in use by another process; run --rerun-stale again when it ends")
        for item in folder.iterdir():
            if item.name == ".lock":
                continue
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()
    for run in runs:
        (store.run_dir(run) / "metrics.json").unlink(missing_ok=True)


def describe(stale_runs: dict[str, list[str]]) -> str:
    """``2 finished runs were made by other plugin code than now (my_heads.py)``."""
    keys = sorted({k for ks in stale_runs.values() for k in ks})
    n = len(stale_runs)
    return f"{n} finished run{'s were' if n != 1 else ' was'} made by other plugin code than now ({', '.join(keys)})"
