"""What to export: a fine-tuned run, a few-shot classifier or a registry backbone, as one eval-mode
module plus its samples.

:func:`prepare` gathers everything the later steps need and nothing else touches PyTorch's side:
the graph module (probabilities out for a run, the embedding for a backbone), its input and
output names, the metadata that tells the runtime how to preprocess and read it, and the samples
for validation (the run's own data, or inputs generated from the card's spec), int8 calibration
(the run's training set) and the fp32-vs-int8 check (the run's held-out data: validation and
test sets, never trained or calibrated on). A few-shot
folder (``zoo fewshot --out``) exports like a run: its prototypes are the head, its support set
gives the samples, the calibration and the check. An image-text model's name exports its image
tower, with its text tower as a companion written beside it (``NAME.text.onnx`` and its
tokenizer), so that the torch-free runtime embeds a sentence in the images' space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.errors import InputError, UnknownModelError, ZooError
from zoo.export.prepared import Prepared, finish, graph_module, spread
from zoo.samples import generated_items

__all__ = ["Prepared", "prepare", "graph_module", "sha256_file"]

#: The fp32-vs-int8 check runs on at most this many held-out examples (validation, then test):
#: enough to resolve a 1-point drop (20 validation images resolve 5 points: one changed answer),
#: bounded so that a large test set does not make the export slow.
EVALUATION_LIMIT = 2000


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(source: str | Path, *, pretrained: bool = True, samples: int = 16, calibration: int = 128,
            evaluation: int = EVALUATION_LIMIT, registry_files: Sequence[str | Path] = ()) -> Prepared:
    """A run folder (with ``config.json``), a few-shot folder (with ``fewshot.json``) or a registry
    model name, ready to export."""
    path = Path(source)
    if (path / "fewshot.json").is_file():
        return _prepare_fewshot(path, samples=samples, calibration=calibration, evaluation=evaluation)
    if (path / "config.json").is_file():
        return _prepare_run(path, samples=samples, calibration=calibration, evaluation=evaluation)
    if path.is_dir():  # a model's name can also be a folder's: the model, if there is one by that name
        try:
            return _prepare_model(str(source), pretrained=pretrained, samples=samples, calibration=calibration,
                                  registry_files=registry_files)
        except UnknownModelError:
            raise ZooError(f"{path}: a folder, but neither a zoo run (no config.json) nor a few-shot classifier (no "
                           f"fewshot.json); give a folder made by `zoo finetune` or `zoo fewshot --out`, or a model "
                           f"name from `zoo list`") from None
    return _prepare_model(str(source), pretrained=pretrained, samples=samples, calibration=calibration,
                          registry_files=registry_files)


def _labelled(examples: Sequence[Any], limit: int, where: str) -> tuple[tuple[list[Any], list[int]] | None, str]:
    """The int8 check's labelled data: up to ``limit`` examples spread evenly, and what they are."""
    checked = spread(list(examples), limit)
    if len(checked) < len(examples):
        where += f" (an even spread of {len(checked)} of {len(examples)})"
    return ([e.item for e in checked], [e.label for e in checked]) if checked else None, where


def _prepare_model(name: str, *, pretrained: bool, samples: int, calibration: int,
                   registry_files: Sequence[str | Path]) -> Prepared:
    from zoo.card import tower_card
    from zoo.embed.embedder import embedder_identity
    from zoo.loading import load
    from zoo.pulling import pull, resolve_card

    card = resolve_card(name, registry_files)
    fetched = pull(card, quiet=True) if pretrained else None
    if fetched is not None:
        weights = fetched.weights_record()
    else:
        weights = {"random": True, "note": "random weights (pretrained=False): for tests and speed benchmarks only"}

    def one(view: Any) -> Prepared:
        backbone = load(view, pretrained=pretrained)
        spec = "generated from the card's input spec" if view.modality == "image" else "built-in sentences"
        # the identity a vector table records for this model (tower): a search checks the file by it
        source = {"model": view.name, "modality": view.modality, "task": view.task,
                  "embedder": embedder_identity(view, fetched),
                  **({"tower": view.modality} if len(card.towers) > 1 else {})}
        return finish(backbone, view, backbone, probabilities=False, kind="embedding", output_name="embedding",
                       labels=(), source=source, weights=weights, samples=generated_items(view, samples, seed=1),
                       samples_from=spec, calibration=generated_items(view, min(calibration, 32), seed=2),
                       calibration_from=spec, evaluation=None, evaluation_from="")

    prepared = one(card)
    prepared.companions = [(tower, one(tower_card(card, tower))) for tower in card.towers if tower != card.modality]
    return prepared


