"""The stages of a run after its setup: the encoder adapted (contrastive), the head, and unfrozen
phases; each a few lines over the task, the learner and the one epoch loop.

- :func:`adapted_learner`: the learner of a contrastive run, its encoder trained on pairs first;
- :func:`head_stage`: the frozen head, either the task's cross-validated fit on every labelled
  example (its cut chosen among the card's candidates; ``selection.json``) recorded as the run's
  first epoch, or a head trained by epochs on a validation split (``--head mlp``, ``--validation
  split``), with its unfrozen phases in the same loop;
- :func:`unfrozen_stage`: unfrozen phases after a cross-validated head, judged by folds (small
  data: :mod:`zoo.train.crossfit`) or by a validation split (:mod:`zoo.train.gradual`), kept only
  when they beat the head on the same folds or split.
"""

from __future__ import annotations

import json
from typing import Any

from zoo.tasks.contract import Score
from zoo.train.loop import EpochLoop, Step
from zoo.train.trained import Trained, head_stays, logged_rows, stage_loop

__all__ = ["Trained", "adapted_learner", "head_stage", "unfrozen_stage", "make_learner"]


def make_learner(setup: Any, cut: Any, *, normalised: bool) -> Any:
    """A learner on the card's backbone cut at ``cut`` (None: the card's cut point) with a new head;
    a dense task's: its own network on the backbone's feature maps."""
    from zoo.loading import load
    from zoo.tasks.contract import is_dense
    from zoo.train.learner import Learner

    import torch

    task, network = setup.task, None
    if is_dense(task):
        backbone = load(setup.card, device=setup.device, features=task.feature_maps(setup.card))
        torch.manual_seed(setup.options.seed)  # the new network's initial weights are the seed's
        network = task.network(backbone, setup.targets["train"], setup.context)
        head = network.head
    else:
        backbone = load(setup.card, device=setup.device, cut=cut)
        torch.manual_seed(setup.options.seed)  # the new head's initial weights are the seed's
        head = task.head(backbone.feature_dim, setup.targets["train"], setup.context, normalised=normalised)
    return Learner(backbone, head, task, setup.context, sets=setup.sets, targets=setup.targets,
                   fetched=setup.fetched, device=setup.device, log=setup.say, progress=setup.progress,
                   run_dir=setup.folder, network=network)


def adapted_learner(setup: Any) -> Any:
    """The learner of a contrastive run: its whole encoder trained on pairs of the labelled texts
    (:mod:`zoo.train.contrastive`), adopted as the encoder the head starts from."""
    from zoo.train.contrastive import adapt_encoder

    learner = make_learner(setup, None, normalised=setup.plan.head == "cv")
    learner.contrastive = adapt_encoder(learner, resume=setup.resuming)
    return learner


def head_stage(setup: Any, learner: Any = None) -> Trained:
    """The run's head (see the module); ``learner``: one whose encoder was adapted already."""
    if setup.plan.head == "epochs":
        return _head_by_epochs(setup, learner)
    return _head_by_folds(setup, learner)


def _head_by_epochs(setup: Any, learner: Any) -> Trained:
    """A head trained by epochs on a split, then the unfrozen phases, in one loop."""
    from zoo.train.gradual import Gradual
    from zoo.train.selection import parse_cut

    if learner is None:
        cut = parse_cut(setup.card, setup.options.plan.cut)
        learner = make_learner(setup, None if cut == (setup.card.embedding.node,) else cut, normalised=False)
    head = ({"kind": "network", "features": list(learner.backbone.features), **getattr(learner.model, "record", {})}
            if learner.dense else {"kind": setup.options.head.kind})
    setup.writer.choose(cut=list(learner.backbone.cut) if learner.backbone.cut else None, head=head)
    state = stage_loop(setup).run(Gradual(learner), resume=setup.resuming)
    return Trained(learner, state)


