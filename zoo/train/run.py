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
    cut: tuple[str, ...] | None = None  # where the embedding is taken, when not the card's cut point
    label_prior: dict[str, Any] | None = None  # the head mixes in the class names' zero-shot classifier
    multi_label: dict[str, Any] | None = None  # a sigmoid per label: {"thresholds": {label: t}}
    weights: dict[str, Any] = field(default_factory=dict)  # the pulled weights it used: source, revision, sha256

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
            if m and self.multi_label:
                parts.append(f"{name} micro-F1 {m['micro_f1']:.3f} macro-F1 {m['macro_f1']:.3f} exact match "
                             f"{m['accuracy']:.3f} (n={m['n']})")
            elif m:
                parts.append(f"{name} acc {m['accuracy']:.3f} macro-F1 {m['macro_f1']:.3f} (n={m['n']})")
        return ", ".join(parts)

    def report_lines(self) -> list[str]:
        """What the run chose and how it compares with the baseline, in plain lines."""
        m = self.metrics
        lines = []
        if m.get("multi_label"):
            head = m.get("cv", {}).get("head", {})
            shown = ", ".join(f"{name} {t:.2f}" for name, t in list(m.get("thresholds", {}).items())[:6])
            lines.append(f"multi-label head: cross-validated micro-F1 {head.get('micro_f1', 0):.3f} macro-F1 "
                         f"{head.get('macro_f1', 0):.3f} over {head.get('folds')} folds (thresholds chosen on the "
                         f"same folds: slightly optimistic); thresholds {shown}")
            if m.get("baseline_line"):
                lines.append(m["baseline_line"])
            return lines
        tuned = m.get("contrastive")
        if tuned:
            rounds = tuned["rounds"]
            line = (f"contrastive: {tuned['pairs']} pairs, pair loss {rounds[0]['pair_loss']:.3f} -> "
                    f"{rounds[-1]['pair_loss']:.3f} over {len(rounds)} rounds" if rounds else
                    f"contrastive: {tuned.get('stopped', 'no round completed')}")
            if tuned.get("judged") and rounds:
                kept = tuned["best"]
                line += (f"; kept round {kept} (val loss {rounds[kept - 1]['val_loss']:.3f} vs the pulled encoder's "
                         f"{tuned['start']['val_loss']:.3f})" if kept else
                         f"; kept the pulled encoder (val loss {tuned['start']['val_loss']:.3f}, no round beat it)")
            lines.append(line)
        if m.get("validation") == "cv":
            head = m.get("cv", {}).get("head", {})
            after = " (optimistic: the encoder was trained on every fold)" if tuned else ""
            lines.append(f"cut {'+'.join(m.get('cut', []))}: cross-validated accuracy {head.get('accuracy', 0):.3f} "
                         f"macro-F1 {head.get('macro_f1', 0):.3f} over {head.get('folds')} folds x "
                         f"{head.get('repeats')}{after}")
            prior = m.get("cv", {}).get("label_prior")
            if prior:
                chosen = next(s for s in prior["scores"] if (s["weight"], s["scale"]) == (prior["weight"], prior["scale"]))
                alone = next(s for s in prior["scores"] if s["weight"] == 1.0)
                lines.append(f"label names as a prior, weight {prior['weight']:g}: cross-validated accuracy "
                             f"{chosen['accuracy']:.3f} (zero-shot alone {alone['accuracy']:.3f})")
            schedule = m.get("cv", {}).get("schedule")
            if schedule:
                lines.append(f"unfrozen layers {'kept' if schedule['kept'] else 'not kept'}: {schedule['unfrozen']:.3f} "
                             f"vs the head's {schedule['head']:.3f} on {schedule['folds']} folds")
        if m.get("baseline_line"):
            lines.append(m["baseline_line"])
        return lines

    def card(self) -> Any:
        """The card of the run's backbone (found with the registry files the run was given)."""
        from zoo.frontend import with_front_end
        from zoo.pulling import resolve_card

        return with_front_end(resolve_card(self.config["model"], self.config.get("registry") or ()), self.front_end)

    @property
    def front_end(self) -> Any:
        """The front end the run declared (a ``zoo.card.FrontEndSpec``: sounds), or None."""
        from zoo.card import FrontEndSpec

        declared = self.config.get("front_end")
        return FrontEndSpec.from_dict(declared) if isinstance(declared, dict) and "params" in declared else None

    def check_weights(self) -> None:
        """The pulled weights are still the ones the run was trained on (the sha256 of every file
        recorded at its start), or an error naming both hashes: a run never silently mixes its head
        with another backbone."""
        from zoo.pulling import check_same_weights, pull

        fetched = pull(self.config["model"], quiet=True, registry_files=self.config.get("registry") or ())
        check_same_weights(self.weights.get("sha256") or {}, fetched, f"run {self.dir}")

    def load_model(self, device: Any = None):
        """The fine-tuned classifier (backbone + head) as a torch module in eval mode: class logits
        out (a multi-label run's are per label: a sigmoid of each, against its threshold)."""
        import torch

        from zoo.loading import load
        from zoo.train.config import FinetuneConfig
        from zoo.train.heads import make_head
        from zoo.train.recipe import Classifier

        config = FinetuneConfig.from_dict(self.config)
        self.check_weights()
        path = self.dir / "checkpoints" / "final.pt"
        if not path.is_file():
            raise ZooError(f"{path}: the run has no final model (did it finish?); finish it with "
                           f"`zoo finetune --resume {self.dir}`")
        try:
            final = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or overwritten file: torch raises anything
            raise ZooError(f"{path}: damaged ({type(exc).__name__}: {exc}); delete it and run `zoo finetune "
                           f"--resume {self.dir}` to write it again") from None
        backbone = load(self.card(), cut=self.cut)
        head = make_head(config.head, backbone.feature_dim, len(self.classes), hidden=config.hidden,
                         dropout=config.dropout, normalised=config.validation == "cv")
        backbone.body.load_state_dict(final["body"], strict=False)
        if self.label_prior:
            from zoo.train.heads import LabelAwareHead

            head = LabelAwareHead(head, torch.zeros(len(self.classes), backbone.feature_dim),
                                  self.label_prior["weight"], self.label_prior["scale"])
        head.load_state_dict(final["head"])
        model = Classifier(backbone, head).eval()
        return model.to(device) if device is not None else model


