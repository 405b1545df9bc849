"""What one stage of a run hands the next (:class:`Trained`) and what every stage shares: the
run's epoch loop (:func:`stage_loop`), its logged rows, and putting the cross-validated head back
as the run's model. Below both :mod:`zoo.train.stages` and :mod:`zoo.train.wiseft`, which each
use them (they imported each other before)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from zoo.train.loop import EpochLoop, LoopState

__all__ = ["Trained", "stage_loop", "head_stays", "logged_rows"]


@dataclass
class Trained:
    """Where a run stands after a stage: its learner (network and features), the loop's
    bookkeeping (the best epoch), and what it chose and how that was judged."""

    learner: Any
    loop: LoopState
    selection: Any = None  # zoo.train.selection.Selection of a cross-validated head
    judged: dict[str, Any] = field(default_factory=dict)  # for the report: label prior, schedule, unfrozen


def stage_loop(setup: Any, **more: Any) -> EpochLoop:
    """The run's one epoch loop: checkpoints in the run folder, rows to metrics.jsonl and the trackers."""
    from zoo.train.checkpoints import Checkpoints

    def logged(row: dict[str, Any]) -> None:
        for tracker in setup.trackers:
            tracker.epoch(row)

    from zoo.tasks.contract import is_dense

    # a head's epochs on cached embeddings are many and quick: one line per 10; a dense task's are not
    return EpochLoop(checkpoints=Checkpoints(setup.folder / "checkpoints"), log_path=setup.folder / "metrics.jsonl",
                     say=setup.say, quiet_steps=1 if is_dense(setup.task) else 10,
                     on_row=logged if setup.trackers else None, **more)


def head_stays(setup: Any, state: LoopState, best: dict[str, Any]) -> None:
    """The cross-validated head is the run's model again after unfrozen phases that were not kept:
    the loop's bookkeeping and ``checkpoints/best.json`` (what the run's record reads) say so."""
    state.best = best
    stage_loop(setup).checkpoints.mark_best(best["epoch"], {"phase": best["phase"], **(best.get("score") or {})})


def logged_rows(setup: Any) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl so far (none before the first epoch)."""
    path = setup.folder / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.is_file() else []
