"""A run folder as a typed record: what ``zoo finetune`` wrote, read without the trainer.

Each part of the record is written once, when it is known, by :class:`RunWriter`, and never read
back by the process that wrote it (it keeps the record in memory):

====================  ======================================================================
``config.json``        at the start: the options (resolved: every ``auto`` decided), the plan
                       and why, the task and its targets, the data's summary and fingerprints,
                       the pulled weights' identity, zoo's version
``labels.json``        at the start: the names of the model's outputs, in order (classes,
                       labels, or regression targets)
``skipped.json``       at the start, when ``--skip-bad`` left inputs out
``choices.json``       as the run decides: the cut, the head and its strength, the label prior,
                       thresholds, class weights, the frozen pass that computed the features
``metrics.jsonl``      one line per epoch (the loop's)
``report/metrics.json`` at the end: held-out metrics, the judgement and the baseline, the lines a
                       person reads (``summary``, ``lines``)
====================  ======================================================================

Embedding, export and the report read a run through :func:`open_run`; they depend on this
module, never on ``zoo.train``. Folders written before ``choices.json`` existed kept those facts
in ``config.json``, where they are still read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.__about__ import __version__
from zoo.errors import ZooError

__all__ = ["Run", "RunWriter", "open_run", "read_run_json", "CHOICES"]

#: Facts a run chooses as it goes: in ``choices.json`` (``config.json`` in older folders).
CHOICES = ("cut", "label_prior", "multi_label", "class_weights", "frozen_pass", "head")


def read_run_json(folder: Path, name: str, *, optional: bool = False) -> Any:
    """``name`` in a run folder, parsed; a missing or damaged file is one line naming it (a missing
    ``optional`` one is None: a file another recipe, or an unfinished run, does not write)."""
    path = Path(folder) / name
    if not path.is_file():
        if optional:
            return None
        if name == "config.json":
            raise ZooError(f"{folder}: not a zoo run folder (no config.json)")
        raise ZooError(f"{path}: missing, so the run folder is incomplete; fine-tune again into a new folder")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path}: damaged (not valid JSON: {exc}); restore it from a copy, or fine-tune again into a "
                       f"new folder") from None
    except OSError as exc:
        raise ZooError(f"{path}: cannot be read ({exc.strerror or exc}); check the run folder") from None


@dataclass(frozen=True)
class Run:
    """A finished (or interrupted) run, read from its folder."""

    dir: Path
    config: dict[str, Any]  # the options, resolved (FinetuneOptions.to_dict)
    classes: tuple[str, ...]  # the outputs' names: classes, labels, or targets
    history: tuple[dict[str, Any], ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    choices: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)  # the pulled weights it used: source, revision, sha256
    task: dict[str, Any] = field(default_factory=lambda: {"name": "classification"})
    plan: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- what it chose

    @property
    def task_name(self) -> str:
        return str(self.task.get("name", "classification"))

    @property
    def cut(self) -> tuple[str, ...] | None:
        """Where the embedding is taken, when not the card's cut point."""
        cut = self.choices.get("cut")
        return tuple(cut) if cut else None

    @property
    def label_prior(self) -> dict[str, Any] | None:
        """The class names' zero-shot classifier mixed into the head (text runs), or None."""
        return self.choices.get("label_prior")

    @property
    def multi_label(self) -> dict[str, Any] | None:
        """A multi-label run's ``{"thresholds": {label: t}}``, or None."""
        return self.choices.get("multi_label")

    @property
    def front_end(self) -> Any:
        """The front end the run declared (a ``zoo.card.FrontEndSpec``: sounds), or None."""
        from zoo.card import FrontEndSpec

        declared = self.config.get("front_end")
        return FrontEndSpec.from_dict(declared) if isinstance(declared, dict) and "params" in declared else None

    @property
    def registry(self) -> tuple[str, ...]:
        return tuple(self.config.get("registry") or ())

    # ----------------------------------------------------------------- what it scored

    @property
    def test_accuracy(self) -> float | None:
        return (self.metrics.get("test") or {}).get("accuracy")

    @property
    def val_accuracy(self) -> float | None:
        return (self.metrics.get("val") or {}).get("accuracy")

    def summary(self) -> str:
        parts = [f"run {self.dir}"]
        if self.best:
            parts.append(f"best epoch {self.best['epoch']} (phase {self.best['phase']})")
        if self.metrics.get("summary"):
            parts.append(str(self.metrics["summary"]))
        return ", ".join(parts)

    def report_lines(self) -> list[str]:
        """What the run chose and how it compares with the baseline, in plain lines (its task wrote them)."""
        return [str(line) for line in self.metrics.get("lines") or ()]

    # ----------------------------------------------------------------- what it was made from

    def card(self) -> Any:
        """The card of the run's backbone (found with the registry files the run was given), reading
        its inputs as the run did: through its front end, or at a dense task's input spec."""
        from zoo.frontend import with_front_end
        from zoo.pulling import resolve_card

        card = with_front_end(resolve_card(self.config["model"], self.registry), self.front_end)
        return with_input(card, self.task.get("input"))

    def check_weights(self) -> None:
        """The pulled weights are still the ones the run was trained on (the sha256 of every file
        recorded at its start), or an error naming both hashes: a run never silently mixes its head
        with another backbone."""
        from zoo.pulling import check_same_weights, pull

        fetched = pull(self.config["model"], quiet=True, registry_files=self.registry)
        check_same_weights(self.weights.get("sha256") or {}, fetched, f"run {self.dir}")

    def load_model(self, device: Any = None) -> Any:
        """The fine-tuned network (backbone + the task's head) as a torch module in eval mode; see
        :func:`zoo.runs.model.load_model`."""
        from zoo.runs.model import load_model

        return load_model(self, device)


