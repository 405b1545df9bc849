"""The one epoch loop: every recipe's epochs and rounds run here.

A recipe is a :class:`Strategy` over the loop: which steps it takes (phases of epochs, or rounds),
how one step trains, how it is judged, and what state a checkpoint holds. The loop owns what every
recipe needs the same way:

- a checkpoint after every step, written atomically (``checkpoints/epoch-NNNN.pt``, the optimizer's
  state beside the newest one), so a run killed at any instant resumes from the last complete step
  and ends exactly where a straight run would (randomness is a function of the seed and the step);
- a row per step in the log (``metrics.jsonl``) written before its checkpoint, and rows past the
  last checkpoint dropped on resume, so the history never loses or repeats a step;
- the best step tracked (``checkpoints/best.json``) and, at the end, restored: training can never
  leave a run worse, on the data it is judged by, than its best point;
- early stopping per phase after ``patience`` steps without a better score;
- a loss that becomes NaN or infinite stops the loop, keeping the best.

Without a checkpoint folder (the folds that choose a cross-validated schedule) the loop keeps its
state in memory: the same steps, judged the same way, nothing written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from zoo.atomic import atomic_write_bytes
from zoo.errors import ZooError
from zoo.tasks.contract import Score

__all__ = ["Step", "Strategy", "EpochLoop", "LoopState", "Diverged", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 2


class Diverged(Exception):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class Step:
    """One unit of training: an epoch of a phase, or a contrastive round (phase 0, one epoch per round)."""

    phase: int
    phase_epoch: int
    stage: str  # what the log calls it: "head", "unfreeze-2", "contrastive"


@dataclass
class LoopState:
    """The loop's bookkeeping, saved in every checkpoint (plain data)."""

    best: dict[str, Any] | None = None  # {"epoch", "phase", "score": {"loss", "metric"}}
    phase_done: int = -1
    stopped: str | None = None
    bad: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"best": self.best, "phase_done": self.phase_done, "stopped": self.stopped, "bad": self.bad}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        return cls(best=data.get("best"), phase_done=int(data.get("phase_done", -1)), stopped=data.get("stopped"),
                   bad=int(data.get("bad", 0)))


class Strategy(Protocol):
    """A recipe as the loop runs it."""

    def steps(self) -> list[Step]:
        """Every step the recipe may take, in order (early stopping may end a phase before its last)."""

    def patience(self, phase: int) -> int | None:
        """Steps without a better score after which a phase stops (None: never)."""

    def begin(self, phase: int, optimizer_state: Any, loop: EpochLoop) -> None:
        """Start ``phase`` (an optimizer for what learns in it, loaded with ``optimizer_state`` when
        resuming in the middle of it)."""

    def train(self, step: Step) -> dict[str, Any]:
        """Train one step; returns what the log keeps of it (``train_loss``, ...). Raises Diverged."""

    def judge(self, step: Step) -> Score | None:
        """The step's score on held-out data, or None when nothing is held out."""

    def is_best(self, step: Step, score: Score | None, best: dict[str, Any] | None) -> bool:
        """Whether this step becomes the best (by default: a lower held-out loss)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint of this step holds besides the loop's keys (the weights that changed:
        ``head`` and ``body``, say)."""

    def optimizer_state(self) -> Any:
        """The optimizer's state (saved beside the newest checkpoint only)."""

    def restore(self, state: dict[str, Any]) -> None:
        """Load a checkpoint's weights (the checkpoint, with the loop's keys beside them)."""

    def row(self, step: Step, trained: dict[str, Any], score: Score | None) -> dict[str, Any]:
        """The log's row for the step (the loop adds epoch, stage, phase, seconds and best)."""


def default_is_best(score: Score | None, best: dict[str, Any] | None) -> bool:
    if score is None:
        return True  # nothing judges it: the latest is the best
    return score.beats(Score(**best["score"]) if best and best.get("score") else None)


