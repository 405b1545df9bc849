"""``zoo probe``: which backbone, cut at which layer, separates your classes best, measured.

The recipe's answer to "nobody knows how many layers to keep": detach the output layers one by
one and measure. For each backbone, one frozen pass (:mod:`zoo.frozen`) gives the embedding and
every intermediate feature the card names, pooled, through the feature cache; each (backbone,
layer) gets a nested cross-validated linear probe (:mod:`zoo.fitting.linear`) on all labelled
examples. When a test set is held out (``per_class=N``, or ``test=``), each probe is also fitted
on all labelled examples and scored there, so the ranking's choice can be checked, but the
ranking itself uses only the cross-validated estimate.

Candidates are ranked by their cross-validated log-loss, not accuracy: with a few dozen held-out
examples per fold accuracy moves in coarse steps, and picking the best of 15 noisy accuracies
often picks luck. On digits with 10 labels per class over 5 seeds (bench/probe_digits.py),
choosing by log-loss gave a mean test accuracy of 0.906 (worst 0.887) against 0.899 (worst 0.862)
by accuracy; accuracy is still reported.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import InputError, LoadError, PullError, ZooError
from zoo.probing.report import ProbeReport, ProbeRow

__all__ = ["probe", "ProbeReport", "ProbeRow", "default_folder", "read_probe"]


def _labelled_sets(data: str | Path, modality: str, *, per_class: int | None, test: str | Path | None,
                   seed: int, skip_bad: bool) -> tuple[Any, Any]:
    """All labelled examples (with ``per_class``: N per class, the rest held out as the test set)."""
    from zoo.data import make_splits, open_dataset
    from zoo.data.checks import problems_error
    from zoo.data.dataset import Dataset

    if per_class is not None or test is not None:
        splits = make_splits(data, modality=modality, per_class=per_class, test=test, seed=seed, skip_bad=skip_bad)
        labelled = Dataset(f"{splits.train.name} + val", splits.train.modality, splits.classes,
                           splits.train.examples + splits.val.examples)
        return labelled, splits.test
    dataset = open_dataset(data, modality=modality)
    if dataset.problems and not skip_bad:
        raise problems_error(dataset.problems)
    return dataset, None


def _models(models: Sequence[str], filters: dict[str, Any], registry_files: Sequence[str | Path]) -> list[Any]:
    from zoo.api import list_models
    from zoo.pulling import resolve_card

    cards = [resolve_card(name, registry_files) for name in models]
    if any(v is not None for v in filters.values()):
        cards += [c for c in list_models(registry_files=registry_files, **filters)
                  if c.name not in {x.name for x in cards}]
    if not cards:
        raise ZooError("name the models to probe, or filter the registry (--modality, --max-params, --tag)")
    return cards


def probe(
    models: Sequence[str] = (),
    data: str | Path = "",
    *,
    per_class: int | None = None,
    test: str | Path | None = None,
    seed: int = 0,
    modality: str | None = None,
    max_params: str | int | None = None,
    tag: str | None = None,
    engine: str = "auto",
    class_weight: str = "auto",
    skip_bad: bool = False,
    score_held_out: bool = False,
    out: str | Path | None = None,
    registry_files: Sequence[str | Path] = (),
    log: Callable[[str], None] | None = None,
    front_end: dict[str, Any] | None = None,
    target: str | None = None,
) -> ProbeReport:
    """Probe every cut candidate (the embedding, the card's ``features`` and all of them joined) of each backbone on
    ``data`` and rank them by cross-validated log-loss; writes ``probe.json`` and ``probe.png`` to
    ``out`` when given.

    ``class_weight``: ``auto`` (balanced when the largest class is over 3x the smallest, as in
    ``zoo finetune``), ``balanced`` or ``none``.
    ``models``: names; ``modality`` / ``max_params`` / ``tag`` add the registry's matching models.
    ``test``: a held-out set each probe is also scored on (fitted on all labelled examples with
    its chosen regularisation); with ``per_class``, ``score_held_out=True`` scores on the examples
    it leaves out (a frozen pass over all of them: off by default). Neither is used to rank.
    A model whose weights cannot be had (offline and not cached, a failed pull) is skipped and
    listed, not fatal; models of several modalities, or data of another, are an error, except
    sounds for image backbones, read through the log-mel front end (``front_end``: its settings).
    ``target``: manifest columns of numbers (``age``, ``price,rating``): a ridge probe per layer,
    ranked by its cross-validated R² (:mod:`zoo.probing.numbers`).
    """
    import numpy as np

    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    started = time.perf_counter()
    cards = _models(models, {"modality": modality, "max_params": max_params, "tag": tag}, registry_files)
    kinds = {c.modality for c in cards}
    if len(kinds) > 1:
        raise InputError(f"the models are of several modalities ({', '.join(sorted(kinds))}); probe one kind of "
                         f"data at a time (add --modality)")
    kind = kinds.pop()
    if target is not None:
        from zoo.probing.numbers import probe_numbers

        report = probe_numbers(cards, data, kind, target, test=test, seed=seed, engine=engine, skip_bad=skip_bad,
                               say=say, front_end=front_end, candidates_of=candidate_features)
        return _write(report, Path(out), cards) if out is not None else report
    labelled, held_out = _labelled_sets(data, kind, per_class=per_class, test=test, seed=seed, skip_bad=skip_bad)
    from zoo.frontend import bridge

    cards = [bridge(card, labelled.modality, front_end) for card in cards]  # sounds: through the front end
    if test is None and not score_held_out:
        held_out = None
    from zoo.fitting.linear import folds_for

    k, repeats = folds_for(labelled.labels, str(data))
    y = np.asarray(labelled.labels)
    from zoo.classweights import class_weights

    # the rule zoo finetune follows: balanced when the largest class is over 3x the smallest
    weight = "balanced" if class_weights(list(labelled.counts().values()), class_weight) else None
    if weight:
        say(f"balanced class weights in every probe (classes of {min(labelled.counts().values())} to "
            f"{max(labelled.counts().values())} examples; class_weight='none' to turn off)")
    rows: list[ProbeRow] = []
    skipped: list[tuple[str, str]] = []
    passes: dict[str, Any] = {}
    for card in cards:
        try:
            features, record = candidate_features(card, labelled, held_out, engine, say)
        except (PullError, LoadError) as exc:
            skipped.append((card.name, str(exc).splitlines()[0]))
            say(f"skipped {card.name}: {str(exc).splitlines()[0]}")
            continue
        passes[card.name] = record
        for layer, (x, x_test) in features.items():
            rows.append(_probe_layer(card, layer, x, y, x_test, held_out, seed=seed, where=str(data),
                                     class_weight=weight))
            say(f"  {card.name} {layer}: cv accuracy {rows[-1].accuracy:.3f} ({rows[-1].seconds:.1f}s)")
    rows.sort(key=lambda r: (r.log_loss, -r.accuracy, r.model, r.layer))
    report = ProbeReport(data=str(data), classes=labelled.classes, labelled=len(labelled),
                         test=len(held_out) if held_out is not None else 0, folds=k, repeats=repeats,
                         rows=tuple(rows), class_weight=weight, skipped=tuple(skipped), passes=passes,
                         seconds=time.perf_counter() - started)
    if out is not None:
        report = _write(report, Path(out), cards)
    return report


def candidate_features(card: Any, labelled: Any, held_out: Any, engine: str, say: Callable[[str], None]
                       ) -> tuple[dict[str, tuple[Any, Any]], dict[str, Any]]:
    """Each cut candidate's features of ``labelled`` and ``held_out``: every layer from one frozen
    pass, and (where the card has several) all of them joined, named ``all``."""
    from zoo.layer_features import layer_features
    from zoo.fitting.cuts import ALL, candidates, joined

    features, record = layer_features(card, labelled, held_out, engine=engine, say=say, layout=True)
    every = candidates(card)[-1]
    if len(every) > 1:  # the layers joined: one more candidate, from the same features
        train = {name: x for name, (x, _) in features.items()}
        test = {name: x_test for name, (_, x_test) in features.items()}
        features[ALL] = (joined(train, every), joined(test, every) if held_out is not None else None)
    return features, record


def _probe_layer(card: Any, layer: str, x: Any, y: Any, x_test: Any, held_out: Any, *, seed: int,
                 where: str, class_weight: str | None = None) -> ProbeRow:
    from zoo.fitting.linear import cross_validate, fit_probe

    started = time.perf_counter()
    score = cross_validate(x, y, seed=seed, where=where, class_weight=class_weight)
    test_accuracy = None
    if x_test is not None and held_out is not None and len(held_out):
        import numpy as np

        model = fit_probe(x, y, score.C, class_weight=class_weight)
        test_accuracy = float(np.mean(model.predict(x_test) == np.asarray(held_out.labels)))
    return ProbeRow(model=card.name, layer=layer, dim=int(x.shape[1]), accuracy=score.accuracy,
                    accuracy_std=score.accuracy_std, macro_f1=score.macro_f1, log_loss=score.log_loss, C=score.C,
                    seconds=time.perf_counter() - started, embedding=layer == card.embedding.node,
                    test_accuracy=test_accuracy)


def _write(report: ProbeReport, folder: Path, cards: Sequence[Any]) -> ProbeReport:
    """probe.json and probe.png (accuracy per layer, input to output, one line per backbone)."""
    from dataclasses import replace

    from zoo.atomic import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    picture = folder / "probe.png"
    _plot(report, cards, picture)
    report = replace(report, files=(str(folder / "probe.json"), str(picture)))
    atomic_write_json(folder / "probe.json", report.to_dict())
    return report


def _plot(report: ProbeReport, cards: Sequence[Any], path: Path) -> None:
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend switched

    from zoo.atomic import atomic_write

    figure = Figure(figsize=(7, 4), dpi=110)
    axes = figure.subplots()
    for card in cards:
        mine = [r for r in report.rows if r.model == card.name]
        if not mine:
            continue
        order = {name: i for i, name in enumerate([*card.features, card.embedding.node, "all"])}
        mine.sort(key=lambda r: order.get(r.layer, len(order)))
        axes.errorbar([r.layer for r in mine], [r.score for r in mine], yerr=[r.score_std for r in mine],
                      marker="o", capsize=3, label=card.name)
    axes.set_ylabel(report.rows[0].score_name if report.rows else "cross-validated accuracy")
    axes.set_xlabel("cut point (input -> output)")
    axes.set_title(f"linear probe per layer: {report.data} ({report.labelled} labelled)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))


def default_folder(data: str | Path) -> Path:
    """Where ``zoo probe`` writes without --out: probes/DATA-TIME."""
    from datetime import datetime

    stem = Path(str(data)).name or "data"
    return Path("probes") / f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def read_probe(path: str | Path) -> dict[str, Any]:
    """A written probe.json."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