def read_run_json(folder: Path, name: str) -> Any:
    """``name`` in a run folder, parsed; a missing or damaged file is one line naming it."""
    path = folder / name
    if not path.is_file():
        if name == "config.json":
            raise ZooError(f"{folder}: not a zoo run folder (no config.json)")
        raise ZooError(f"{path}: missing, so the run folder is incomplete; fine-tune again into a new folder")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path}: damaged (not valid JSON: {exc}); restore it from a copy, or fine-tune again into a "
                       f"new folder") from None


def open_run(run_dir: str | Path) -> Run:
    """Read a run folder (finished or not)."""
    folder = Path(run_dir)
    config = read_run_json(folder, "config.json")
    labels = read_run_json(folder, "labels.json")
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict) or not isinstance(labels, list):
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
    report = folder / "report" / "metrics.json"
    metrics = read_run_json(folder, "report/metrics.json") if report.is_file() else {}
    best = read_run_json(folder, "checkpoints/best.json") if (folder / "checkpoints" / "best.json").is_file() else None
    return Run(dir=folder, config=config["config"], classes=tuple(labels), history=tuple(history),
               metrics=metrics, best=best, cut=tuple(config["cut"]) if config.get("cut") else None,
               label_prior=config.get("label_prior"), multi_label=config.get("multi_label"),
               weights=config.get("weights") or {})


def _default_dir(model: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model.replace('/', '--').replace(':', '-')}-{stamp}"  # hf:org/x: no ':' on Windows


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
    from zoo.distributed import world
    from zoo.train.config import FinetuneConfig

    from zoo.trackers import check_trackers, replay

    report_to = check_trackers(options.pop("report_to", None))  # trackers: a missing library said before any work
    here = world()
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    if not here.main:  # under torch.distributed rank 0 speaks for every rank
        say, progress = (lambda text: None), False
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise ZooError(f"{run_dir}: cannot resume: no config.json (is it a zoo run folder?)")
        saved = read_run_json(run_dir, "config.json")
        if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
            raise ZooError(f"{run_dir / 'config.json'}: does not hold a run's configuration; fine-tune again into "
                           f"a new folder")
        saved = saved["config"]
        # how to compute may change on resume (another machine); what to compute may not
        config = FinetuneConfig.from_dict({**saved, **{k: v for k, v in options.items()
                                                        if k in ("device", "workers", "engine")}})
    else:
        if model is None or data is None:
            raise ZooError("finetune needs a model and data (or resume=RUN_DIR)")
        config = FinetuneConfig(model=model, data=str(data), **options)
        from zoo.pulling import check_name

        check_name(model)  # a model name its finder refuses leaves no run folder named after it
        run_dir = Path(out) if out is not None else _default_dir(model)
        if here.main and run_dir.exists() and any(run_dir.iterdir()):
            raise ZooError(f"{run_dir}: the run folder exists and is not empty; choose another --out, "
                           f"or continue it with --resume {run_dir}")
    from zoo.stopping import reporting_stops, stopped_run

    # SIGINT/SIGTERM: one line with the last checkpoint and the resume command (rank 0 says it)
    with reporting_stops(lambda signal_name: stopped_run(signal_name, run_dir) if here.main else ""):
        run = (_finetune_distributed if here.distributed else _finetune_in)(config, run_dir, resume is not None, say,
                                                                            progress)
    if here.main:
        replay(run.dir, report_to)  # trackers: the finished run folder replayed (the loop will call them per epoch)
    return run