def _prepare_run(folder: Path, *, samples: int, calibration: int, evaluation: int) -> Prepared:
    from zoo.data import make_splits
    from zoo.runs import open_run
    from zoo.runs.model import head_kind
    from zoo.runs.options import FinetuneOptions

    run = open_run(folder)
    options = FinetuneOptions.from_dict(run.config)
    data = options.data
    final = folder / "checkpoints" / "final.pt"
    if not final.is_file():
        raise ZooError(f"{folder}: the run has no checkpoints/final.pt (did it finish?); finish it with "
                       f"`zoo finetune --resume {folder}`")
    card = run.card()
    weights = {**run.weights, "checkpoint": "checkpoints/final.pt", "checkpoint_sha256": sha256_file(final)}
    classifier = run.load_model()
    notes: list[str] = []
    from zoo.tasks import get_task
    from zoo.tasks.contract import is_dense

    if is_dense(get_task(run.task_name)):
        from zoo.export.dense import prepare_dense

        return prepare_dense(run, folder, card, classifier, weights, samples=samples, calibration=calibration,
                             evaluation=evaluation)
    if run.multi_label:
        return _prepare_multilabel(run, folder, card, classifier, weights, samples=samples, calibration=calibration)
    if run.task_name == "regression":
        return _prepare_regression(run, folder, card, classifier, weights, samples=samples, calibration=calibration,
                                   evaluation=evaluation)
    try:
        splits = make_splits(data.data, modality=card.modality, val=data.val, test=data.test,
                             val_split=data.split_fraction, per_class=data.per_class, seed=options.seed,
                             skip_bad=data.skip_bad, column=data.target)
    except InputError as exc:
        splits = None
        notes.append(f"the run's data cannot be read ({exc}); validated on generated inputs instead")
    if splits is not None and tuple(splits.classes) != tuple(run.classes):
        raise ZooError(f"{folder}: the run's data now has classes {list(splits.classes)[:5]}..., not the "
                       f"{len(run.classes)} the model was trained on; restore the data or fine-tune again")
    if splits is not None:
        val = [e.item for e in splits.val.examples]
        train = [e.item for e in splits.train.examples]
        pool = val + train
        picked = pool[:samples]
        held_out = list(splits.val.examples) + list(splits.test.examples if splits.test is not None else ())
        labelled, where = _labelled(held_out, evaluation, "the run's validation and test sets"
                                    if splits.test is not None and len(splits.test) else "the run's validation set")
        fields = dict(samples=picked, samples_from=f"the run's data ({min(len(val), samples)} val, "
                                                   f"{len(picked) - min(len(val), samples)} train)",
                      calibration=spread(train, calibration), calibration_from="the run's training set",
                      evaluation=labelled, evaluation_from=where)
    else:
        fields = dict(samples=generated_items(card, samples, seed=1), samples_from="generated (no run data)",
                      calibration=[], calibration_from="", evaluation=None, evaluation_from="")
    # a head fine-tuned from the class names' prototypes (wise-ft) is one, like a few-shot classifier's
    head = "prototypes" if head_kind(run) == "prototypes" else options.head.kind
    source = {"model": card.name, "modality": card.modality, "task": "classification",
              "run": str(folder.resolve()), "head": head}
    return finish(classifier, card, classifier.backbone, probabilities=True, kind="classifier",
                   output_name="probabilities", labels=tuple(run.classes), source=source, weights=weights,
                   notes=notes, home=folder.resolve(), **fields)


def _prepare_multilabel(run: Any, folder: Path, card: Any, classifier: Any, weights: dict[str, Any], *,
                        samples: int, calibration: int) -> Prepared:
    """A multi-label run: a sigmoid per label, its thresholds in the metadata; validated (and int8
    calibrated) on its labelled data, int8 checked by the outputs' agreement with fp32 (an
    accuracy needs one label per example)."""
    from zoo.data import open_dataset
    from zoo.runs.options import FinetuneOptions

    options = FinetuneOptions.from_dict(run.config)
    notes: list[str] = []
    try:
        items = [e.item for e in open_dataset(options.data.data, modality=card.modality).examples]
    except InputError as exc:
        items = []
        notes.append(f"the run's data cannot be read ({exc}); validated on generated inputs instead")
    fields = (dict(samples=items[:samples], samples_from="the run's labelled data",
                   calibration=spread(items, calibration), calibration_from="the run's labelled data") if items else
              dict(samples=generated_items(card, samples, seed=1), samples_from="generated (no run data)",
                   calibration=[], calibration_from=""))
    thresholds = run.multi_label["thresholds"]
    source = {"model": card.name, "modality": card.modality, "task": "multi-label classification",
              "run": str(folder.resolve()), "head": options.head.kind, "thresholds": [thresholds[n] for n in run.classes]}
    return finish(classifier, card, classifier.backbone, probabilities="sigmoid", kind="classifier",
                   output_name="probabilities", labels=tuple(run.classes), source=source, weights=weights, notes=notes,
                   home=folder.resolve(), evaluation=None, evaluation_from="", **fields)


