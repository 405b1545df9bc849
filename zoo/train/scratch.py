"""A dense task's honest baseline: the same network on the same architecture with random weights.

What transfer buys a detector is its backbone's pretrained features. The baseline is the run's
own network (the task's :meth:`~zoo.tasks.contract.DenseTask.network`) on the card's architecture
with random weights, frozen, its new modules trained exactly as the run's phase 0 (the same
epochs, optimizer, schedule and seed, on its own frozen feature maps, through the one epoch loop,
in memory), then scored on the held-out sets by the task. It costs about one phase 0: its maps
are computed once and only the new modules learn.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from zoo.tasks.contract import Score
from zoo.train.loop import EpochLoop, Step

__all__ = ["scratch_baseline"]


class _Phase0:
    """The loop's strategy: the run's phase 0, its epochs not judged (the last one is kept)."""

    def __init__(self, learner: Any) -> None:
        self.learner, self.optimizer = learner, None

    def steps(self) -> list[Step]:
        return [Step(0, e, "random backbone") for e in range(self.learner.phase_length(0)[0])]

    def patience(self, phase: int) -> None:
        return None

    def begin(self, phase: int, optimizer_state: Any, loop: EpochLoop) -> None:
        self.optimizer = self.learner.optimizer(0)

    def train(self, step: Step) -> dict[str, Any]:
        return self.learner.train_epoch(0, step.phase_epoch, self.optimizer)

    def judge(self, step: Step) -> Score | None:
        return None

    def is_best(self, step: Step, score: Score | None, best: dict[str, Any] | None) -> bool:
        return True

    def state(self) -> dict[str, Any]:
        return self.learner.state(0)

    def optimizer_state(self) -> None:
        return None

    def restore(self, state: dict[str, Any]) -> None:
        self.learner.restore(state)

    def row(self, step: Step, trained: dict[str, Any], score: Score | None) -> dict[str, Any]:
        return dict(trained)


def scratch_baseline(task: Any, labelled: Any, targets: Any, held_out: Mapping[str, tuple[Any, Any]], context: Any,
                     *, seed: int) -> dict[str, Any]:
    """The baseline's metrics on each held-out set (see the module)."""
    import torch

    from zoo.loading import load
    from zoo.train.learner import Learner

    started = time.perf_counter()
    card = context.card
    backbone = load(card, features=task.feature_maps(card), pretrained=False)
    torch.manual_seed(seed)
    network = task.network(backbone, targets, context)
    sets = {"train": labelled, **{name: dataset for name, (dataset, _) in held_out.items()}}
    learner = Learner(backbone, network.head, task, context, sets=sets,
                      targets={"train": targets, **{name: truth for name, (_, truth) in held_out.items()}},
                      fetched=None, device=next(network.parameters()).device, log=lambda text: None, progress=False,
                      network=network)
    EpochLoop().run(_Phase0(learner))
    choices = {"head": getattr(network, "record", {})}
    result: dict[str, Any] = {"name": "the same network on the architecture with random weights (frozen; the new "
                                      "modules trained as phase 0)", "epochs": learner.phase_length(0)[0]}
    for name, (dataset, truth) in held_out.items():
        if dataset is not None and len(dataset):
            result[name] = task.evaluate(learner.outputs(name, 0), truth, choices)
            result[name].pop("curves", None)
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