def _finetune_distributed(config: Any, run_dir: Path, resuming: bool, say: Callable[[str], None],
                          progress: bool) -> Run:
    """One rank of a run under torch.distributed (torchrun, or ``zoo finetune --nproc``).

    Every rank runs the whole recipe on the same data: the frozen pass, validation and the test
    are sharded and gathered (:mod:`zoo.distributed`), the unfrozen phases step one
    DistributedDataParallel model, and everything else (the head on cached features,
    cross-validation, the choices) is computed identically on every rank from the same numbers,
    so no rank waits for another's decision. Rank 0 owns the run folder. The other ranks write
    what the recipe writes into a private scratch copy (deleted at the end), which keeps the
    recipe free of rank checks; a resumed run's scratch starts as a copy of the run folder, so
    resuming needs the run folder on a filesystem every node sees (as multi-node training
    always does). Nothing in a checkpoint depends on the world size, so a run may be resumed
    with another one. The scratch copy is a hidden sibling of the run folder (``.NAME.rankR``):
    a rank killed with SIGKILL cannot remove it, and the next resume replaces it."""
    import shutil

    from zoo.distributed import barrier, broadcast, init_world

    from zoo.devices import torch_device

    here = init_world(torch_device(config.device))
    run_dir = Path(broadcast(str(run_dir)))  # rank 0's default name (its clock) for every rank
    scratch = None
    if not here.main:
        scratch = run_dir.parent / f".{run_dir.name}.rank{here.rank}"
        shutil.rmtree(scratch, ignore_errors=True)  # a killed rank's
        if resuming:
            shutil.copytree(run_dir, scratch, ignore=shutil.ignore_patterns(".lock"))
    barrier()  # the copies are made before rank 0 writes anything
    try:
        run = _finetune_in(config, run_dir if scratch is None else scratch, resuming, say, progress)
        barrier()  # rank 0's folder is complete
        return run if here.main else open_run(run_dir) if (run_dir / "config.json").is_file() else run
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _finetune_in(config: Any, run_dir: Path, resuming: bool, say: Callable[[str], None], progress: bool) -> Run:
    """The run in ``run_dir``: created (or resumed), locked, and removed if it failed before it began."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(f"{run_dir}: cannot create the run folder ({exc.strerror}); choose a writable --out") from None
    lock = _lock(run_dir)
    try:
        return _finetune(config, run_dir, resuming, say, progress)
    except BaseException:
        if created and not (run_dir / "config.json").is_file():  # failed before it began: leave nothing behind
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        lock.release()


def _lock(run_dir: Path) -> Any:
    """One process at a time per run folder: a second ``--resume`` (or a run into the same
    ``--out``) would interleave its writes with the first's."""
    import filelock

    lock = filelock.FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise ZooError(f"{run_dir}: another `zoo finetune` is writing this run folder; wait for it to end (or stop "
                       f"it), then resume with `zoo finetune --resume {run_dir}`") from None
    except OSError as exc:
        raise ZooError(f"{run_dir}: cannot write in the run folder ({exc.strerror}); choose a writable --out") from None
    return lock


