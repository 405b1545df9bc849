"""``--report-to tensorboard|mlflow|wandb``: a run logged to the experiment tracker a team uses.

Each tracker is one small module over its own library (an optional extra: ``zoo[tensorboard]``,
``zoo[mlflow]``, ``zoo[wandb]``), behind the :class:`Tracker` protocol the training loop calls:

- ``start(params)``: once, with the run's resolved options (and the model, data, zoo version);
- ``epoch(row)``: after each epoch, with its ``metrics.jsonl`` row (``epoch``, ``stage``, losses,
  accuracies; ``None`` values are left out);
- ``finish(metrics, report_dir)``: at the end, with ``report/metrics.json`` and the ``report/``
  folder (the page, the plots and the metrics), logged as an artefact where the tracker has them.

:func:`trackers_for` makes them, and fails before any work, in one line naming the extra to
install, when a library is missing. ``zoo finetune --report-to`` starts them before the run folder
is written and its loop logs each epoch as it ends; :func:`replay` feeds a finished run folder
through them afterwards (its ``metrics.jsonl`` rows as the epochs).

Each tracker takes its settings from the tracker's own environment variables, as its library
documents them: ``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME``; ``WANDB_PROJECT``,
``WANDB_MODE=offline``, ``WANDB_DIR``; TensorBoard writes event files under ``RUN/tensorboard``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from zoo.errors import ZooError

__all__ = ["Tracker", "TRACKERS", "trackers_for", "check_trackers", "replay", "flat_params", "numbers", "final_metrics", "epoch_numbers"]

#: Tracker name -> (module, the library it imports, the extra that installs it).
TRACKERS = {
    "tensorboard": ("zoo.trackers.tensorboard", "tensorboard", "tensorboard"),
    "mlflow": ("zoo.trackers.mlflow", "mlflow", "mlflow"),
    "wandb": ("zoo.trackers.wandb", "wandb", "wandb"),
}


@runtime_checkable
class Tracker(Protocol):
    """What the training loop calls; see the module's docstring."""

    name: str

    def start(self, params: dict[str, Any]) -> None: ...

    def epoch(self, row: dict[str, Any]) -> None: ...

    def finish(self, metrics: dict[str, Any], report_dir: Path) -> None: ...


def _names(names: str | Iterable[str] | None) -> list[str]:
    """Tracker names from a list or a comma-separated string, in order, each once."""
    if names is None:
        return []
    given = [names] if isinstance(names, str) else list(names)
    found = [part.strip().lower() for name in given for part in str(name).split(",") if part.strip()]
    unknown = [name for name in found if name not in TRACKERS]
    if unknown:
        raise ZooError(f"--report-to {unknown[0]}: unknown tracker; choose from {', '.join(TRACKERS)} "
                       f"(several allowed: --report-to tensorboard --report-to mlflow)")
    return list(dict.fromkeys(found))


def check_trackers(names: str | Iterable[str] | None) -> list[str]:
    """The tracker names, each known and with its library installed; else one line saying which
    extra to install. Called before a run starts, so a missing library costs no training."""
    found = _names(names)
    for name in found:
        _, library, extra = TRACKERS[name]
        try:
            importlib.import_module(library)
        except ImportError:
            raise ZooError(f"--report-to {name} needs the {library} package, which is not installed: "
                           f"pip install 'zoo[{extra}]'") from None
    return found


def trackers_for(names: str | Iterable[str] | None, run_dir: str | Path) -> list[Tracker]:
    """One tracker per name, logging the run in ``run_dir``."""
    trackers = []
    for name in check_trackers(names):
        module = importlib.import_module(TRACKERS[name][0])
        trackers.append(module.make(Path(run_dir)))
    return trackers


def flat_params(record: dict[str, Any]) -> dict[str, Any]:
    """A run's parameters as one flat dict of scalars (``front_end.params.n_mels``): what trackers
    store as hyper-parameters. Lists and other values become their JSON text."""
    flat: dict[str, Any] = {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                put(f"{prefix}.{key}" if prefix else str(key), inner)
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        else:
            flat[prefix] = json.dumps(value, ensure_ascii=False)

    put("", record)
    return flat


def numbers(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric entries of a dict, nested keys joined by '/' (``test/accuracy``); booleans,
    None and text are left out (trackers log numbers)."""
    found: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(numbers(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            found[name] = float(value)
    return found


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """What :meth:`Tracker.finish` logs as the run's final numbers (``test/accuracy``,
    ``cv/accuracy``, ``baseline/test/accuracy``): each held-out set's and the cross-validated
    estimate's scores (per-class tables and confusion matrices stay in the report artefact)."""
    chosen: dict[str, Any] = {}
    for name in ("val", "test"):
        if isinstance(metrics.get(name), dict):
            chosen[name] = {k: v for k, v in metrics[name].items() if k in ("accuracy", "macro_f1", "micro_f1", "n")}
    head = (metrics.get("cv") or {}).get("head") if isinstance(metrics.get("cv"), dict) else None
    if isinstance(head, dict):
        chosen["cv"] = {k: v for k, v in head.items() if k in ("accuracy", "macro_f1", "micro_f1", "log_loss")}
    base = metrics.get("baseline")
    if isinstance(base, dict):
        chosen["baseline"] = {name: {k: v for k, v in part.items() if k in ("accuracy", "macro_f1", "micro_f1")}
                              for name, part in base.items() if isinstance(part, dict) and name in ("cv", "val", "test")}
    return numbers(chosen)


#: Keys of a metrics.jsonl row that are not measurements (the step, the phase, flags).
_NOT_MEASURED = ("epoch", "phase", "phase_epoch", "best")


def epoch_numbers(row: dict[str, Any]) -> dict[str, float]:
    """The measurements of one metrics.jsonl row (losses, accuracies, seconds)."""
    return numbers({key: value for key, value in row.items() if key not in _NOT_MEASURED})


def replay(run_dir: str | Path, names: str | Sequence[str] | None) -> list[Tracker]:
    """Log a finished run folder to each named tracker: its parameters, each ``metrics.jsonl``
    row as an epoch, the final metrics and the ``report/`` folder."""
    folder = Path(run_dir)
    trackers = trackers_for(names, folder)
    if not trackers:
        return []
    record = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    params = {**(record.get("config") or {}), "zoo_version": record.get("zoo_version"), "run": str(folder)}
    rows = []
    if (folder / "metrics.jsonl").is_file():
        for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break
    metrics_path = folder / "report" / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    for tracker in trackers:
        tracker.start(params)
        for row in rows:
            tracker.epoch(row)
        tracker.finish(metrics, folder / "report")
    return trackers