def _prepare_regression(run: Any, folder: Path, card: Any, network: Any, weights: dict[str, Any], *, samples: int,
                        calibration: int, evaluation: int) -> Prepared:
    """A regression run: the graph ends in the targets' units (the standardisation undone as its
    last operation); validated, calibrated and int8-checked (RMSE) on the run's own data."""
    from zoo.data import make_splits
    from zoo.tasks import get_task
    from zoo.tasks.contract import Targets
    from zoo.runs.options import FinetuneOptions

    options = FinetuneOptions.from_dict(run.config)
    task, data = get_task("regression"), options.data
    record = {k: run.task[k] for k in ("names", "mean", "std")}
    notes: list[str] = []
    try:
        splits = make_splits(data.data, modality=card.modality, val=data.val, test=data.test,
                             val_split=data.split_fraction, seed=options.seed, skip_bad=True, by_class=False,
                             problem=lambda example: task.problem(example, options))
    except InputError as exc:
        splits = None
        notes.append(f"the run's data cannot be read ({exc}); validated on generated inputs instead")
    if splits is not None:
        like = Targets(tuple(record["names"]), [], None, record)
        held_out = [d for d in (splits.val, splits.test) if d is not None and len(d)]
        train = [e.item for e in splits.train.examples]
        fields: dict[str, Any] = dict(samples=([e.item for d in held_out for e in d.examples] + train)[:samples],
                                      samples_from="the run's data", calibration=spread(train, calibration),
                                      calibration_from="the run's training set", evaluation=None, evaluation_from="")
        if held_out:
            import numpy as np

            items = [e.item for d in held_out for e in d.examples][:evaluation]
            values = np.concatenate([task.targets(d, options, like).values for d in held_out])[:evaluation]
            fields.update(evaluation=(items, values * np.asarray(record["std"]) + np.asarray(record["mean"])),
                          evaluation_from="the run's validation and test sets")
    else:
        fields = dict(samples=generated_items(card, samples, seed=1), samples_from="generated (no run data)",
                      calibration=[], calibration_from="", evaluation=None, evaluation_from="")
    source = {"model": card.name, "modality": card.modality, "task": "regression", "run": str(folder.resolve()),
              "head": options.head.kind, "targets": list(record["names"]), "scale": list(record["std"]),
              "shift": list(record["mean"])}
    return finish(network, card, network.backbone, probabilities=(record["std"], record["mean"]), kind="regression",
                   output_name="values", labels=tuple(record["names"]), source=source, weights=weights, notes=notes,
                   home=folder.resolve(), **fields)


def _prepare_fewshot(folder: Path, *, samples: int, calibration: int, evaluation: int) -> Prepared:
    """A few-shot classifier: its backbone + prototype head; the support set is its only labelled data,
    so it gives the validation samples, the int8 calibration and the fp32-vs-int8 check alike."""
    from zoo.data import open_dataset
    from zoo.embed.prototypes import load_fewshot
    from zoo.pulling import pull, resolve_card

    from zoo.frontend import with_front_end

    classifier = load_fewshot(folder)
    card = with_front_end(resolve_card(classifier.model), classifier.input.get("front_end"))
    module = classifier.to_module()  # checks the model still has the weights the prototypes came from
    fetched = pull(card, quiet=True)
    weights = {**fetched.weights_record(), "prototypes": "prototypes.npy",
               "prototypes_sha256": sha256_file(folder / "prototypes.npy")}
    notes: list[str] = []
    data = classifier.support.get("data")
    dataset = None
    if data:
        try:
            dataset = open_dataset(data, modality=card.modality)
        except InputError as exc:
            notes.append(f"the support data cannot be read ({exc}); validated on generated inputs instead")
    if dataset is not None and tuple(dataset.classes) != classifier.classes:
        notes.append(f"the support data {data} now has other classes; validated on generated inputs instead")
        dataset = None
    if dataset is not None and dataset.problems:
        notes.append(f"{len(dataset.problems)} unreadable support item(s) left out of validation")
    if dataset is not None and dataset.fingerprint() != classifier.support.get("fingerprint"):
        notes.append(f"the support data {data} changed since the classifier was built; its current contents "
                     f"were used for validation and the int8 check")
    if dataset is not None:
        items = [e.item for e in dataset.examples]
        labelled, where = _labelled(dataset.examples, evaluation, "the support set")
        fields = dict(samples=spread(items, samples), samples_from="the support set",
                      calibration=spread(items, calibration), calibration_from="the support set",
                      evaluation=labelled, evaluation_from=where)
    else:
        fields = dict(samples=generated_items(card, samples, seed=1), samples_from="generated (no support data)",
                      calibration=[], calibration_from="", evaluation=None, evaluation_from="")
    source = {"model": card.name, "modality": card.modality, "task": "classification",
              "fewshot": str(folder.resolve()), "head": "prototypes"}
    # an image-text model's zero-shot classifier scores like its model: SigLIP a sigmoid per label
    probabilities = "sigmoid" if classifier.scoring == "sigmoid" else True
    return finish(module, card, classifier.backbone, probabilities=probabilities, kind="classifier",
                   output_name="probabilities", labels=classifier.classes, source=source, weights=weights,
                   notes=notes, home=folder.resolve(), **fields)
