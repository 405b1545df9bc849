"""``zoo.finetune``: one call from a backbone and a labelled dataset to a run folder with evidence.

A run folder a person can read::

    config.json      the resolved configuration, the data summary, zoo's version
    labels.json      class names, in the order of the model's outputs
    skipped.json     inputs dropped by --skip-bad (only when there were any)
    metrics.jsonl    one line per epoch and phase
    checkpoints/     epoch-NNNN.pt (every epoch), best.json, final.pt
    features/        which cached embeddings the run used
    report/          metrics.json (val and test: accuracy, macro-F1, per-class, confusion),
                     curves.png, confusion_val.png, confusion_test.png
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from zoo.__about__ import __version__
from zoo.errors import ZooError

__all__ = ["finetune", "Run", "open_run"]


@dataclass(frozen=True)
class Run:
    """A finished (or interrupted) run, read from its folder."""

    dir: Path
    config: dict[str, Any]
    classes: tuple[str, ...]
    history: tuple[dict[str, Any], ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None

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
        for name in ("val", "test"):
            m = self.metrics.get(name)
            if m:
                parts.append(f"{name} acc {m['accuracy']:.3f} macro-F1 {m['macro_f1']:.3f} (n={m['n']})")
        return ", ".join(parts)

    def load_model(self, device: Any = None):
        """The fine-tuned classifier (backbone + head) as a torch module in eval mode."""
        import torch

        from zoo.loading import load
        from zoo.train.config import FinetuneConfig
        from zoo.train.heads import make_head
        from zoo.train.recipe import Classifier

        config = FinetuneConfig.from_dict(self.config)
        final = torch.load(self.dir / "checkpoints" / "final.pt", map_location="cpu", weights_only=True)
        backbone = load(config.model)
        head = make_head(config.head, backbone.feature_dim, len(self.classes), hidden=config.hidden,
                         dropout=config.dropout)
        backbone.body.load_state_dict(final["body"], strict=False)
        head.load_state_dict(final["head"])
        model = Classifier(backbone, head).eval()
        return model.to(device) if device is not None else model


def open_run(run_dir: str | Path) -> Run:
    """Read a run folder (finished or not)."""
    folder = Path(run_dir)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ZooError(f"{folder}: not a zoo run folder (no config.json)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    history = []
    metrics_path = folder / "metrics.jsonl"
    if metrics_path.is_file():
        for line in metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                history.append(json.loads(line))
            except ValueError:
                break  # a torn last line of a killed run
    report = folder / "report" / "metrics.json"
    metrics = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
    best_path = folder / "checkpoints" / "best.json"
    best = json.loads(best_path.read_text(encoding="utf-8")) if best_path.is_file() else None
    return Run(dir=folder, config=config["config"], classes=tuple(labels), history=tuple(history),
               metrics=metrics, best=best)


def _default_dir(model: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model.replace('/', '--')}-{stamp}"


def finetune(
    model: str | None = None,
    data: str | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
    **options: Any,
) -> Run:
    """Fine-tune ``model`` on ``data`` and return the :class:`Run`.

    ``options`` are the fields of :class:`zoo.train.config.FinetuneConfig` (``per_class``,
    ``unfreeze``, ``head``, ``seed``...). ``resume=RUN_DIR`` continues a killed run from its last
    complete checkpoint with its saved configuration.
    """
    import torch

    from zoo.atomic import atomic_write_json
    from zoo.data import make_splits
    from zoo.loading import load
    from zoo.pulling import pull, resolve_card
    from zoo.train.config import FinetuneConfig
    from zoo.train.recipe import Trainer

    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise ZooError(f"{run_dir}: cannot resume: no config.json (is it a zoo run folder?)")
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["config"]
        # how to compute may change on resume (another machine); what to compute may not
        config = FinetuneConfig.from_dict({**saved, **{k: v for k, v in options.items()
                                                        if k in ("device", "workers", "engine")}})
    else:
        if model is None or data is None:
            raise ZooError("finetune needs a model and data (or resume=RUN_DIR)")
        config = FinetuneConfig(model=model, data=str(data), **options)
        run_dir = Path(out) if out is not None else _default_dir(model)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ZooError(f"{run_dir}: the run folder exists and is not empty; choose another --out, "
                           f"or continue it with --resume {run_dir}")

    card = resolve_card(config.model)
    config = config.resolved(card.modality)
    started = time.perf_counter()
    splits = make_splits(config.data, modality=card.modality, val=config.val, test=config.test,
                         val_split=config.val_split, per_class=config.per_class, seed=config.seed,
                         skip_bad=config.skip_bad)
    run_dir.mkdir(parents=True, exist_ok=True)
    fetched = pull(card, quiet=not progress)
    if resume is None:
        atomic_write_json(run_dir / "config.json", {
            "config": config.to_dict(), "zoo_version": __version__, "data": splits.summary(),
            "weights": {"source": fetched.locator, "revision": fetched.resolved or fetched.revision,
                        "sha256": {f.name: f.sha256 for f in fetched.files}},
        })
        atomic_write_json(run_dir / "labels.json", list(splits.train.classes))
        if splits.skipped:
            atomic_write_json(run_dir / "skipped.json",
                              [{"where": p.where, "reason": p.reason} for p in splits.skipped])
            say(f"skipped {len(splits.skipped)} bad inputs (listed in {run_dir / 'skipped.json'})")
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    say(f"fine-tuning {config.model} on {len(splits.train)} train / {len(splits.val)} val"
        + (f" / {len(splits.test)} test" if splits.test is not None else "")
        + f" examples, {len(splits.train.classes)} classes, on {device}")
    backbone = load(card, device=device)
    trainer = Trainer(config, run_dir, splits, backbone, fetched, device=device, log=say, progress=progress)
    loop = trainer.fit(resume=resume is not None)
    _finish(trainer, loop, run_dir)
    _record_facts(run_dir, trainer)
    say(f"done in {time.perf_counter() - started:.0f}s")
    return open_run(run_dir)


def _record_facts(run_dir: Path, trainer: Any) -> None:
    """config.json says which engine computed each set's features (and how far it was from
    PyTorch), and which class weights the loss used."""
    from zoo.atomic import atomic_write_json

    records = trainer.feature_records
    path = run_dir / "config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved["class_weights"] = (dict(zip(trainer.classes, trainer.class_weights)) if trainer.class_weights
                              else None)
    # a resumed run keeps what its first part recorded for the sets it did not embed again
    saved["frozen_pass"] = {**saved.get("frozen_pass", {}),
                            **{name: {"cache": "hit" if r["hit"] else "computed", **r.get("engine", {})}
                               for name, r in records.items()}}
    atomic_write_json(path, saved)


def _finish(trainer: Any, loop: dict[str, Any], run_dir: Path) -> None:
    """Evaluate the restored best model, save it, and write the report."""
    import torch

    from zoo.atomic import atomic_torch_save, atomic_write_json
    from zoo.train.metrics import classification_report
    from zoo.train.report import plot_confusion, plot_curves

    best = loop["best"]
    phase = best["phase"] if best else 0
    classes = trainer.classes
    report: dict[str, Any] = {"best_epoch": best["epoch"] if best else None, "best_phase": phase,
                              "stopped": loop.get("stopped")}
    folder = run_dir / "report"
    folder.mkdir(exist_ok=True)
    for name, dataset in (("val", trainer.splits.val), ("test", trainer.splits.test)):
        if dataset is None or len(dataset) == 0:
            continue
        logits = trainer.logits(name, dataset, phase)
        labels = torch.tensor([e.label for e in dataset.examples])
        report[name] = classification_report(labels.numpy(), logits.argmax(1).numpy(), classes)
        plot_confusion(report[name]["confusion"], classes, folder / f"confusion_{name}.png",
                       f"{name}: accuracy {report[name]['accuracy']:.3f}")
    atomic_write_json(folder / "metrics.json", report)
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if history:
        plot_curves(history, folder / "curves.png")
    atomic_torch_save(run_dir / "checkpoints" / "final.pt", {
        "head": {k: v.detach().cpu() for k, v in trainer.model.head.state_dict().items()},
        "body": trainer._trained_body(phase), "best": best,
    })
    atomic_write_json(run_dir / "features" / "index.json", trainer.feature_records)
