"""The one epoch loop (zoo.train.loop) on a recipe whose phases each make a new optimizer: a run
killed anywhere, resumed from its checkpoints, takes the same steps as a straight run."""

from __future__ import annotations

import pytest

from zoo.tasks.contract import Score
from zoo.train.checkpoints import Checkpoints
from zoo.train.loop import EpochLoop, Step, default_is_best


class Killed(BaseException):
    """What a kill -9 after a given checkpoint looks like to the loop: nothing more runs."""


class Phases:
    """Three phases of three steps; each phase's optimizer holds one more parameter group than the
    last (as unfreezing adds stages), so a phase's optimizer state cannot load into the next's."""

    def __init__(self, kill_after: tuple[int, int] | None = None) -> None:
        self.kill_after = kill_after
        self.value = 0.0
        self.groups: list[float] | None = None
        self.begun: list[tuple[int, object]] = []

    def steps(self) -> list[Step]:
        return [Step(phase, epoch, f"phase {phase}") for phase in range(3) for epoch in range(3)]

    def patience(self, phase: int) -> int | None:
        return None

    def begin(self, phase: int, optimizer_state, loop) -> None:
        self.begun.append((phase, optimizer_state))
        self.groups = [0.0] * (phase + 1)
        if optimizer_state is not None:
            if len(optimizer_state) != len(self.groups):
                raise ValueError("loaded state dict has a different number of parameter groups")
            self.groups = list(optimizer_state)

    def train(self, step: Step) -> dict:
        if self.kill_after is not None and self.kill_after < (step.phase, step.phase_epoch):
            raise Killed()
        self.groups = [g + 1.0 for g in self.groups]
        self.value += sum(self.groups)
        return {"train_loss": self.value}

    def judge(self, step: Step) -> Score:
        return Score(loss=1.0 / (1.0 + self.value), metric=self.value)

    def is_best(self, step: Step, score: Score | None, best) -> bool:
        return default_is_best(score, best)

    def state(self) -> dict:
        return {"value": self.value}

    def optimizer_state(self):
        return list(self.groups)

    def restore(self, state: dict) -> None:
        self.value = state["value"]

    def row(self, step: Step, trained: dict, score: Score | None) -> dict:
        return {**trained, "val_loss": score.loss}


def _loop(folder) -> EpochLoop:
    folder.mkdir(exist_ok=True)  # a run folder, as zoo finetune makes it
    return EpochLoop(checkpoints=Checkpoints(folder / "checkpoints"), log_path=folder / "metrics.jsonl")


@pytest.mark.parametrize("kill_after", [(0, 2), (1, 1), (1, 2)], ids=["end of phase 0", "inside phase 1",
                                                                       "end of phase 1"])
def test_a_run_killed_anywhere_resumes_to_the_straight_runs_steps(tmp_path, kill_after):
    straight = Phases()
    _loop(tmp_path / "straight").run(straight)

    folder = tmp_path / "killed"
    with pytest.raises(Killed):
        _loop(folder).run(Phases(kill_after))
    resumed = Phases()
    loop = _loop(folder)
    loop.run(resumed, resume=True)

    assert resumed.value == straight.value
    assert [row["train_loss"] for row in loop.rows] == [
        row["train_loss"] for row in _rows(tmp_path / "straight")][-len(loop.rows):]
    assert (folder / "metrics.jsonl").read_text().count("\n") == 9
    first_phase, state = resumed.begun[0]
    if kill_after[1] == 2:  # the checkpoint ended its phase: the next phase begins as in a straight run
        assert (first_phase, state) == (kill_after[0] + 1, None)
    else:  # inside a phase: its optimizer continues from the checkpoint's
        assert first_phase == kill_after[0] and state is not None


def _rows(folder) -> list[dict]:
    import json

    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
