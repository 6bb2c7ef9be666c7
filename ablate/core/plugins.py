"""Plugins: the user's own modules, imported before anything is validated, so that what they register (a head, a
data set or an executor with ``@HEADS.register`` and the like, a timm model with ``@register_model``) joins ablate's
registries exactly like a built-in entry.

A plugin is named by a study's or a recipe's ``plugins:`` key (a module name, or a ``.py`` file relative to that
YAML file) or by an installed package's entry point in the group ``ablate.plugins`` (its value: the module to
import). The CLI imports them, the study writes them into each run's ``config.yaml``, and every process that runs a
job (a worker, a SLURM job, a DDP rank) imports the same ones from there before it validates the recipe.

Each plugin has a fingerprint of its code: the sha256 of its source files (a file plugin: the file; a module: the
files of its top-level package), and for an installed distribution also its name and version. A run records the
fingerprints it was made with, and ``ablate status`` names the finished runs made by other plugin code than now.

Torch-free itself: importing a plugin may import torch (the plugin is the user's code).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ablate.core.errors import ConfigError
from ablate.core.registry import Registry, RegistryError

GROUP = "ablate.plugins"  # the entry-point group of installed plugins
TIMM = "timm model"  # what ``Plugin.provides`` calls a model registered with timm's ``@register_model``
_TIMM_OVERWRITE = re.compile(r"Overwriting (\S+) in registry with (\S+)\.")


@dataclass(frozen=True)
class Plugin:
    """One imported plugin. ``key``: how runs record it (the module name, or the file as the YAML wrote it);
    ``module``: the imported module's name; ``path``: a file plugin's file; ``dist``: the installed distribution of
    an entry point; ``sys_path``: the folder a module was found in (a worker puts it on its path if need be)."""

    key: str
    module: str
    fingerprint: str
    path: str | None = None
    dist: str | None = None
    sys_path: str | None = None
    # what it registered: (registry, name) pairs, e.g. ("head", "strip"), ("timm model", "tiny_resnet")
    provides: tuple[tuple[str, str], ...] = ()

    def spec(self) -> dict[str, Any]:
        """What another process needs to import this plugin again (it computes the rest itself)."""
        return {k: v for k, v in asdict(self).items() if v is not None and k not in ("fingerprint", "provides")}

    def owns(self, module: str) -> bool:
        """Whether a module is this plugin's code: the file's module, or the top-level package's modules."""
        if self.path is not None:
            return module == self.module
        top = self.module.split(".")[0]
        return module == top or module.startswith(top + ".")


_loaded: dict[str, Plugin] = {}  # key -> plugin, in import order
_entry_points_loaded = False


def loaded() -> list[Plugin]:
    return list(_loaded.values())


def specs() -> list[dict[str, Any]]:
    """The loaded plugins as ``config.yaml`` records them for the processes that run jobs."""
    return [p.spec() for p in _loaded.values()]


def fingerprints(chosen: Iterable[Plugin] | None = None) -> dict[str, str]:
    """key -> fingerprint of every loaded plugin (or of ``chosen``): the plugin code this process runs."""
    return {p.key: p.fingerprint for p in (_loaded.values() if chosen is None else chosen)}


def used_by(names: dict[str, str | None]) -> list[Plugin]:
    """The plugins a run uses, given the names it picks from each registry (``{"head": "strip", "data set": "bars",
    TIMM: "tiny_resnet"}``): those that registered one of them, and those that registered nothing ablate can see
    (they may change anything)."""
    wanted = {(what, name) for what, name in names.items() if name}
    return [p for p in _loaded.values() if not p.provides or wanted & set(p.provides)]


def changed(recorded: dict[str, str] | None) -> list[str]:
    """Keys of the plugins in ``recorded`` (key -> fingerprint, as a run recorded them) whose code is other now. A
    plugin not loaded now is not counted: the run's recipe validates without it, so it did not use it."""
    now = fingerprints()
    return [key for key, fp in (recorded or {}).items() if key in now and now[key] != fp]


def is_file(name: str) -> bool:
    """A plugin given as a file path (``./my_heads.py``) rather than a module name (``my_pkg.heads``)."""
    return name.endswith(".py") or "/" in name or os.sep in name


def load(names: Any, base: Path, source: str) -> list[Plugin]:
    """Import the plugins a YAML file names (``source``: the file and key, for messages); file paths are relative to
    ``base`` (the YAML file's folder), module names are searched on ``sys.path`` and then in ``base``. Each plugin
    is imported once per process. Raises ``ConfigError`` (one line naming the plugin)."""
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(f"{source}: expected a list of module names or .py files, e.g. [my_pkg.heads, ./my_heads.py]")
    out = []
    for name in names:
        if is_file(name):
            key = os.path.normpath(name)
            out.append(_loaded.get(key) or _import_file(key, (base / name).resolve(), f"{source}: {name}"))
        else:
            out.append(_loaded.get(name) or _import_module(name, f"{source}: {name}", extra_path=base))
    return out


def load_entry_points() -> list[Plugin]:
    """Import every installed plugin (entry points of the group ``ablate.plugins``), once per process."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    _entry_points_loaded = True
    out = []
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else None
        where = f"entry point '{ep.name}' ({GROUP}" + (f" of {dist})" if dist else ")")
        if ep.module in _loaded:
            continue
        out.append(_import_module(ep.module, f"plugin {where}: {ep.module}", dist=dist))
    return out


def load_specs(items: Iterable[dict[str, Any]], source: str) -> None:
    """Import the plugins a run's ``config.yaml`` lists (``specs()`` of the process that wrote it)."""
    for item in items or []:
        key = item.get("key")
        if not key or key in _loaded:
            continue
        where = f"{source}: plugin {key}"
        if item.get("path"):
            _import_file(key, Path(item["path"]), where)
        else:
            _import_module(item["module"], where, extra_path=item.get("sys_path"), dist=item.get("dist"), key=key)