def _finetune(config: Any, run_dir: Path, resuming: bool, say: Callable[[str], None], progress: bool) -> Run:
    """The run itself, in a locked ``run_dir``."""
    import torch

    from zoo.data import make_splits
    from zoo.devices import torch_device
    from zoo.loading import load
    from zoo.pulling import pull, resolve_card
    from zoo.train.recipe import Trainer
    from zoo.train.selection import parse_cut

    from zoo.distributed import world

    resume = run_dir if resuming else None
    device = torch_device(config.device)  # a device this machine lacks: refused before any work
    here = world()
    if here.distributed:
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", here.local_rank)  # one GPU per rank of this node
        if config.batch_size < here.size:
            raise ZooError(f"--batch-size {config.batch_size} is smaller than the {here.size} processes: each rank "
                           f"takes a part of every batch; use a batch of at least {here.size}")
    card = resolve_card(config.model, config.registry)
    started = time.perf_counter()
    if _is_multi_label(config, card):
        from dataclasses import replace

        config = replace(config, multi_label="yes", validation="cv", unfreeze=0, recipe="gradual")
        config.check_multi_label()
        return _finetune_multilabel(card, config, run_dir, resume is not None, device, progress, say, started)
    splits = make_splits(config.data, modality=card.modality, val=config.val, test=config.test,
                         val_split=config.split_fraction, per_class=config.per_class, seed=config.seed,
                         skip_bad=config.skip_bad)
    card, config = _front_end(card, config, splits.train.modality)
    fingerprints = {role: dataset.fingerprint() for role, dataset in
                    (("train", splits.train), ("val", splits.val), ("test", splits.test)) if dataset is not None}
    if resume is not None:
        _check_same_data(run_dir, splits, fingerprints)
    names = _label_texts(config, splits, card)
    config, why = _validation(config, splits)
    config, how = _recipe(config, card, splits)
    config = config.resolved(card.modality, _learning(card))
    fetched = pull(card, quiet=not progress)
    if resume is None:
        _write_start(run_dir, config, fetched, splits.summary(), splits.train.classes, splits.skipped, say,
                     fingerprints=fingerprints)
    say(why)
    say(how)
    if config.validation == "cv":
        splits = _all_labelled(splits)
    say(f"fine-tuning {config.model} on {len(splits.train)} train / {len(splits.val)} val"
        + (f" / {len(splits.test)} test" if splits.test is not None else "")
        + f" examples, {len(splits.train.classes)} classes, on {device}")
    if config.recipe == "contrastive":
        trainer, loop, selection = _contrastive(card, splits, config, run_dir, fetched, resume is not None,
                                                device, say, progress)
        _finish(trainer, loop, run_dir, selection)
        (run_dir / "checkpoints" / "encoder.pt").unlink(missing_ok=True)  # final.pt holds the adapted encoder
        return _done(run_dir, trainer, started, say)
    selection, labelled_x, test_x, prior = None, None, None, None
    cut = parse_cut(card, config.cut)
    if config.validation == "cv":
        selection, labelled_x, test_x = _selection(card, splits, config, run_dir, resume is not None, device, say)
        cut = selection.cut
        prior = _prior(card, splits, config, selection, labelled_x, run_dir, resume is not None, say, names)
    if cut == (card.embedding.node,):
        cut = None  # the card's own cut point: the plain backbone, its features cached as always
    _record_cut(run_dir, cut)
    backbone = load(card, device=device, cut=cut)
    trainer = Trainer(config, run_dir, splits, backbone, fetched, device=device, log=say, progress=progress)
    if prior is not None:
        from zoo.train.heads import LabelAwareHead

        trainer.model.head = LabelAwareHead(trainer.model.head, prior.prototypes, prior.weight, prior.scale).to(device)
    if selection is not None:
        from zoo.train.crossfit import CrossFit

        trainer.features["train"] = torch.from_numpy(labelled_x).float()
        if test_x is not None:
            trainer.features["test"] = torch.from_numpy(test_x).float()
        from zoo.train.recipe import layer_record

        trainer.feature_records["labelled"] = layer_record(selection.features, selection.cut)
        loop = CrossFit(trainer, selection, labelled_x).fit(resume=resume is not None)
    else:
        loop = trainer.fit(resume=resume is not None)
    _finish(trainer, loop, run_dir, selection, prior)
    return _done(run_dir, trainer, started, say)


def _front_end(card: Any, config: Any, modality: str) -> tuple[Any, Any]:
    """The card reading the data through a front end when the data is of another modality (sounds
    for an image backbone), and the config with the front end's every parameter declared: the
    run records it, and a resumed run reads its data exactly as before."""
    from dataclasses import replace

    from zoo.frontend import bridge, declared, front_end_of

    card = bridge(card, modality, config.front_end)  # a resumed run's declaration is checked again
    if card.input.front_end is None:
        return card, config
    allowed = getattr(front_end_of(card.input.front_end), "augmentations", None)
    if allowed is not None and config.augment not in allowed:
        raise ZooError(f"--augment {config.augment} is for images; {modality} data takes "
                       f"{' or '.join(allowed)} (front end {card.input.front_end.name!r})")
    return card, replace(config, front_end=declared(card))


def _learning(card: Any) -> Any:
    """The front end's own choices of unfreezing and learning rate (``zoo.train.config.LEARNING``)."""
    if card.input.front_end is None:
        return None
    from zoo.frontend import front_end_of

    return getattr(front_end_of(card.input.front_end), "learning", None)


def _check_same_data(run_dir: Path, splits: Any, fingerprints: dict[str, str]) -> None:
    """A resumed run trains on the data it started with: the same classes and contents (and its
    folder's records are readable before any work is done)."""
    saved = read_run_json(run_dir, "config.json")
    classes = list((saved.get("data") or {}).get("classes") or [])
    if classes and classes != list(splits.classes):
        raise ZooError(f"{run_dir}: cannot resume: the data's classes changed since the run started (then "
                       f"{len(classes)}: {', '.join(classes[:5])}{'...' if len(classes) > 5 else ''}; now "
                       f"{len(splits.classes)}: {', '.join(splits.classes[:5])}{'...' if len(splits.classes) > 5 else ''}); "
                       f"restore the data, or fine-tune again into a new folder")
    labels = read_run_json(run_dir, "labels.json")
    if labels != list(splits.classes):
        raise ZooError(f"{run_dir / 'labels.json'}: lists other classes than the run's data ({len(labels)} vs "
                       f"{len(splits.classes)}); restore the file, or fine-tune again into a new folder")
    for role, before in (saved.get("fingerprints") or {}).items():
        if fingerprints.get(role) != before:
            where = {"train": "training", "val": "validation", "test": "test"}[role]
            raise ZooError(f"{run_dir}: cannot resume: the {where} data changed since the run started (content "
                           f"sha256 {before[:12]}... then, {str(fingerprints.get(role))[:12]}... now); restore the "
                           f"data, or fine-tune again into a new folder")


