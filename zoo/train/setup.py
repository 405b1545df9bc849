"""What a run needs before its first step: the card, the task, the data and its targets, the plan,
and the record's start (or, resuming, the check that the data is what the run started with)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["Setup", "prepare"]


@dataclass
class Setup:
    """A run's inputs, decided: every later stage reads them, none changes them."""

    options: Any  # FinetuneOptions, every auto decided
    plan: Any  # zoo.train.plan.Plan
    card: Any
    task: Any
    sets: dict[str, Any]  # "train" (all labelled when nothing is held out), "val", "test" (or None)
    targets: dict[str, Any]  # Targets of each set
    labelled: Any  # every labelled example (training and validation together)
    labelled_targets: Any
    context: Any  # TaskContext
    fetched: Any
    device: Any
    writer: Any  # RunWriter
    folder: Path
    resuming: bool
    say: Callable[[str], None]
    progress: bool
    started: float
    skipped: tuple[Any, ...] = ()
    trackers: list[Any] = field(default_factory=list)  # zoo.trackers: each epoch's row, the final metrics


def prepare(options: Any, folder: Path, resuming: bool, say: Callable[[str], None], progress: bool) -> Setup:
    """Everything up to the first step (see the module)."""
    import torch

    from zoo.devices import torch_device
    from zoo.distributed import world
    from zoo.pulling import pull, resolve_card
    from zoo.runs.options import BATCH_SIZE
    from zoo.runs.record import RunWriter, input_record
    from zoo.tasks.contract import TaskContext, is_dense
    from zoo.train.plan import make_plan

    started = time.perf_counter()
    device = torch_device(options.engine.device)  # a device this machine lacks: refused before any work
    here = world()
    if here.distributed:
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", here.local_rank)  # one GPU per rank of this node
    card = resolve_card(options.model, options.registry)
    task, why_task = _task(options, card)
    task.check(options)
    batch = options.engine.batch_size
    if batch is None:  # the task's own default, at least one picture per process
        batch = max(int((getattr(task, "learning", None) or {}).get("batch_size", BATCH_SIZE)), here.size)
    elif here.distributed and batch < here.size:
        raise ZooError(f"--batch-size {batch} is smaller than the {here.size} processes: each rank takes a part of "
                       f"every batch; use a batch of at least {here.size}, or fewer processes")
    # decided: a resumed run, an export, the report read them
    options = options.with_(task=task.name, batch_size=batch)
    splits = _splits(options, card, task)
    card, options = _front_end(card, options, splits.train.modality)
    dense = is_dense(task)
    if dense:  # whole images at one size: what its network, its export and the runtime read
        card = replace(card, input=task.input_spec(card))
    labelled = splits.train.joined(splits.val, f"{splits.train.name} + val")
    options, plan = make_plan(options, card, task, splits, _learning(card, task))
    labelled_targets = task.targets(labelled, options)
    if plan.validation == "cv":  # nothing held out for judging: every labelled example trains
        sets = {"train": labelled, "val": labelled.subset([], f"{splits.train.name} [no validation set]"),
                "test": splits.test}
        targets = {"train": labelled_targets}
    else:
        sets = {"train": splits.train, "val": splits.val, "test": splits.test}
        targets = {"train": task.targets(splits.train, options)}
    for role in ("val", "test"):
        if sets[role] is not None:
            targets[role] = task.targets(sets[role], options, targets["train"])
    fingerprints = {role: _fingerprint(dataset, targets[role]) for role, dataset in sets.items()
                    if dataset is not None and len(dataset)}
    writer = RunWriter(folder, resuming=resuming)
    if resuming:
        _check_same_data(folder, targets["train"].names, fingerprints)
    fetched = pull(card, quiet=not progress)
    class_weights = task.class_weights(targets["train"], options)
    context = TaskContext(options=options, card=card, where=labelled.name, class_weights=class_weights,
                          targets_record=dict(targets["train"].record), log=say)
    if hasattr(task, "validate"):
        task.validate(targets["train"], context)
    if class_weights:
        counts = [int(c) for c in _counts(targets["train"])]
        say(f"balanced class weights in the loss (training classes of {min(c for c in counts if c)} to "
            f"{max(counts)} examples; --class-weight none to turn off)")
    # trackers first: one that cannot start (a tracking server down) fails the run before its
    # config.json is written, so the half-made run folder is removed rather than left as a stub
    trackers = _trackers(options, folder)
    if not resuming:
        writer.start(config=options.to_dict(), task={"name": task.name, **targets["train"].record,
                                                      **({"input": input_record(card.input)} if dense else {})},
                     plan=plan.to_dict(), data=_summary(splits, task, targets), fingerprints=fingerprints,
                     weights=fetched.weights_record(), outputs=targets["train"].names, skipped=splits.skipped)
        if splits.skipped:
            say(f"skipped {len(splits.skipped)} bad inputs (listed in {folder / 'skipped.json'})")
    say(why_task)
    for line in plan.reasons:
        say(line)
    train, val, test = sets["train"], sets["val"], sets["test"]
    say(f"fine-tuning {options.model} ({task.name}) on {len(train)} train / {len(val)} val"
        + (f" / {len(test)} test" if test is not None else "")
        + f" examples, {_count(len(targets['train'].names), 'class' if task.by_class else 'target')}"
        + f", on {device}")
    return Setup(options=options, plan=plan, card=card, task=task, sets=sets, targets=targets, labelled=labelled,
                 labelled_targets=labelled_targets, context=context, fetched=fetched, device=device, writer=writer,
                 folder=folder, resuming=resuming, say=say, progress=progress, started=started,
                 skipped=tuple(splits.skipped), trackers=trackers)


