"""Unfrozen phases on small data: their schedule chosen by folds, then replayed on every example.

With a few labels per class nothing is set aside, and an unfrozen schedule (``--unfreeze``,
text's default) needs an epoch count from somewhere. So:

1. for each of k stratified folds (k = min(3, smallest class): an unfrozen epoch costs a pass of
   the backbone), the cross-validated head is fitted on the fold's training part, then the phases
   run there for ``unfreeze_epochs`` each (warmup + cosine per phase), and after every epoch the
   held-out part is judged (the task's loss and ``--metric``); the starting point, the head alone,
   is judged too. Each fold is the one epoch loop, in memory;
2. the point of the schedule with the lowest mean held-out loss is chosen; it is kept only if its
   mean ``--metric`` beats the head's on the same folds, so the run is never below its own
   head-only estimate; otherwise the head alone is the result;
3. a kept schedule is replayed on all labelled examples up to that point (same phases, same
   per-phase learning-rate schedule) by the epoch loop, checkpointed every epoch like any run.

Each fold's trajectory lands in ``cv/fold-N.json`` as it completes, and the choice in
``cv/schedule.json``: a killed run resumes after its last complete fold, or from its last
checkpoint once the replay has begun.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from zoo.atomic import atomic_write_json
from zoo.tasks.contract import Score
from zoo.tasks.heads import LabelAwareHead
from zoo.train.loop import EpochLoop, Step

__all__ = ["schedule_from_folds", "each_fold", "Replay", "FoldRun", "SCHEDULE_FOLDS"]

#: At most this many folds choose the unfrozen schedule (each costs the whole schedule once).
SCHEDULE_FOLDS = 3


def load_fitted(learner: Any, x: Any, targets: Any, params: dict[str, Any]) -> None:
    """The task's frozen head fitted on ``x`` (features) loaded into the learner's head (inside a
    label-aware mixture, whose prior stays)."""
    fitted = learner.task.fit(x, targets, params, learner.context).to(learner.device)
    head = learner.model.head
    (head.head if isinstance(head, LabelAwareHead) else head).load_state_dict(fitted.state_dict())


def _points(learner: Any) -> list[tuple[int, int]]:
    """The schedule's points after the head: (phase, phase_epoch), in order."""
    return [(phase, epoch) for phase in range(1, learner.n_phases()) for epoch in range(learner.options.unfreezing.epochs)]


class FoldRun:
    """The loop's strategy for one fold: every point of the schedule, judged on the fold's held-out
    part (its first step is the fitted head alone, not trained)."""

    def __init__(self, learner: Any, number: int, x: Any, targets: Any, train: Any, held: Any) -> None:
        self.learner, self.number = learner, number
        self.x, self.targets = x, targets
        data = learner.sets["train"]
        self.train_set, self.held_set = data.subset(train.tolist(), f"fold {number} [train]"), data.subset(
            held.tolist(), f"fold {number} [held out]")
        self.train_values, self.held_values = targets.values[train], targets.values[held]
        self.held_index = held
        self.optimizer: Any = None
        self.phase = 0

    def steps(self) -> list[Step]:
        return [Step(0, 0, "head (fold)")] + [Step(p, e, f"unfreeze-{p}") for p, e in _points(self.learner)]

    def patience(self, phase: int) -> None:
        return None  # every point is judged: the schedule is chosen from whole trajectories

    def begin(self, phase: int, optimizer_state: Any, loop: EpochLoop) -> None:
        self.optimizer, self.phase = (self.learner.optimizer(phase) if phase > 0 else None), phase

    def train(self, step: Step) -> dict[str, Any]:
        if step.phase == 0:
            return {}
        return self.learner.train_epoch(step.phase, step.phase_epoch, self.optimizer, data=self.train_set,
                                        values=self.train_values, salt=self.number + 1)

    def judge(self, step: Step) -> Score:
        learner = self.learner
        if step.phase == 0:
            with torch.no_grad():
                outputs = learner.model.head.eval()(torch.from_numpy(self.x[self.held_index]).float().to(learner.device))
            return learner.task.judge(outputs.float().cpu(), self.held_values, learner.context)
        return learner.judge("fold", step.phase, dataset=self.held_set, values=self.held_values)

    def is_best(self, step: Step, score: Score | None, best: dict[str, Any] | None) -> bool:
        return True  # a fold keeps its whole trajectory; nothing is restored from it

    def state(self) -> dict[str, Any]:
        return {}

    def optimizer_state(self) -> None:
        return None

    def restore(self, state: dict[str, Any]) -> None:
        return None

    def row(self, step: Step, trained: dict[str, Any], score: Score | None) -> dict[str, Any]:
        return {"loss": score.loss if score else float("inf"), "metric": score.metric if score else None}