def _is_multi_label(config: Any, card: Any) -> bool:
    """Whether the run is multi-label: asked for, or (``auto``) a label cell names several labels."""
    if config.multi_label == "yes":
        return True
    from zoo.data.multilabel import SEPARATOR, rows_with_label_sets

    rows = rows_with_label_sets(config.data, card.modality)
    if rows and config.multi_label == "no":
        raise ZooError(f"{rows[0]}: the label names several labels (separated by {SEPARATOR!r})"
                       f"{f', and so do {len(rows) - 1} other rows' if len(rows) > 1 else ''}, but the run is "
                       f"single-label (--single-label); leave that out to train one sigmoid per label, or give "
                       f"each row one label")
    return bool(rows)


def _finetune_multilabel(card: Any, config: Any, run_dir: Path, resume: bool, device: Any, progress: bool,
                         say: Callable[[str], None], started: float) -> Run:
    """A multi-label run (zoo.train.multilabel): cheap enough that a resume simply redoes it from
    the cached features."""
    from zoo.data import open_dataset
    from zoo.data.checks import problems_error
    from zoo.data.multilabel import label_sets
    from zoo.probing.run import cut_features
    from zoo.pulling import pull
    from zoo.report.page import build_at_end
    from zoo.train.multilabel import fit_multilabel

    sets = {role: open_dataset(path, modality=card.modality) for role, path in
            (("train", config.data), ("val", config.val), ("test", config.test)) if path is not None}
    problems = [problem for dataset in sets.values() for problem in dataset.problems]
    if problems and not config.skip_bad:
        raise problems_error(problems)
    # cross-validated on every labelled example: validation data join them
    labelled = _joined(sets["train"], sets["val"]) if "val" in sets else sets["train"]
    train_sets = label_sets(labelled)
    test = sets.get("test")
    test_sets = label_sets(test, train_sets.names) if test is not None else None
    fetched = pull(card, quiet=not progress)
    if not resume:
        summary = {"labels": list(train_sets.names), "train": {"size": len(labelled), "per_label": train_sets.counts()},
                   "val": None, "test": {"size": len(test), "per_label": test_sets.counts()} if test is not None else None,
                   "skipped": len(problems)}
        _write_start(run_dir, config, fetched, summary, train_sets.names, problems, say, cut=None)
    say(f"multi-label: {len(train_sets.names)} labels over {len(labelled)} labelled examples "
        f"({float(train_sets.matrix.sum(1).mean()):.2f} labels per example)" + (f", {len(test)} test" if test else ""))
    x, x_test, record = cut_features(card, labelled, test, (card.embedding.node,), engine=config.engine, say=say,
                                     device=device, workers=config.workers)
    report = fit_multilabel(card, config, run_dir, names=train_sets.names, labelled=labelled,
                            matrix=train_sets.matrix, x=x, test=test,
                            test_matrix=test_sets.matrix if test_sets is not None else None, x_test=x_test,
                            record=record, say=say)
    _amend_config(run_dir, multi_label={"thresholds": report["thresholds"]})
    build_at_end(run_dir, say)  # report page
    run = open_run(run_dir)
    for line in run.report_lines():
        say(line)
    say(f"done in {time.perf_counter() - started:.0f}s")
    return run


def _write_start(run_dir: Path, config: Any, fetched: Any, summary: dict[str, Any], classes: Any, skipped: Any,
                 say: Callable[[str], None], **facts: Any) -> None:
    """What a new run records before any work: config.json (the configuration, the data's summary,
    the pulled weights' identity, and ``facts``), labels.json and, when inputs were skipped,
    skipped.json."""
    from zoo.atomic import atomic_write_json

    atomic_write_json(run_dir / "config.json", {"config": config.to_dict(), "zoo_version": __version__,
                                                "data": summary, **facts, "weights": fetched.weights_record()})
    atomic_write_json(run_dir / "labels.json", list(classes))
    if skipped:
        atomic_write_json(run_dir / "skipped.json", [{"where": p.where, "reason": p.reason} for p in skipped])
        say(f"skipped {len(skipped)} bad inputs (listed in {run_dir / 'skipped.json'})")


def _joined(first: Any, second: Any) -> Any:
    """Two datasets as one, over the union of their label names."""
    from zoo.data.dataset import Dataset, Example

    names = tuple(sorted(set(first.classes) | set(second.classes)))
    examples = tuple(Example(e.item, names.index(d.classes[e.label]), e.where)
                     for d in (first, second) for e in d.examples)
    return Dataset(f"{first.name} + {second.name}", first.modality, names, examples)