def _head_by_folds(setup: Any, adapted: Any) -> Trained:
    """The task's cross-validated frozen head on every labelled example, fitted on all of them
    and recorded as the run's first epoch (its checkpoint, its row, the best so far)."""
    import numpy as np
    import torch

    selection, x, x_test = _selection(setup, adapted)
    cut = None if selection.cut == (setup.card.embedding.node,) else selection.cut
    learner = adapted if adapted is not None else make_learner(setup, cut, normalised=True)
    labelled = setup.labelled_targets
    head = setup.task.fit(x, labelled, selection.params, setup.context)
    judged: dict[str, Any] = {}
    choices: dict[str, Any] = {"cut": list(cut) if cut else None,
                               "head": {"kind": "normalised", **_plain(selection.params)}}
    if adapted is None and hasattr(setup.task, "refine"):
        head, prior, judgement = setup.task.refine(head, x, labelled, selection.params, setup.context,
                                                   folder=setup.folder, resume=setup.resuming, cut=selection.cut)
        if prior is not None:
            choices["label_prior"], judged["label_prior"] = prior, judgement
    if hasattr(setup.task, "choices"):
        choices.update(setup.task.choices(selection.params, labelled))
    learner.model.head = head.to(setup.device)
    setup.writer.choose(**choices)
    if len(setup.sets["train"]) == len(x):  # every labelled example trains (else the split's part is embedded later)
        learner.features["train"] = torch.from_numpy(np.asarray(x)).float()
    if x_test is not None:
        learner.features["test"] = torch.from_numpy(np.asarray(x_test)).float()
    from zoo.layer_features import layer_record

    if adapted is None and selection.features:  # an adapted encoder's features came from PyTorch, recorded already
        learner.feature_records["labelled"] = layer_record(selection.features, selection.cut)
    learner.fitted_all = {k: v.detach().cpu().clone() for k, v in learner.model.head.state_dict().items()}
    state = stage_loop(setup).run(_FittedHead(learner, selection, x, labelled), resume=setup.resuming)
    return Trained(learner, state, selection, judged)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not isinstance(v, list)}


def _selection(setup: Any, adapted: Any) -> tuple[Any, Any, Any]:
    """The cross-validated cut and head (``selection.json``; read back on resume: the same choice)
    and the chosen cut's features of the labelled examples and the test set."""
    import time

    from zoo.atomic import atomic_write_json
    from zoo.train.selection import Selection, choose, parse_cut, select_cut

    path = setup.folder / "selection.json"
    engine = setup.options.engine
    if adapted is not None:  # contrastive: the adapted encoder's own embeddings, at the card's cut
        x = adapted.features["train"].numpy()
        x_test = adapted.features["test"].numpy() if "test" in adapted.features else None
        if setup.resuming and path.is_file():
            return Selection.from_dict(json.loads(path.read_text(encoding="utf-8"))), x, x_test
        node = (setup.card.embedding.node,)
        selection = choose(setup.task, setup.context, {node[0]: x}, setup.labelled_targets, [node],
                           seed=setup.options.seed, requested=None, started=time.perf_counter(),
                           record={"encoder": "adapted (contrastive)"})
    elif setup.resuming and path.is_file():  # the choice is made: only its features are needed (a cache hit)
        from zoo.layer_features import cut_features

        saved = Selection.from_dict(json.loads(path.read_text(encoding="utf-8")))
        x, x_test, _ = cut_features(setup.card, setup.labelled, setup.sets["test"], saved.cut, engine=engine.engine,
                                    say=setup.say, device=setup.device, workers=engine.workers)
        return saved, x, x_test
    else:
        selection, x, x_test = select_cut(setup.task, setup.context, setup.card, setup.labelled, setup.labelled_targets,
                                          setup.sets["test"], cut=parse_cut(setup.card, setup.options.plan.cut),
                                          seed=setup.options.seed, engine=engine.engine, device=setup.device,
                                          workers=engine.workers, log=setup.say)
    atomic_write_json(path, selection.to_dict())
    setup.say(selection.table(list(setup.task.metrics)))
    params = ", ".join(f"{k}={v:g}" for k, v in _plain(selection.params).items())
    setup.say(f"cut: {'+'.join(selection.cut)} ({selection.chosen_by}); {params}")
    return selection, x, x_test


class _FittedHead:
    """The loop's strategy for a head already fitted by cross-validation: one step, not trained,
    scored by its folds' estimate (on the training examples for the log)."""

    def __init__(self, learner: Any, selection: Any, x: Any, targets: Any) -> None:
        self.learner, self.selection, self.x, self.targets = learner, selection, x, targets

    def steps(self) -> list[Step]:
        return [Step(0, 0, "head (cv)")]

    def patience(self, phase: int) -> None:
        return None

    def begin(self, phase: int, optimizer_state: Any, loop: EpochLoop) -> None:
        metric = self.learner.options.plan.metric
        estimate = self.selection.estimate.get(metric, self.selection.estimate.get("accuracy"))
        params = ", ".join(f"{k}={v:g}" for k, v in _plain(self.selection.params).items())
        self.learner.log(f"head: the task's cross-validated fit ({params}) on all {len(self.x)} labelled examples, "
                         f"cross-validated {metric} {estimate:.3f}")

    def train(self, step: Step) -> dict[str, Any]:
        import torch

        learner = self.learner
        with torch.no_grad():
            outputs = learner.model.head.eval()(torch.from_numpy(self.x).float().to(learner.device)).float().cpu()
        fit = learner.task.judge(outputs, self.targets.values, learner.context) if learner.task.epochs else None
        return {"train_loss": fit.loss if fit else None, "train_metric": fit.metric if fit else None}

    def judge(self, step: Step) -> Score:
        return Score(loss=float(self.selection.rank), metric=float(
            self.selection.estimate.get(self.learner.options.plan.metric, 0.0)))

    def is_best(self, step: Step, score: Score | None, best: dict[str, Any] | None) -> bool:
        return True

    def state(self) -> dict[str, Any]:
        return self.learner.state(0)

    def optimizer_state(self) -> None:
        return None

    def restore(self, state: dict[str, Any]) -> None:
        self.learner.restore(state)

    def row(self, step: Step, trained: dict[str, Any], score: Score | None) -> dict[str, Any]:
        return {**trained, "val_loss": None, "val_metric": None, "cv_loss": score.loss if score else None,
                "cv_metric": score.metric if score else None, "metric": self.learner.options.plan.metric,
                "seconds_cv": round(self.selection.seconds, 2)}