def input_record(spec: Any) -> dict[str, Any]:
    """A :class:`zoo.card.InputSpec` as the task record keeps it (a dense task reads whole images
    at its own size: the run, its export and the runtime read them so)."""
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()
            if v is not None and k != "front_end"}


def with_input(card: Any, record: Mapping[str, Any] | None) -> Any:
    """``card`` reading its inputs at the spec of ``record`` (:func:`input_record`), or as it is."""
    if not record:
        return card
    from dataclasses import replace

    spec = replace(card.input, **{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()})
    return replace(card, input=spec)


def open_run(run_dir: str | Path) -> Run:
    """Read a run folder (finished or not)."""
    folder = Path(run_dir)
    config = read_run_json(folder, "config.json")
    labels = read_run_json(folder, "labels.json")
    if (not isinstance(config, dict) or not isinstance(config.get("config"), dict) or not isinstance(labels, list)
            or not all(isinstance(label, str) for label in labels)):
        raise ZooError(f"{folder}: config.json or labels.json does not hold what zoo wrote there; restore them "
                       f"or fine-tune again into a new folder")
    history = []
    metrics_path = folder / "metrics.jsonl"
    if metrics_path.is_file():
        for line in metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                history.append(json.loads(line))
            except ValueError:
                break  # a torn last line of a killed run
    metrics = read_run_json(folder, "report/metrics.json") if (folder / "report" / "metrics.json").is_file() else {}
    best = read_run_json(folder, "checkpoints/best.json") if (folder / "checkpoints" / "best.json").is_file() else None
    if (folder / "choices.json").is_file():
        choices = read_run_json(folder, "choices.json")
    else:  # a folder from before choices.json: the facts were amended into config.json
        choices = {key: config[key] for key in CHOICES if key in config}
    if not isinstance(choices, dict):
        raise ZooError(f"{folder / 'choices.json'}: does not hold what zoo wrote there; fine-tune again into a new "
                       f"folder")
    task = config.get("task") if isinstance(config.get("task"), dict) else {"name": "classification"}
    if "task" not in config and choices.get("multi_label"):
        task = {"name": "multi-label"}
    return Run(dir=folder, config=config["config"], classes=tuple(labels), history=tuple(history),
               metrics=metrics if isinstance(metrics, dict) else {}, best=best, choices=choices,
               weights=config.get("weights") or {}, task=task, plan=config.get("plan") or {})


class RunWriter:
    """Writes a run folder's record at its known points (see the module); the in-memory record is
    what the run itself reads."""

    def __init__(self, folder: Path, *, resuming: bool = False) -> None:
        self.folder = folder
        self.choices: dict[str, Any] = {}
        if resuming and (folder / "choices.json").is_file():
            saved = read_run_json(folder, "choices.json")
            self.choices = saved if isinstance(saved, dict) else {}

    def start(self, *, config: Mapping[str, Any], task: Mapping[str, Any], plan: Mapping[str, Any],
              data: Mapping[str, Any], fingerprints: Mapping[str, str], weights: Mapping[str, Any],
              outputs: Any, skipped: Any = ()) -> None:
        """What a new run records before any work."""
        from zoo.atomic import atomic_write_json

        atomic_write_json(self.folder / "config.json", {
            "config": dict(config), "zoo_version": __version__, "task": dict(task), "plan": dict(plan),
            "data": dict(data), "fingerprints": dict(fingerprints), "weights": dict(weights)})
        atomic_write_json(self.folder / "labels.json", list(outputs))
        if skipped:
            atomic_write_json(self.folder / "skipped.json", [{"where": p.where, "reason": p.reason} for p in skipped])

    def choose(self, **facts: Any) -> None:
        """Record choices (``cut=...``, ``label_prior=...``) as the run makes them."""
        from zoo.atomic import atomic_write_json

        self.choices.update(facts)
        atomic_write_json(self.folder / "choices.json", self.choices)

    def results(self, metrics: Mapping[str, Any]) -> None:
        from zoo.atomic import atomic_write_json

        atomic_write_json(self.folder / "report" / "metrics.json", dict(metrics))
