"""The end of a run: the restored best network judged on held-out data, against the task's
baseline, and the record completed (``report/``, ``checkpoints/final.pt``, ``choices.json``)."""

from __future__ import annotations

import json
import time
from typing import Any

from zoo.runs.record import Run

__all__ = ["finish"]


def finish(setup: Any, trained: Any) -> Run:
    """Evaluate the restored best model, save it, write the report; the finished :class:`Run`."""
    from zoo.atomic import atomic_torch_save, atomic_write_json
    from zoo.runs.record import open_run
    from zoo.tasks.plots import plot_curves

    learner, task, state = trained.learner, setup.task, trained.loop
    best = state.best
    phase = best["phase"] if best else 0
    names = setup.targets["train"].names
    report: dict[str, Any] = {"task": task.name, "best_epoch": best["epoch"] if best else None, "best_phase": phase,
                              "stopped": state.stopped}
    folder = setup.folder / "report"
    folder.mkdir(exist_ok=True)
    outputs: dict[str, Any] = {}
    for name in ("val", "test"):
        dataset = setup.sets.get(name)
        if dataset is None or len(dataset) == 0:
            continue
        answered = learner.outputs(name, phase)
        outputs[name] = answered.numpy() if hasattr(answered, "numpy") else answered  # a dense task's: per image
        report[name] = task.evaluate(outputs[name], setup.targets[name], setup.writer.choices)
        if hasattr(task, "predictions"):  # report page: each held-out example's answer, for its gallery
            task.predictions(setup.folder, name, dataset, outputs[name], setup.targets[name], setup.writer.choices)
    report.update(_judgement(setup, trained, report))
    summary, lines = task.lines(report)
    if report.get("wise_ft"):  # the recipe's own line: zero-shot, fine-tuned and mixed
        lines.append(report["wise_ft"]["line"])
    report["summary"], report["lines"] = summary, lines
    task.plots(report, names, folder)
    history = [json.loads(line) for line in (setup.folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    plot_curves(history, folder / "curves.png")
    setup.writer.results(report)
    atomic_torch_save(setup.folder / "checkpoints" / "final.pt", {
        "head": {k: v.detach().cpu() for k, v in learner.model.head.state_dict().items()},
        "body": learner.final_body(phase), "best": best})
    (setup.folder / "checkpoints" / "encoder.pt").unlink(missing_ok=True)  # final.pt holds an adapted encoder
    atomic_write_json(setup.folder / "features" / "index.json", learner.feature_records)
    earlier = setup.writer.choices.get("frozen_pass") or {}
    setup.writer.choose(
        class_weights=dict(zip(names, setup.context.class_weights)) if setup.context.class_weights else None,
        # a resumed run keeps what its first part recorded for the sets it did not embed again
        frozen_pass={**earlier, **{name: {"cache": "hit" if r.get("hit") else "computed", **r.get("engine", {})}
                                   for name, r in learner.feature_records.items() if r}})
    from zoo.report.page import build_at_end

    build_at_end(setup.folder, setup.say)
    for tracker in setup.trackers:
        tracker.finish(report, folder)
    run = open_run(setup.folder)
    for line in run.report_lines():
        setup.say(line)
    setup.say(f"done in {time.perf_counter() - setup.started:.0f}s")
    return run


def _judgement(setup: Any, trained: Any, report: dict[str, Any]) -> dict[str, Any]:
    """How the run was judged (folds or a split), what it chose, and the baseline."""
    task, options, learner = setup.task, setup.options, trained.learner
    sets = setup.sets
    held_out = ({"test": (sets["test"], setup.targets["test"])} if sets.get("test") is not None and len(sets["test"])
                else {"val": (sets["val"], setup.targets["val"])} if len(sets["val"]) else {})
    base = task.baseline(setup.card.modality, sets["train"], setup.targets["train"], held_out, setup.context,
                         seed=options.seed)
    transfer: dict[str, Any] = {name: report[name] for name in ("val", "test") if name in report}
    judged: dict[str, Any] = {"validation": setup.plan.validation, "metric": options.plan.metric,
                              "recipe": options.plan.recipe, "plan": setup.plan.to_dict(),
                              "cut": list(learner.backbone.cut or learner.backbone.features
                                          or (setup.card.embedding.node,))}
    if learner.contrastive is not None:
        judged["contrastive"] = learner.contrastive
    selection = trained.selection
    if selection is not None:
        estimate = selection.estimate
        judged["selection"] = selection.to_dict()
        judged["cv"] = {"head": dict(estimate)}
        judged.update({k: v for k, v in selection.params.items() if not isinstance(v, list)})
        transfer["cv"] = dict(estimate)
        for key in ("label_prior", "schedule"):
            if key in trained.judged:
                judged["cv"][key] = trained.judged[key]
    for key in ("unfrozen", "wise_ft"):  # how the unfrozen phases were judged (a split; zero-shot mixing)
        if key in trained.judged:
            judged[key] = trained.judged[key]
    multi = setup.writer.choices.get("multi_label")
    if multi:
        judged["thresholds"] = multi["thresholds"]
        judged["multi_label"] = True
    judged["baseline"] = base
    judged["baseline_line"] = task.compare(transfer, base, setup.context)
    if options.plan.recipe == "contrastive" and selection is not None and not held_out:
        judged["baseline_line"] += (" (transfer's cross-validated estimate is optimistic here: the encoder was "
                                    "trained on every fold; give a --test set to compare fairly)")
    return judged