def _import_file(key: str, path: Path, where: str) -> Plugin:
    if not path.is_file():
        raise ConfigError(f"{where}: file not found ({path})")
    name = path.stem
    if not name.isidentifier():
        raise ConfigError(f"{where}: '{path.name}' is not a valid module name; rename the file (letters, digits, _)")
    present = sys.modules.get(name)
    try:  # another module of that name (imported or importable) would be shadowed, or would shadow this one
        found = present if present is not None else importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    other = getattr(found, "__file__", None) or getattr(found, "origin", None) if found is not None else None
    if found is not None and (other is None or not Path(other).exists() or Path(other).resolve() != path):
        raise ConfigError(f"{where}: a module named '{name}' exists already ({other or 'built in'}); rename the file")
    if present is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{where}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before it runs: pydantic resolves the module's annotations through it

        def run() -> None:
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise

        _guarded(run, where)
    plugin = Plugin(key=key, module=name, path=str(path), fingerprint=_hash_files([path], path.parent))
    return _add(plugin)


def _import_module(name: str, where: str, extra_path: Path | str | None = None, dist: str | None = None,
                   key: str | None = None) -> Plugin:  # fmt: skip
    def run() -> None:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            folder = str(extra_path) if extra_path is not None else None
            if folder is None or exc.name != name.split(".")[0] or folder in sys.path:
                raise
            sys.path.append(folder)  # a package beside the YAML file (or where the parent process found it)
            importlib.import_module(name)

    _guarded(run, where)
    top = sys.modules[name.split(".")[0]]
    files, root = _module_files(top)
    fingerprint = _hash_files(files, root)
    if dist is not None:
        try:
            fingerprint = f"{dist} {importlib.metadata.version(dist)} {fingerprint}"
        except importlib.metadata.PackageNotFoundError:
            fingerprint = f"{dist} ? {fingerprint}"
    plugin = Plugin(key=key or name, module=name, fingerprint=fingerprint, dist=dist, sys_path=str(_sys_path_of(top)))
    return _add(plugin)


def _add(plugin: Plugin) -> Plugin:
    """Record a plugin with what it registered: the registries' entries and the timm models defined in its code."""
    provides = [
        (registry.what, name)
        for registry in Registry.instances
        for name, cls in registry.items()
        if plugin.owns(cls.__module__)
    ]
    timm = sys.modules.get("timm.models")  # only when something imported timm: ablate itself does not here
    if timm is not None:
        for module in [m for name, m in list(sys.modules.items()) if m is not None and plugin.owns(name)]:
            for attr, fn in list(vars(module).items()):
                if callable(fn) and getattr(fn, "__module__", None) == module.__name__ and timm.is_model(attr):
                    if timm.model_entrypoint(attr) is fn:
                        provides.append((TIMM, attr))
    plugin = replace(plugin, provides=tuple(sorted(set(provides))))
    _loaded[plugin.key] = plugin
    return plugin


def _guarded(run: Any, where: str) -> None:
    """Run an import: any failure is one ``ConfigError`` line naming the plugin; what it registered is undone; a
    timm model it registers over another one's name is refused like a registry's duplicate."""
    saved = [(r, dict(r._entries)) for r in Registry.instances]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            run()
            for w in caught:
                match = _TIMM_OVERWRITE.match(str(w.message))
                if match:
                    name, new = match.groups()
                    raise RegistryError(
                        f"timm model '{name}' is registered twice: by {_timm_owner(name)} and by {new}; rename one"
                    )
        except Exception as exc:  # noqa: BLE001 - any failure of the user's code is reported as one line
            for registry, entries in saved:
                registry._entries = entries
            if isinstance(exc, ConfigError):
                raise ConfigError(f"{where}: {exc}") from None
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ConfigError(f"{where}: cannot import it: {type(exc).__name__}: {message}".rstrip(": ")) from None
    for w in caught:  # the plugin's other warnings, as they would have been shown
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _timm_owner(name: str) -> str:
    for plugin in _loaded.values():
        fn = getattr(sys.modules.get(plugin.module), name, None)
        if callable(fn):
            return f"{fn.__module__}.{name} (plugin {plugin.key})"
    return "timm itself"


def _module_files(module: Any) -> tuple[list[Path], Path]:
    """The source files of a module: every file of its package (not ``__pycache__``), or its one file."""
    paths = [Path(p) for p in getattr(module, "__path__", [])]
    if not paths:
        file = Path(module.__file__)
        return [file], file.parent
    files = [
        f
        for p in paths
        for f in sorted(p.rglob("*"))
        if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".pyo")
    ]
    return files, paths[0].parent


def _sys_path_of(module: Any) -> Path:
    paths = list(getattr(module, "__path__", []))
    return Path(paths[0]).parent if paths else Path(module.__file__).parent


def _hash_files(files: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        rel = os.path.relpath(f, root)
        h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()[:16]


def forget(keys: Iterable[str]) -> None:
    """Forget loaded plugins (tests): their modules leave ``sys.modules``; registries are the caller's to restore."""
    global _entry_points_loaded
    for key in list(keys):
        plugin = _loaded.pop(key, None)
        if plugin is not None:
            top = plugin.module.split(".")[0]
            for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                del sys.modules[name]
    _entry_points_loaded = False