@dataclass
class EpochLoop:
    """Runs a :class:`Strategy` step by step (see the module). ``checkpoints``: a
    :class:`zoo.train.checkpoints.Checkpoints` (None: in memory); ``log_path``: the JSON-lines log
    (None: none); ``say``: where epoch lines go; ``quiet_steps``: log one line per this many steps
    of phase 0 (a head's epochs are many and take milliseconds)."""

    checkpoints: Any = None
    log_path: Path | None = None
    say: Callable[[str], None] = lambda text: None
    quiet_steps: int = 1
    first_epoch: int = 0  # the epoch number before this loop's first step (steps logged before it)
    on_row: Callable[[dict[str, Any]], None] | None = None  # each logged row, as it is logged (trackers)
    state: LoopState = field(default_factory=LoopState)
    rows: list[dict[str, Any]] = field(default_factory=list)
    _memory: dict[int, dict[str, Any]] = field(default_factory=dict)

    def run(self, strategy: Strategy, *, resume: bool = False, start: LoopState | None = None) -> LoopState:
        """Run (or continue) every step; returns the bookkeeping with the best step, which is restored."""
        steps = strategy.steps()
        epoch, position, optimizer_state = self.first_epoch, 0, None
        if start is not None:
            self.state = start
        # this loop's own checkpoints only: a later stage's loop (its epochs after these) resumes itself
        latest = (self.checkpoints.latest(after=self.first_epoch, until=self.first_epoch + len(steps))
                  if resume and self.checkpoints is not None else None)
        if latest is not None:
            epoch, checkpoint = latest
            strategy.restore(checkpoint)
            self.state = LoopState.from_dict(checkpoint["loop"])
            done = Step(checkpoint["phase"], checkpoint["phase_epoch"], "")
            position = next(i for i, s in enumerate(steps) if (s.phase, s.phase_epoch) == (done.phase, done.phase_epoch)) + 1
            optimizer_state = checkpoint.get("optimizer")
            if self.log_path is not None:
                _truncate_jsonl(self.log_path, epoch)
            self.say(f"resuming after epoch {epoch} (phase {done.phase}, epoch {done.phase_epoch})")
            if position < len(steps) and steps[position].phase != done.phase:
                # the checkpoint was its phase's last step: the phase ends here as in a straight run,
                # and the next begins with a new optimizer (the last one's state fits only its phase)
                self._end_phase(done.phase)
                optimizer_state = None
        elif self.log_path is not None:
            if not resume and self.first_epoch == 0:
                self.log_path.unlink(missing_ok=True)
            elif resume:  # killed before this loop's first checkpoint: its rows (if any) go
                _truncate_jsonl(self.log_path, self.first_epoch)
        phase = None
        for step in steps[position:]:
            if self.state.stopped is not None:
                break
            if step.phase <= self.state.phase_done:
                continue
            patience = strategy.patience(step.phase)
            if step.phase != phase:
                if phase is not None:
                    self._end_phase(phase)
                    if self.state.stopped is not None:
                        break
                phase = step.phase
                resuming_here = optimizer_state is not None
                if (resuming_here and patience is not None and self.state.bad >= patience):
                    self.state.phase_done, self.state.bad = phase, 0  # the phase had stopped early
                    optimizer_state = None
                    continue
                strategy.begin(step.phase, optimizer_state, self)
                optimizer_state = None
            elif self.state.phase_done >= step.phase:
                continue
            started = time.perf_counter()
            try:
                trained = strategy.train(step)
            except Diverged:
                self.state.stopped = f"loss became NaN or infinite in phase {step.phase}, epoch {step.phase_epoch}"
                self.say(f"stopping: {self.state.stopped}; keeping the best checkpoint")
                break
            score = strategy.judge(step)
            epoch += 1
            is_best = strategy.is_best(step, score, self.state.best)
            if is_best:
                self.state.best = {"epoch": epoch, "phase": step.phase,
                                   "score": score.to_dict() if score is not None else None}
                self.state.bad = 0
            else:
                self.state.bad += 1
            row = {"epoch": epoch, "stage": step.stage, "phase": step.phase, "phase_epoch": step.phase_epoch,
                   **strategy.row(step, trained, score), "seconds": time.perf_counter() - started, "best": is_best}
            self.rows.append(row)
            # The row goes first: a run killed before the checkpoint lands resumes from the one before,
            # and the resume drops rows past it, so the history never loses an epoch.
            if self.log_path is not None:
                _append_jsonl(self.log_path, row)
                if self.on_row is not None:
                    self.on_row(row)
            self._save(epoch, step, strategy, is_best, score)
            last_of_phase = step is steps[-1] or steps[steps.index(step) + 1].phase != step.phase
            if step.phase > 0 or last_of_phase or step.phase_epoch % self.quiet_steps == 0 or (
                    patience is not None and self.state.bad >= patience):
                self.say(epoch_line(row))
            if patience is not None and self.state.bad >= patience:
                self.state.phase_done = step.phase
        if phase is not None and self.state.stopped is None:
            self._end_phase(phase)
        if self.state.best is None:
            raise ZooError(f"training stopped before any epoch completed ({self.state.stopped}); "
                           f"lower the learning rate and run again")
        self.restore_best(strategy)
        return self.state

    def _end_phase(self, phase: int) -> None:
        self.state.phase_done = max(self.state.phase_done, phase)
        self.state.bad = 0
        best = self.state.best
        if best and best.get("score") and self.checkpoints is not None:
            self.say(f"  best so far: epoch {best['epoch']} (phase {best['phase']}), held-out loss "
                     f"{best['score']['loss']:.3f}, {best['score']['metric']:.3f}")

    def _save(self, epoch: int, step: Step, strategy: Strategy, is_best: bool, score: Score | None) -> None:
        state = {**strategy.state(), "version": CHECKPOINT_VERSION, "epoch": epoch, "phase": step.phase,
                 "phase_epoch": step.phase_epoch, "loop": self.state.to_dict()}
        if self.checkpoints is None:
            self._memory[epoch] = state
            return
        self.checkpoints.save(epoch, {**state, "optimizer": strategy.optimizer_state()})
        if is_best:
            self.checkpoints.mark_best(epoch, {"phase": step.phase, **(score.to_dict() if score else {})})

    def load(self, epoch: int) -> dict[str, Any]:
        """The checkpoint of ``epoch`` (from disk, or memory)."""
        if self.checkpoints is None:
            return self._memory[epoch]
        return self.checkpoints.load(epoch)

    def restore_best(self, strategy: Strategy) -> None:
        """Each phase starts from (and the loop ends at) the best step so far."""
        if self.state.best:
            strategy.restore(self.load(self.state.best["epoch"]))