def unfrozen_stage(setup: Any, trained: Trained) -> Trained:
    """Unfrozen phases after a cross-validated head (see the module); ``trained`` itself when
    the plan has none, or the head trained by epochs ran them already."""
    if setup.plan.unfrozen is None or setup.plan.head == "epochs":
        return trained
    if setup.plan.recipe == "wise-ft":  # from the zero-shot classifier, then mixed with it (zoo.train.wiseft)
        from zoo.train.wiseft import wise_stage

        return wise_stage(setup, trained)
    if setup.plan.unfrozen == "folds":
        return _by_folds(setup, trained)
    return _by_split(setup, trained)


def _by_folds(setup: Any, trained: Trained) -> Trained:
    from zoo.train.crossfit import Replay, load_fitted, schedule_from_folds

    learner, selection = trained.learner, trained.selection
    x = learner.features["train"].numpy()
    better = setup.task.metrics[setup.options.plan.metric]
    plan = schedule_from_folds(learner, x, setup.targets["train"], selection.params, setup.folder / "cv", better)
    trained.judged["schedule"] = {"folds": plan["k"], "head": plan["head_metric"], "unfrozen": plan["unfrozen_metric"],
                                  "kept": plan["keep"], "phase": plan["phase"], "epochs": plan["phase_epoch"] + 1}
    if not plan["keep"]:
        learner.log(f"unfrozen layers not kept: their cross-validated {setup.options.plan.metric} "
                    f"{plan['unfrozen_metric']:.3f} does not beat the head's {plan['head_metric']:.3f} on the same folds")
        learner.restore(learner.state_of_head_only())
        return trained
    latest = stage_loop(setup, first_epoch=1).checkpoints.latest(after=1) if setup.resuming else None
    if latest is None:
        learner.restore_pretrained()
        load_fitted(learner, x, setup.targets["train"], selection.params)
    state = stage_loop(setup, first_epoch=1).run(Replay(learner, plan), resume=setup.resuming, start=trained.loop)
    return Trained(learner, state, selection, trained.judged)


def _by_split(setup: Any, trained: Trained) -> Trained:
    """Unfrozen phases on a validation split: the cross-validated head refitted on the training
    part is their start (and is scored on validation); the unfrozen result is kept only when its
    validation metric beats that head's, else the head fitted on every labelled example stays."""
    from zoo.train.crossfit import load_fitted
    from zoo.train.gradual import Gradual

    learner, selection = trained.learner, trained.selection
    head_only = learner.state_of_head_only()
    x_train = learner.embeddings("train").numpy()
    learner.restore_pretrained()
    load_fitted(learner, x_train, setup.targets["train"], selection.params)
    loop = stage_loop(setup, first_epoch=1)
    state = loop.run(Gradual(learner, fitted=True), resume=setup.resuming)
    rows = [r for r in loop.rows] or logged_rows(setup)
    head_row = next((r for r in rows if r["stage"] == "head (cv)" and r["epoch"] > 1), None)
    best = state.best
    metric = setup.options.plan.metric
    higher = setup.task.metrics[metric]
    head_metric = head_row["val_metric"] if head_row else best["score"]["metric"]
    unfrozen_metric = best["score"]["metric"]
    kept = best["phase"] > 0 and (unfrozen_metric > head_metric if higher else unfrozen_metric < head_metric)
    trained.judged["unfrozen"] = {"head": head_metric, "unfrozen": unfrozen_metric, "kept": kept,
                                  "phase": best["phase"]}
    if not kept:
        learner.log(f"unfrozen layers not kept: their validation {metric} {unfrozen_metric:.3f} does not beat the "
                    f"cross-validated head's {head_metric:.3f} on the same split; the head fitted on every labelled "
                    f"example stays")
        learner.restore(head_only)
        head_stays(setup, state, {"epoch": 1, "phase": 0,
                                  "score": trained.loop.best["score"] if trained.loop.best else None})
    return Trained(learner, state, selection, trained.judged)