def _done(run_dir: Path, trainer: Any, started: float, say: Callable[[str], None]) -> Run:
    _record_facts(run_dir, trainer)
    from zoo.report.page import build_at_end

    build_at_end(run_dir, say)  # report page
    run = open_run(run_dir)
    for line in run.report_lines():
        say(line)
    say(f"done in {time.perf_counter() - started:.0f}s")
    return run


def _recipe(config: Any, card: Any, splits: Any) -> tuple[Any, str]:
    """``recipe="auto"`` decided from the data, and the line that says why."""
    from dataclasses import replace

    from zoo.train.contrastive import CONTRASTIVE_PER_CLASS

    if config.recipe == "contrastive":
        if card.modality != "text":
            raise ZooError(f"model {card.name!r}: --recipe contrastive trains a text encoder on pairs of texts; "
                           f"use --recipe gradual for {card.modality} models")
        return config, "recipe: contrastive encoder training on pairs, then the head (--recipe contrastive)"
    if config.recipe == "gradual":
        return config, "recipe: the head on frozen embeddings, then gradual unfreezing (--recipe gradual)"
    labelled = len(splits.train) + len(splits.val)
    per_class = labelled / max(1, len(splits.classes))
    low, high = CONTRASTIVE_PER_CLASS
    fits = (card.modality == "text" and config.validation == "cv" and config.unfreeze == "auto"
            and config.cut == "auto" and config.head == "linear" and low <= per_class <= high)
    if fits:
        return (replace(config, recipe="contrastive"),
                f"recipe: contrastive encoder training on pairs, then the head ({per_class:.0f} labelled texts per "
                f"class: between {low} and {high}, where it was measured best; --recipe gradual for the other)")
    return replace(config, recipe="gradual"), "recipe: the head on frozen embeddings, then gradual unfreezing"


def _contrastive(card: Any, splits: Any, config: Any, run_dir: Path, fetched: Any, resume: bool, device: Any,
                 say: Callable[[str], None], progress: bool) -> tuple[Any, dict[str, Any], Any]:
    """The contrastive recipe: the encoder trained on pairs, then the head on its embeddings
    (cross-validated on all labelled texts, or trained by epochs against a validation split)."""
    import time as clock

    from zoo.atomic import atomic_write_json
    from zoo.loading import load
    from zoo.train.contrastive import Contrastive
    from zoo.train.recipe import Trainer
    from zoo.train.selection import choose

    _record_cut(run_dir, None)
    trainer = Trainer(config, run_dir, splits, load(card, device=device), fetched, device=device, log=say,
                      progress=progress)
    Contrastive(trainer).fit(resume=resume)
    if config.validation != "cv":
        return trainer, trainer.fit(resume=resume), None
    from zoo.train.crossfit import CrossFit

    path = run_dir / "selection.json"
    x = trainer.features["train"].numpy()
    if resume and path.is_file():
        from zoo.train.selection import Selection

        selection = Selection.from_dict(json.loads(path.read_text(encoding="utf-8")))
    else:
        node = (card.embedding.node,)
        selection = choose({node[0]: x}, splits.train, [node], seed=config.seed,
                           class_weight="balanced" if _balanced(splits.train, config) else None, metric=config.metric,
                           requested=None, started=clock.perf_counter(), record={"encoder": "adapted (contrastive)"})
        atomic_write_json(path, selection.to_dict())
    return trainer, CrossFit(trainer, selection, x).fit(resume=resume), selection


def _validation(config: Any, splits: Any) -> tuple[Any, str]:
    """``validation="auto"`` decided from the data, and the line that says why."""
    from dataclasses import replace

    from zoo.train.selection import CV_LIMIT, CV_PER_CLASS

    labelled = len(splits.train) + len(splits.val)
    per_class = labelled / max(1, len(splits.classes))
    # cross-validation folds all labelled examples: train and validation together
    counts = [a + b for a, b in zip(splits.train.counts().values(), splits.val.counts().values())]
    if config.validation == "cv":
        if min(counts) < 2:
            raise ZooError(f"{config.data}: --validation cv needs at least 2 labelled examples per class (a fold must "
                           f"both train on a class and test it); give more examples, or use --validation split")
        return config, f"validation: cross-validation on all {labelled} labelled examples (--validation cv)"
    if config.validation == "split":
        return config, "validation: a held-out split (--validation split)"
    asked = [name for name, value in (("--val", config.val), ("--val-split", config.val_split)) if value is not None]
    if asked:
        reason = f"{' and '.join(asked)} given"
    elif config.head != "linear":
        reason = f"--head {config.head} trains by epochs"
    elif per_class > CV_PER_CLASS:
        reason = (f"{per_class:.0f} labelled examples per class (over {CV_PER_CLASS}): a validation split is "
                  f"large enough")
    elif labelled > CV_LIMIT:
        reason = f"{labelled} labelled examples (over {CV_LIMIT}): cross-validating every cut would be slow"
    elif min(counts) < 2:
        reason = "a class has a single labelled example, which no fold can both train on and test"
    else:
        return (replace(config, validation="cv"),
                f"validation: cross-validation on all {labelled} labelled examples (small data: at most "
                f"{CV_PER_CLASS} per class); every example is trained on")
    return replace(config, validation="split"), f"validation: a held-out split ({reason})"


