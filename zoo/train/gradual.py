"""Gradual unfreezing judged on a validation split: the recipe of runs with enough data to hold some out.

Phase 0 is the head: trained by epochs on the frozen backbone's cached embeddings (``--head mlp``,
``--validation split``), or, by default, the cross-validated frozen head already fitted on the
training part, scored once as the starting point. Phase k >= 1 unfreezes the top k stages (one
more each phase) with small, discriminative learning rates. Every epoch is judged on the
validation set by the task's loss; each phase stops early when validation stops improving and
starts from the best model so far; the best epoch over all phases is restored at the end, so
unfreezing can never leave a result worse (on validation) than the head alone.
"""

from __future__ import annotations

from typing import Any

from zoo.tasks.contract import Score
from zoo.train.loop import EpochLoop, Step, default_is_best

__all__ = ["Gradual"]


class Gradual:
    """The loop's strategy for a split (see the module). ``fitted``: the head was fitted already
    (the cross-validated frozen head): phase 0 is that head, scored on validation, not trained."""

    def __init__(self, learner: Any, *, fitted: bool = False) -> None:
        self.learner = learner
        self.fitted = fitted
        self.optimizer: Any = None
        self.phase = 0

    def steps(self) -> list[Step]:
        learner = self.learner
        head = [Step(0, 0, "head (cv)")] if self.fitted else [Step(0, e, "head")
                                                               for e in range(learner.phase_length(0)[0])]
        unfrozen = [Step(p, e, f"unfreeze-{p}") for p in range(1, learner.n_phases())
                    for e in range(learner.phase_length(p)[0])]
        return head + unfrozen

    def patience(self, phase: int) -> int | None:
        return self.learner.phase_length(phase)[1]

    def begin(self, phase: int, optimizer_state: Any, loop: EpochLoop) -> None:
        learner = self.learner
        if phase == 0 and not learner.dense:  # computed (or read from the cache) before any seeded epoch
            learner.embeddings("train")
            learner.embeddings("val")
        elif optimizer_state is None:
            loop.restore_best(self)  # each phase starts from the best model so far
        names = [n for n, _ in learner.unfrozen(phase)]
        learner.log(f"phase {phase}: " + ("the cross-validated head, scored on the validation split" if self.fitted
                                          and phase == 0 else "the new network through the frozen backbone"
                                          if phase == 0 and learner.dense else "head on cached embeddings"
                                          if phase == 0 else f"unfreezing {', '.join(names)}"))
        self.optimizer, self.phase = learner.optimizer(phase), phase
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)

    def train(self, step: Step) -> dict[str, Any]:
        if self.fitted and step.phase == 0:
            return {"train_loss": None, "train_metric": None}
        return self.learner.train_epoch(step.phase, step.phase_epoch, self.optimizer)

    def judge(self, step: Step) -> Score:
        return self.learner.judge("val", step.phase)

    def is_best(self, step: Step, score: Score | None, best: dict[str, Any] | None) -> bool:
        return default_is_best(score, best)

    def state(self) -> dict[str, Any]:
        return self.learner.state(self.phase)

    def optimizer_state(self) -> Any:
        return self.optimizer.state_dict() if self.optimizer is not None else None

    def restore(self, state: dict[str, Any]) -> None:
        self.learner.restore(state)

    def row(self, step: Step, trained: dict[str, Any], score: Score | None) -> dict[str, Any]:
        return {**trained, "val_loss": score.loss if score else None, "val_metric": score.metric if score else None,
                "metric": self.learner.context.options.plan.metric}