def epoch_line(row: dict[str, Any]) -> str:
    """One epoch as a person reads it."""
    mark = "  *best" if row.get("best") else ""
    name = row.get("metric") or "score"
    if row.get("val_loss") is not None:
        judged = f" | val loss {row['val_loss']:.3f} {name} {row.get('val_metric', row.get('val_acc', 0.0)):.3f}"
    elif row.get("cv_loss") is not None:  # a cross-validated run: the folds' estimate for this point
        judged = f" | cv loss {row['cv_loss']:.3f} {name} {row['cv_metric']:.3f}"
    else:
        judged = ""
    trained = f"train loss {row['train_loss']:.3f}" if row.get("train_loss") is not None else "no training"
    if row.get("train_metric") is not None:
        trained += f" {name} {row['train_metric']:.3f}"
    return f"  epoch {row['epoch']:>3} ({row['stage']}): {trained}{judged} | {row['seconds']:.1f}s{mark}"


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()


def _truncate_jsonl(path: Path, epoch: int) -> None:
    """Drop rows after ``epoch`` (written after the last complete checkpoint of a killed run)."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and _row_epoch(line) is not None and _row_epoch(line) <= epoch]
    atomic_write_bytes(path, ("\n".join(rows) + "\n").encode() if rows else b"")


def _row_epoch(line: str) -> int | None:
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line of a killed run