def _all_labelled(splits: Any) -> Any:
    """The splits of a cross-validated run: every labelled example trains, the validation set is empty."""
    from dataclasses import replace

    from zoo.data.dataset import Dataset

    train = splits.train
    labelled = Dataset(f"{train.name} + val", train.modality, train.classes, train.examples + splits.val.examples)
    return replace(splits, train=labelled, val=labelled.subset([], f"{train.name} [no validation set]"))


def _selection(card: Any, splits: Any, config: Any, run_dir: Path, resume: bool, device: Any,
               say: Callable[[str], None]) -> tuple[Any, Any, Any]:
    """The cross-validated cut and head (from selection.json on resume: the same choice)."""
    from zoo.atomic import atomic_write_json
    from zoo.train.selection import Selection, parse_cut, select_cut

    path = run_dir / "selection.json"
    if resume and path.is_file():  # the choice is made: only its features are needed (a cache hit)
        from zoo.probing.run import cut_features

        saved = Selection.from_dict(json.loads(path.read_text(encoding="utf-8")))
        labelled_x, test_x, _ = cut_features(card, splits.train, splits.test, saved.cut, engine=config.engine,
                                             say=say, device=device, workers=config.workers)
        return saved, labelled_x, test_x
    weight = "balanced" if _balanced(splits.train, config) else None
    chosen, labelled_x, test_x = select_cut(card, splits.train, splits.test, cut=parse_cut(card, config.cut),
                                            seed=config.seed, class_weight=weight, metric=config.metric,
                                            engine=config.engine, device=device, workers=config.workers, log=say)
    atomic_write_json(path, chosen.to_dict())
    say(chosen.table())
    say(f"cut: {'+'.join(chosen.cut)} ({chosen.chosen_by}); C={chosen.C:g}")
    return chosen, labelled_x, test_x


def _label_texts(config: Any, splits: Any, card: Any) -> list[str] | None:
    """What ``--labels`` says to embed for each class, in class order (None without it); a class of
    the data that it does not name is an error."""
    if config.labels is None:
        return None
    from zoo.prompts import parse_labels

    if card.modality != "text":
        raise ZooError(f"model {card.name!r}: --labels gives class names for a text model's label prior; "
                       f"leave it out for {card.modality} models")
    given = parse_labels(config.labels)
    missing = [name for name in splits.classes if name not in given]
    if missing:
        raise ZooError(f"{config.data}: the label {missing[0]!r} is in the data but not in --labels "
                       f"({', '.join(list(given)[:8])}{'...' if len(given) > 8 else ''})"
                       f"{f', nor are {len(missing) - 1} more' if len(missing) > 1 else ''}; add it to --labels "
                       f"or fix the data")
    return [given[name] for name in splits.classes]


def _prior(card: Any, splits: Any, config: Any, selection: Any, labelled_x: Any, run_dir: Path, resume: bool,
           say: Callable[[str], None], names: list[str] | None = None) -> Any:
    """The class names' zero-shot prior of a cross-validated text run, with its weight chosen on
    folds (prior.json on resume: the same choice); None where it does not apply."""
    from zoo.atomic import atomic_write_json
    from zoo.train.prior import Prior, label_prior

    path = run_dir / "prior.json"
    if resume and path.is_file():
        return Prior.from_dict(json.loads(path.read_text(encoding="utf-8")))
    from zoo.train.prior import PRIOR_PER_CLASS

    if config.label_prior == "none" or card.modality != "text" or selection.cut != (card.embedding.node,):
        return None
    if (config.label_prior == "auto" and names is None
            and len(splits.train) > PRIOR_PER_CLASS * len(splits.train.classes)):
        return None
    weight = "balanced" if _balanced(splits.train, config) else None
    prior = label_prior(card, names or splits.train.classes, labelled_x, splits.train.labels, C=selection.C,
                        seed=config.seed, class_weight=weight, engine=config.engine)
    atomic_write_json(path, prior.to_dict())
    chosen = prior.chosen()
    alone = next(s for s in prior.scores if s["weight"] == 1.0)
    say(f"label names as a prior: weight {prior.weight:g} (cross-validated accuracy {chosen['accuracy']:.3f}; the "
        f"names alone, zero-shot, {alone['accuracy']:.3f}; --label-prior none to turn off)")
    _amend_config(run_dir, label_prior={"weight": prior.weight, "scale": prior.scale,
                                        "templates": list(prior.templates)})
    return prior


def _balanced(dataset: Any, config: Any) -> bool:
    from zoo.classweights import class_weights

    return bool(class_weights(list(dataset.counts().values()), config.class_weight))


