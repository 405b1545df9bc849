"""The plugin manager: entry-point discovery, strict loading, contributions with provenance.

Built-in plugins (the top-level ``plugins/`` packages) and third-party ones take the same path:
an entry point in the ``zoo`` group. A plugin that fails to import, misspells a hook or raises
inside one is recorded as broken, warned about once, and skipped, so the CLI keeps working.

Environment switches:
- ``ZOO_DISABLE_PLUGINS=1`` (or ``all``, ``*``) loads no entry-point plugin; ``=a,b`` skips those.
- ``ZOO_TRACE_PLUGINS=1`` prints every hook call and registration to stderr.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.__about__ import __version__
from zoo.errors import PluginError
from zoo.schema import Field

__all__ = ["PluginHost", "PluginInfo", "Contribution", "PluginWarning", "get_host", "reset_host"]

GROUP = "zoo"
_COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class PluginWarning(UserWarning):
    """A plugin could not be loaded or misbehaved; zoo carries on without it."""


@dataclass(frozen=True)
class PluginInfo:
    """What `zoo plugins` shows about one plugin."""

    name: str
    version: str | None
    distribution: str | None
    origin: str  # "built-in", "entry point" or "registered" (in-process, e.g. by a test)
    hooks: tuple[str, ...]
    status: str  # "ok", "broken" or "disabled"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "distribution": self.distribution,
                "origin": self.origin, "hooks": list(self.hooks), "status": self.status,
                "error": self.error}


@dataclass(frozen=True)
class Contribution:
    """A component (source, adapter, dataset format, finder) or a batch of model entries, with the
    plugin that gave it."""

    plugin: str
    value: Any


@dataclass
class _Record:
    name: str
    given_distribution: str | None
    given_version: str | None
    given_origin: str
    module: object | None = None
    status: str = "ok"
    error: str | None = None
    dist: Any = None  # an entry point's distribution: its name and version are read when asked for

    # Reading a distribution's METADATA parses it as an e-mail message (about 1 ms each): every
    # command loads the plugins, and only `zoo plugins` and a clash of names need these.
    @functools.cached_property
    def distribution(self) -> str | None:
        return self.dist.metadata["Name"] if self.dist is not None else self.given_distribution

    @functools.cached_property
    def version(self) -> str | None:
        return self.dist.version if self.dist is not None else self.given_version

    @property
    def origin(self) -> str:
        if self.dist is None:
            return self.given_origin
        return "built-in" if self.distribution == "zoo" else "entry point"


#: Hooks that register named components, with the word for one component in messages.
COMPONENT_HOOKS = {
    "register_sources": "source",
    "register_adapters": "adapter",
    "register_dataset_formats": "dataset format",
    "register_finders": "finder",
    "register_front_ends": "front end",
    "register_tasks": "task",
}
#: The attribute a component is known by, where it is not ``name`` (a finder owns a name prefix).
_KEY_ATTRIBUTE = {"register_finders": "prefix"}

#: zoo's own plugins inside the core package (datasette's DEFAULT_PLUGINS): always loaded.
DEFAULT_PLUGINS = ("zoo.data.formats", "zoo.tasks.builtin")


@dataclass
class _Contributions:
    components: dict[str, dict[str, Contribution]] = field(
        default_factory=lambda: {hook: {} for hook in COMPONENT_HOOKS})
    models: list[Contribution] = field(default_factory=list)


def _disabled_names() -> tuple[bool, set[str]]:
    value = os.environ.get("ZOO_DISABLE_PLUGINS", "").strip()
    if value.lower() in ("1", "all", "*", "true", "yes"):
        return True, set()
    return False, {n.strip() for n in value.split(",") if n.strip()}


def _tracing() -> bool:
    return os.environ.get("ZOO_TRACE_PLUGINS", "").strip().lower() not in ("", "0", "false", "no")


class PluginHost:
    """Owns one pluggy manager and everything plugins contributed through it."""

    def __init__(self, *, load_entrypoints: bool = True) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self._records: dict[str, _Record] = {}
        self._contributions: _Contributions | None = None
        self.generation = 0
        self._trace = _tracing()
        if self._trace:
            self.pm.trace.root.setwriter(lambda text: sys.stderr.write(f"zoo trace: {text}"))
            self.pm.enable_tracing()
        for module_name in DEFAULT_PLUGINS:  # light modules: heavy imports stay inside their hooks
            self._add(_Record(module_name, "zoo", __version__, "built-in"), importlib.import_module(module_name),
                      strict=True)
        if load_entrypoints:
            self._load_entrypoints()

    # ----------------------------------------------------------------- loading

    def _load_entrypoints(self) -> None:
        all_off, skip = _disabled_names()
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            record = _Record(ep.name, None, None, "entry point", dist=getattr(ep, "dist", None))
            if ep.name in self._records:
                previous = self._records[ep.name]
                if previous.distribution == record.distribution:
                    continue  # the same distribution seen twice on sys.path
                self._broken(record, f"its name is already taken by the plugin from distribution "
                                     f"{previous.distribution!r}; uninstall one of the two")
                continue
            if all_off or ep.name in skip:
                record.status = "disabled"
                self._records[ep.name] = record
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take zoo down
                self._broken(record, f"failed to import: {type(exc).__name__}: {exc}")
                continue
            self._add(record, module)

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register an in-process plugin (a module or object with hook implementations).

        Tests and applications use this; it is checked exactly like an entry-point plugin.
        Raises :class:`PluginError` when the plugin is invalid.
        """
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        self._add(_Record(name, None, None, "registered"), plugin, strict=True)
        return name

    def unregister(self, name: str) -> None:
        record = self._records.pop(name, None)
        if record is not None and self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self._changed()

    def _changed(self) -> None:
        """Forget collected contributions; ``generation`` lets caches see the change."""
        self._contributions = None
        self.generation += 1

    def _add(self, record: _Record, module: object, *, strict: bool = False) -> None:
        """Register with pluggy and check it; a failure marks the plugin broken (or raises if strict)."""
        problem = None
        try:
            self.pm.register(module, name=record.name)
        except ValueError as exc:
            problem = f"could not be registered: {exc}"
        except pluggy.PluginValidationError as exc:
            problem = f"has an invalid hook: {exc}"
        else:
            try:
                self.pm.check_pending()
            except pluggy.PluginValidationError as exc:
                self.pm.unregister(name=record.name)
                known = ", ".join(_spec_names())
                problem = f"implements an unknown hook: {exc} (zoo's hooks: {known})"
        if problem is not None:
            if strict:
                raise PluginError(f"plugin {record.name!r} {problem}")
            self._broken(record, problem)
            return
        record.module = module
        self._records[record.name] = record
        self._changed()

    def mark_broken(self, name: str, error: str) -> None:
        """Record that a plugin misbehaved (e.g. gave invalid entries); it is warned about and skipped."""
        record = self._records.get(name)
        if record is not None and record.status == "ok":
            self._broken(record, error)
            self._changed()

    def _broken(self, record: _Record, error: str) -> None:
        record.status = "broken"
        record.error = error
        self._records[record.name] = record
        warnings.warn(
            f"plugin {record.name!r} {error}; zoo continues without it "
            f"(hide this with ZOO_DISABLE_PLUGINS={record.name})",
            PluginWarning,
            stacklevel=2,
        )

    # ----------------------------------------------------------------- contributions

    def _collect(self) -> _Contributions:
        if self._contributions is not None:
            return self._contributions
        got = _Contributions()
        special = {"register_finders": _check_finder, "register_front_ends": _check_front_end,
                   "register_tasks": _check_task}
        checks = [(hook, special.get(hook) or _check_component(kind)) for hook, kind in COMPONENT_HOOKS.items()]
        for hook_name, check in [*checks, ("register_models", _check_models)]:
            for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
                record = self._records.get(impl.plugin_name)
                if record is None or record.status != "ok":
                    continue
                given: list[Any] = []
                try:
                    impl.function(register=lambda value, _given=given, _check=check, _name=impl.plugin_name:
                                  _given.append(_check(_name, value)))
                except PluginError as exc:
                    self._broken(record, f"gave an invalid contribution in {hook_name}: {exc}")
                    continue
                except Exception as exc:
                    where = traceback.extract_tb(exc.__traceback__)[-1]
                    self._broken(record, f"raised in {hook_name}: {type(exc).__name__}: {exc} "
                                         f"({where.filename}:{where.lineno})")
                    continue
                if self._trace:
                    sys.stderr.write(f"zoo trace: plugin {impl.plugin_name!r} {hook_name} -> "
                                     f"{len(given)} registered\n")
                self._store(got, hook_name, impl.plugin_name, given)
        self._contributions = got
        return got

    @staticmethod
    def _store(got: _Contributions, hook_name: str, plugin: str, given: list[Any]) -> None:
        if hook_name == "register_models":
            got.models.extend(Contribution(plugin, value) for value in given)
            return
        kind, table = COMPONENT_HOOKS[hook_name], got.components[hook_name]
        attribute = _KEY_ATTRIBUTE.get(hook_name, "name")
        for component in given:
            key = getattr(component, attribute)
            existing = table.get(key)
            if existing is not None:
                raise PluginError(
                    f"{kind} {'type' if attribute == 'name' else attribute} {key!r} is registered twice: by plugin "
                    f"{existing.plugin!r} and by plugin {plugin!r}. Uninstall one of them, or "
                    f"disable one with ZOO_DISABLE_PLUGINS={plugin}"
                )
            table[key] = Contribution(plugin, component)

    def components(self, hook_name: str) -> Mapping[str, Contribution]:
        """Name -> registered component (with its plugin) for one of :data:`COMPONENT_HOOKS`."""
        return self._collect().components[hook_name]

    def sources(self) -> Mapping[str, Contribution]:
        """Source type name -> the registered source, with its plugin."""
        return self.components("register_sources")

    def adapters(self) -> Mapping[str, Contribution]:
        """Adapter type name -> the registered adapter, with its plugin."""
        return self.components("register_adapters")

    def dataset_formats(self) -> Mapping[str, Contribution]:
        """Dataset format name -> the registered format, with its plugin."""
        return self.components("register_dataset_formats")

    def finders(self) -> Mapping[str, Contribution]:
        """Name prefix (``hf`` for ``hf:ORG/NAME``) -> the registered finder, with its plugin."""
        return self.components("register_finders")

    def front_ends(self) -> Mapping[str, Contribution]:
        """Front end name -> the registered front end (another modality into a backbone's), with its plugin."""
        return self.components("register_front_ends")

    def tasks(self) -> Mapping[str, Contribution]:
        """Task name -> the registered task (what a run learns to output), with its plugin."""
        return self.components("register_tasks")

    def model_contributions(self) -> list[Contribution]:
        """Model entries (TOML text, a Path, or a dict) with the plugin that gave each."""
        return list(self._collect().models)

    # ----------------------------------------------------------------- listing

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, loaded or not, in name order."""
        self._collect()  # a plugin that raises inside a hook shows as broken
        infos = []
        for record in sorted(self._records.values(), key=lambda r: r.name):
            hooks: tuple[str, ...] = ()
            if record.status == "ok" and self.pm.has_plugin(record.name):
                plugin = self.pm.get_plugin(record.name)
                hooks = tuple(sorted(c.name for c in self.pm.get_hookcallers(plugin) or []))
            infos.append(PluginInfo(record.name, record.version, record.distribution,
                                    record.origin, hooks, record.status, record.error))
        return infos


def _check_finder(plugin: str, finder: Any) -> Any:
    prefix = getattr(finder, "prefix", None)
    if not isinstance(prefix, str) or not _COMPONENT_NAME.match(prefix):
        raise PluginError(f"a finder needs a `prefix` of lowercase letters, digits, '-' or '_', got {prefix!r}")
    if not callable(getattr(finder, "find", None)):
        raise PluginError(f"finder {prefix!r} needs a method `find(ref, cache) -> str` returning registry TOML")
    for optional in ("serves", "check"):
        if getattr(finder, optional, None) is not None and not callable(getattr(finder, optional)):
            raise PluginError(f"finder {prefix!r}: `{optional}` must be a method")
    return finder


#: What a front end must have (see the ``register_front_ends`` hook).
_FRONT_END_METHODS = ("resolve", "array", "problem")


def _check_front_end(plugin: str, front_end: Any) -> Any:
    _check_component("front end")(plugin, front_end)
    name = front_end.name
    for attribute in ("modality", "target"):
        if not isinstance(getattr(front_end, attribute, None), str):
            raise PluginError(f"front end {name!r} needs a `{attribute}` (a modality name such as 'audio')")
    missing = [m for m in _FRONT_END_METHODS if not callable(getattr(front_end, m, None))]
    if missing:
        raise PluginError(f"front end {name!r} needs the method{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    suffixes = getattr(front_end, "suffixes", ())
    if isinstance(suffixes, str) or not all(isinstance(x, str) and x.startswith(".") for x in suffixes):
        raise PluginError(f"front end {name!r}: `suffixes` must be a tuple of file suffixes such as '.wav'")
    return front_end


#: What a task must have (see the ``register_tasks`` hook and ``zoo.tasks.contract.Task``).
_TASK_METHODS = ("check", "claims", "targets", "class_weights", "loss", "judge", "evaluate", "baseline", "compare",
                 "lines", "plots", "output")
#: ... and a head on pooled features with its cross-validated frozen fit, or (a dense task,
#: ``zoo.tasks.contract.DenseTask``: detection, segmentation) its own network on feature maps.
_HEAD_METHODS = ("head", "cross_validate", "fit")
_DENSE_METHODS = ("feature_maps", "input_spec", "network", "sampler", "graph")


def _check_task(plugin: str, task: Any) -> Any:
    _check_component("task")(plugin, task)
    name = task.name
    dense = callable(getattr(task, "network", None))
    missing = [m for m in (*_TASK_METHODS, *(_DENSE_METHODS if dense else _HEAD_METHODS))
               if not callable(getattr(task, m, None))]
    if missing:
        raise PluginError(f"task {name!r} needs the method{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                          f"(see zoo.Task)")
    metrics = getattr(task, "metrics", None)
    if not isinstance(metrics, Mapping) or not metrics or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in metrics.items()):
        raise PluginError(f"task {name!r}: `metrics` must map each metric name to whether higher is better")
    for flag in ("by_class", "chooses_cut", "epochs"):
        if not isinstance(getattr(task, flag, None), bool):
            raise PluginError(f"task {name!r} needs `{flag}` (True or False)")
    return task


def _check_component(kind: str) -> Callable[[str, Any], Any]:
    def check(plugin: str, component: Any) -> Any:
        name = getattr(component, "name", None)
        if not isinstance(name, str) or not _COMPONENT_NAME.match(name):
            raise PluginError(
                f"a {kind} needs a `name` of lowercase letters, digits, '-' or '_', got {name!r}"
            )
        fields = getattr(component, "fields", {})
        if not isinstance(fields, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Field) for k, v in fields.items()
        ):
            raise PluginError(f"{kind} {name!r}: `fields` must be a dict of name -> zoo.Field")
        if "type" in fields:
            raise PluginError(f"{kind} {name!r}: `type` is reserved and cannot be a declared field")
        return component

    return check


def _check_models(plugin: str, value: Any) -> Any:
    if isinstance(value, (str, Path)) or (isinstance(value, Mapping) and all(isinstance(k, str) for k in value)):
        return value
    raise PluginError(f"register_models takes TOML text, a pathlib.Path or a dict of name -> table, "
                      f"got {type(value).__name__}")


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, created (and entry points loaded) on first use."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
    return _HOST


def reset_host(host: PluginHost | None = None) -> PluginHost | None:
    """Replace the process-wide host (tests use a fresh one); returns the previous one."""
    global _HOST
    previous, _HOST = _HOST, host
    return previous


def _spec_names() -> list[str]:
    """zoo's own hooks, from its hookspecs (pluggy's ``pm.hook`` also lists the hooks that
    plugins implement, a misspelled one included)."""
    return sorted(name for name, value in vars(hookspecs).items()
                  if callable(value) and any(attr.endswith("_spec") for attr in dir(value)))