def each_fold(learner: Any, x: Any, targets: Any, folder: Any, what: str,
              run: Any) -> tuple[int, list[dict[str, Any]]]:
    """k stratified folds of ``x`` (k = min(:data:`SCHEDULE_FOLDS`, the smallest class); plain
    shuffled folds without strata) and ``run(number, train, held)``'s record of each, written to
    ``folder/fold-N.json`` as it completes: a resumed run reads the folds it has and runs the rest."""
    from sklearn.model_selection import KFold, StratifiedKFold

    strata = targets.strata
    if strata is not None:
        counts = np.bincount(strata)
        k = max(2, min(SCHEDULE_FOLDS, int(counts[counts > 0].min())))
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=learner.options.seed).split(x, strata)
    else:
        k = max(2, min(SCHEDULE_FOLDS, len(x) // 2))
        splits = KFold(n_splits=k, shuffle=True, random_state=learner.options.seed).split(x)
    folder.mkdir(exist_ok=True)
    folds = []
    for number, (train, held) in enumerate(splits):
        fold_path = folder / f"fold-{number}.json"
        if fold_path.is_file():
            folds.append(json.loads(fold_path.read_text(encoding="utf-8")))
            continue
        learner.log(f"{what}: fold {number + 1} of {k}")
        folds.append(run(number, train, held))
        atomic_write_json(fold_path, folds[-1])
    return k, folds


def schedule_from_folds(learner: Any, x: Any, targets: Any, params: dict[str, Any], folder: Any,
                        higher_is_better: bool) -> dict[str, Any]:
    """The schedule chosen on folds (see the module; ``cv/schedule.json`` once chosen)."""
    path = folder / "schedule.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    count = 1 + len(_points(learner))

    def trajectory(number: int, train: Any, held: Any) -> dict[str, Any]:
        learner.restore_pretrained()
        load_fitted(learner, x[train], targets.take(train), params)
        loop = EpochLoop()
        state = loop.run(FoldRun(learner, number, x, targets, train, held))
        losses = [row["loss"] for row in loop.rows]
        metrics = [row["metric"] for row in loop.rows]
        diverged = state.stopped is not None
        worst = -np.inf if higher_is_better else np.inf
        losses += [float("inf")] * (count - len(losses))
        metrics += [worst] * (count - len(metrics))
        return {"fold": number, "loss": losses, "metric": metrics, "diverged": diverged}

    k, folds = each_fold(learner, x, targets, folder, "choosing the unfrozen schedule", trajectory)
    losses = np.array([f["loss"] for f in folds], dtype=np.float64)
    metrics = np.array([f["metric"] for f in folds], dtype=np.float64)
    mean_loss, mean_metric = losses.mean(0), metrics.mean(0)
    best = int(np.nanargmin(np.where(np.isfinite(mean_loss), mean_loss, np.nan)))
    points = [(0, -1), *_points(learner)]
    better = mean_metric[best] > mean_metric[0] if higher_is_better else mean_metric[best] < mean_metric[0]
    plan = {"folds": folds, "k": k, "mean_loss": mean_loss.tolist(), "mean_metric": mean_metric.tolist(),
            "points": points, "chosen": best, "phase": points[best][0], "phase_epoch": points[best][1],
            "head_metric": float(mean_metric[0]), "unfrozen_metric": float(mean_metric[best]),
            "keep": bool(best > 0 and better)}
    atomic_write_json(path, plan)
    learner.log(f"  schedule: head {plan['head_metric']:.3f}, best unfrozen point phase {plan['phase']} epoch "
                f"{plan['phase_epoch'] + 1} {plan['unfrozen_metric']:.3f} (mean held-out "
                f"{learner.options.plan.metric} over {k} folds)")
    return plan


class Replay:
    """The loop's strategy that replays a kept schedule on every labelled example: no held-out
    data, each point carries its folds' estimate, and the last point is the result."""

    where = "on all labelled examples"  # what the phases train on, for the log

    def __init__(self, learner: Any, plan: dict[str, Any]) -> None:
        self.learner, self.plan = learner, plan
        self.points = [tuple(p) for p in plan["points"]]
        self.optimizer: Any = None
        self.phase = 0

    def steps(self) -> list[Step]:
        return [Step(p, e, f"unfreeze-{p}") for p, e in self.points[1:self.plan["chosen"] + 1]]

    def patience(self, phase: int) -> None:
        return None

    def begin(self, phase: int, optimizer_state: Any, loop: EpochLoop) -> None:
        names = [n for n, _ in self.learner.unfrozen(phase)]
        self.learner.log(f"phase {phase}: unfreezing {', '.join(names)} {self.where}")
        self.optimizer, self.phase = self.learner.optimizer(phase), phase
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)

    def train(self, step: Step) -> dict[str, Any]:
        return self.learner.train_epoch(step.phase, step.phase_epoch, self.optimizer)

    def judge(self, step: Step) -> Score:
        index = self.points.index((step.phase, step.phase_epoch))
        return Score(loss=self.plan["mean_loss"][index], metric=self.plan["mean_metric"][index])

    def is_best(self, step: Step, score: Score | None, best: dict[str, Any] | None) -> bool:
        return (step.phase, step.phase_epoch) == self.points[self.plan["chosen"]]

    def state(self) -> dict[str, Any]:
        return self.learner.state(self.phase)

    def optimizer_state(self) -> Any:
        return self.optimizer.state_dict() if self.optimizer is not None else None

    def restore(self, state: dict[str, Any]) -> None:
        self.learner.restore(state)

    def row(self, step: Step, trained: dict[str, Any], score: Score | None) -> dict[str, Any]:
        return {**trained, "val_loss": None, "val_metric": None, "cv_loss": score.loss if score else None,
                "cv_metric": score.metric if score else None, "metric": self.learner.options.plan.metric}