def _amend_config(run_dir: Path, **facts: Any) -> dict[str, Any]:
    """Add top-level facts to the run's config.json (rewritten atomically); returns what it holds."""
    from zoo.atomic import atomic_write_json

    path = run_dir / "config.json"
    saved = {**json.loads(path.read_text(encoding="utf-8")), **facts}
    atomic_write_json(path, saved)
    return saved


def _record_cut(run_dir: Path, cut: Any) -> None:
    """config.json says where the run's embedding is taken (None: the card's cut point)."""
    _amend_config(run_dir, cut=list(cut) if cut else None)


def _judgement(trainer: Any, loop: dict[str, Any], selection: Any, report: dict[str, Any],
               prior: Any = None) -> dict[str, Any]:
    """How the run was judged (cross-validation or a split), what it chose, and the baseline."""
    from zoo.train.baseline import baseline, compare

    config = trainer.config
    splits = trainer.splits
    held_out = {"test": splits.test} if splits.test is not None and len(splits.test) else (
        {"val": splits.val} if len(splits.val) else {})
    weight = "balanced" if trainer.class_weights else None
    base = baseline(trainer.backbone.card.modality, splits.train, held_out, seed=config.seed, class_weight=weight,
                    metric=config.metric, spec=trainer.backbone.card.input)
    transfer: dict[str, Any] = {name: report[name] for name in ("val", "test") if name in report}
    judged: dict[str, Any] = {"validation": config.validation, "metric": config.metric, "recipe": config.recipe,
                              "cut": list(trainer.backbone.cut or (trainer.backbone.card.embedding.node,))}
    contrastive = trainer.dir / "contrastive.json"
    if config.recipe == "contrastive" and contrastive.is_file():
        judged["contrastive"] = json.loads(contrastive.read_text(encoding="utf-8"))
    if selection is not None:
        estimate = selection.estimate
        judged["selection"] = selection.to_dict()
        judged["cv"] = {"head": {"accuracy": estimate["accuracy"], "macro_f1": estimate["macro_f1"],
                                 "log_loss": estimate["log_loss"], "folds": estimate["folds"],
                                 "repeats": estimate["repeats"]}}
        schedule = loop.get("schedule")
        if schedule:
            judged["cv"]["schedule"] = {"folds": schedule["k"], "head": schedule["head_metric"],
                                        "unfrozen": schedule["unfrozen_metric"], "kept": schedule["keep"],
                                        "phase": schedule["phase"], "epochs": schedule["phase_epoch"] + 1}
        transfer["cv"] = {"accuracy": estimate["accuracy"], "macro_f1": estimate["macro_f1"]}
        if prior is not None:
            judged["cv"]["label_prior"] = {"weight": prior.weight, "scale": prior.scale, "scores": list(prior.scores)}
    judged["baseline"] = base
    judged["baseline_line"] = compare(transfer, base, config.metric)
    if config.recipe == "contrastive" and selection is not None and not held_out:
        judged["baseline_line"] += (" (transfer's cross-validated estimate is optimistic here: the encoder was "
                                    "trained on every fold; give a --test set to compare fairly)")
    return judged


def _record_facts(run_dir: Path, trainer: Any) -> None:
    """config.json says which engine computed each set's features (and how far it was from
    PyTorch), and which class weights the loss used."""
    records = trainer.feature_records
    earlier = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("frozen_pass", {})
    # a resumed run keeps what its first part recorded for the sets it did not embed again
    _amend_config(run_dir,
                  class_weights=dict(zip(trainer.classes, trainer.class_weights)) if trainer.class_weights else None,
                  frozen_pass={**earlier, **{name: {"cache": "hit" if r["hit"] else "computed", **r.get("engine", {})}
                                             for name, r in records.items()}})


def _finish(trainer: Any, loop: dict[str, Any], run_dir: Path, selection: Any = None, prior: Any = None) -> None:
    """Evaluate the restored best model, save it, and write the report."""
    import torch

    from zoo.atomic import atomic_torch_save, atomic_write_json
    from zoo.train.metrics import classification_report
    from zoo.report import write_predictions
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
        write_predictions(run_dir, name, dataset, logits.softmax(1).numpy(), classes)  # report page: predictions
        plot_confusion(report[name]["confusion"], classes, folder / f"confusion_{name}.png",
                       f"{name}: accuracy {report[name]['accuracy']:.3f}")
    report.update(_judgement(trainer, loop, selection, report, prior))
    atomic_write_json(folder / "metrics.json", report)
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if history:
        plot_curves(history, folder / "curves.png")
    atomic_torch_save(run_dir / "checkpoints" / "final.pt", {
        "head": {k: v.detach().cpu() for k, v in trainer.model.head.state_dict().items()},
        "body": trainer.final_body(phase), "best": best,
    })
    atomic_write_json(run_dir / "features" / "index.json", trainer.feature_records)