def _count(n: int, word: str) -> str:
    """``1 target``, ``10 classes``: a count with its word."""
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def _task(options: Any, card: Any) -> tuple[Any, str]:
    """The run's task: named, or claimed by the registered tasks from a quick read of the
    training data (its format's listing or parse: nothing is decoded)."""
    from zoo.data.opening import pick_format
    from zoo.tasks.choosing import choose_task

    requested = options.plan.named_task
    _, contribution = pick_format(options.data.data, None)
    raw = contribution.value.load(options.data.data, card.modality)
    task, why = choose_task(requested, raw, options)
    if task.name == "classification" and options.plan.multi_label == "no":
        from zoo.data.multilabel import SEPARATOR, multi_label_rows

        rows = multi_label_rows(raw) if raw.classes else []
        if rows:
            raise ZooError(f"{rows[0]}: the label names several labels (separated by {SEPARATOR!r})"
                           f"{f', and so do {len(rows) - 1} other rows' if len(rows) > 1 else ''}, but the run is "
                           f"single-label (--single-label); leave that out to train one sigmoid per label, or give "
                           f"each row one label")
    return task, why


def _splits(options: Any, card: Any, task: Any) -> Any:
    from zoo.data import make_splits

    data = options.data
    column = data.target if task.by_class and data.target else None
    problem = getattr(task, "problem", None)
    return make_splits(data.data, modality=card.modality, val=data.val, test=data.test,
                       val_split=data.split_fraction, per_class=data.per_class, seed=options.seed,
                       skip_bad=data.skip_bad, by_class=task.by_class, column=column,
                       problem=(lambda example: problem(example, options)) if problem is not None else None)


def _front_end(card: Any, options: Any, modality: str) -> tuple[Any, Any]:
    """The card reading the data through a front end when the data is of another modality (sounds
    for an image backbone), and the options with the front end's every parameter declared: the
    run records it, and a resumed run reads its data exactly as before."""
    from zoo.frontend import bridge, declared, front_end_of

    card = bridge(card, modality, options.data.front_end)  # a resumed run's declaration is checked again
    if card.input.front_end is None:
        return card, options
    allowed = getattr(front_end_of(card.input.front_end), "augmentations", None)
    if allowed is not None and options.unfreezing.augment not in allowed:
        raise ZooError(f"--augment {options.unfreezing.augment} is for images; {modality} data takes "
                       f"{' or '.join(allowed)} (front end {card.input.front_end.name!r})")
    return card, options.with_(front_end=declared(card))


def _learning(card: Any, task: Any) -> Any:
    """The task's and the front end's own choices of unfreezing and learning rate
    (``zoo.runs.options.LEARNING``; a dense task's network is new and learns through the backbone)."""
    chosen = dict(getattr(task, "learning", None) or {})
    if card.input.front_end is not None:
        from zoo.frontend import front_end_of

        chosen.update(getattr(front_end_of(card.input.front_end), "learning", None) or {})
    return chosen or None


def _fingerprint(dataset: Any, targets: Any) -> str:
    """The data's content and its targets (a regression's numbers are not in the dataset's own)."""
    digest = hashlib.sha256(dataset.fingerprint().encode())
    digest.update(targets.digest())
    return digest.hexdigest()


def _summary(splits: Any, task: Any, targets: dict[str, Any]) -> dict[str, Any]:
    summary = splits.summary()
    if not task.by_class:
        summary["classes"] = []
        summary["outputs"] = list(targets["train"].names)
    return summary


def _check_same_data(folder: Path, names: Any, fingerprints: dict[str, str]) -> None:
    """A resumed run trains on the data it started with: the same outputs and contents (and its
    folder's records are readable before any work is done)."""
    from zoo.runs.record import read_run_json

    saved = read_run_json(folder, "config.json")
    labels = read_run_json(folder, "labels.json")
    if list(labels) != list(names):
        raise ZooError(f"{folder}: cannot resume: the data's classes changed since the run started (then "
                       f"{len(labels)}: {', '.join(labels[:5])}{'...' if len(labels) > 5 else ''}; now "
                       f"{len(names)}: {', '.join(list(names)[:5])}{'...' if len(names) > 5 else ''}); "
                       f"restore the data, or fine-tune again into a new folder")
    for role, before in (saved.get("fingerprints") or {}).items():
        if fingerprints.get(role) != before:
            where = {"train": "training", "val": "validation", "test": "test"}[role]
            raise ZooError(f"{folder}: cannot resume: the {where} data changed since the run started (content "
                           f"sha256 {before[:12]}... then, {str(fingerprints.get(role))[:12]}... now); restore the "
                           f"data, or fine-tune again into a new folder")


def _counts(targets: Any) -> Any:
    import numpy as np

    return np.bincount(np.asarray(targets.values), minlength=len(targets.names))


def _trackers(options: Any, folder: Path) -> list[Any]:
    """The run's trackers (``--report-to``), started with its parameters; rank 0 alone reports."""
    from zoo.distributed import world

    if not options.report_to or not world().main:
        return []
    from zoo.trackers import trackers_for

    trackers = trackers_for(options.report_to, folder)
    for tracker in trackers:
        tracker.start({**options.to_dict(), "run": str(folder)})
    return trackers
