"""Fine-tuning an image-text model that keeps what it knew: WiSE-FT as strategies over the one loop.

An image-text model (CLIP, SigLIP) classifies pictures zero-shot: its text tower embeds the class
names in photo prompts, and a picture goes to the class whose prototype its image embedding is
closest to (:func:`zoo.prompts.class_prompts`, exactly as ``zoo fewshot MODEL --labels``).
Fine-tuning the image tower on a few labels gains on the classes it is shown and can lose the
robustness zero-shot had under distribution shift; mixing the zero-shot and fine-tuned weights
keeps much of both (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022). The
recipe (``--recipe wise-ft``, the default for image-text classification):

1. the head starts as the zero-shot classifier (``task.zero_shot_head``: the names' prototypes,
   the model's own logit scale and bias): the label-prior idea of the text recipes, as the
   initialisation;
2. the image tower's top stages are fine-tuned with it, the learner's unfrozen phases (the head
   learns at the backbone's rate, not the 10x a new head gets: it is a pretrained layer too, as
   in the paper's end-to-end fine-tuning);
3. ``theta(a) = (1 - a) * theta_zero_shot + a * theta_fine_tuned`` for the trained stages and the
   head (``torch.lerp``: exact at both ends; buffers such as the logit scale are the same in both);
4. ``a`` is chosen among :data:`ALPHAS` on held-out data by the task's metric (ties: the lower
   loss): on small data (the plan's ``folds``) each of k stratified folds fine-tunes from zero-shot
   on its training part (the epoch loop, in memory) and judges every ``a`` on its held-out part,
   then the fine-tuning is replayed on every labelled example (the loop, checkpointed) and mixed;
   on larger data (``split``) the fine-tuning runs once on the training split (checkpointed) and
   ``a`` is judged on the validation split. The fine-tuned end is the end of the schedule (the
   paper's fixed schedule: the mixing, not early stopping, guards against going too far);
5. the mixture replaces the cross-validated frozen head (itself mixed with the zero-shot
   classifier as a label prior, :mod:`zoo.tasks.prior`) only when it beats it on the same folds
   or split; ``--mix A`` fixes ``a`` and keeps the mixture.

``a = 0`` is the zero-shot classifier itself, ``a = 1`` the fine-tuned network. The report gives
zero-shot, fine-tuned and mixed side by side (``wise_ft`` in report/metrics.json: each one's
held-out estimate, every ``a``'s, and each one's metrics on the held-out sets).

Files: ``wiseft/zero_shot.json`` (the prototypes, scale, bias and templates), ``wiseft/fold-N.json``
as each fold completes, ``wiseft/choice.json``: a killed run resumes after its last complete fold,
or from its last checkpoint once the fine-tuning on all examples has begun.

Not measured: pretrained image-text weights cannot be downloaded on this machine, so the grid, the
2 unfrozen stages and the head's rate follow the paper, not a bench/ run; the mechanics are tested
end to end on tiny random-weight CLIP and SigLIP repositories (tests/test_wiseft.py).
"""

from __future__ import annotations

import json
from typing import Any

from zoo.atomic import atomic_write_json
from zoo.tasks.contract import Score
from zoo.train.crossfit import FoldRun, Replay, each_fold, load_fitted
from zoo.train.loop import EpochLoop, LoopState, Step
from zoo.train.zeroshot import FOLDER, zero_shot_start

__all__ = ["wise_stage", "mixed", "ALPHAS"]

#: The mixing weights judged (the paper's grid): 0 is zero-shot, 1 the fine-tuned network.
ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))


def mixed(zero: dict[str, Any], tuned: dict[str, Any], a: float) -> dict[str, Any]:
    """``(1 - a) * zero + a * tuned`` for a learner state's head and trained stages (``{"head",
    "body"}``); ``zero`` holds the zero-shot head and the pulled values of the same stages."""
    import torch

    return {part: {k: torch.lerp(zero[part][k], v, a) if v.is_floating_point() else v
                   for k, v in tuned[part].items()} for part in ("head", "body")}


def _tuned_state(learner: Any) -> dict[str, Any]:
    """The fine-tuned network's head and trained stages, copied (a learner's state shares the head's
    live tensors, which every mixture judged after it overwrites)."""
    state = learner.state(learner.n_phases() - 1)
    return {part: {k: v.clone() for k, v in state[part].items()} for part in ("head", "body")}


def _zero_state(learner: Any, head: dict[str, Any], tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    """The zero-shot network as a learner state: its head, and the pulled values of the stages
    ``tuned`` trained (none: :meth:`Learner.restore` loads the pulled body first anyway)."""
    return {"head": head, "body": {k: learner.pretrained[k] for k in (tuned or {}).get("body", {})}}


def _head_at_backbone_rate(optimizer: Any, learner: Any) -> None:
    """The zero-shot head learns at the top stage's rate (see the module)."""
    for group in getattr(optimizer, "param_groups", ()):
        if group.get("name") == "head":
            group["lr"] = group["base_lr"] = learner.options.unfreezing.backbone_lr


class _FromZeroShot:
    """What every WiSE-FT strategy adds to crossfit's: the head's learning rate."""

    optimizer: Any
    learner: Any

    def begin(self, phase: int, optimizer_state: Any, loop: EpochLoop) -> None:
        super().begin(phase, optimizer_state, loop)  # type: ignore[misc]
        _head_at_backbone_rate(self.optimizer, self.learner)


class _Fold(_FromZeroShot, FoldRun):
    """One fold: the zero-shot head judged (step 0), then every point of the schedule."""


class _Replay(_FromZeroShot, Replay):
    """The whole schedule on every labelled example, each point carrying the folds' estimate of
    the fine-tuned network there; its end is the fine-tuned network."""


class _Split(_FromZeroShot, Replay):
    """The whole schedule on the training split, every point judged on the validation split."""

    where = "on the training split, judged on the validation split"

    def judge(self, step: Step) -> Score:
        return self.learner.judge("val", step.phase)

    def row(self, step: Step, trained: dict[str, Any], score: Score | None) -> dict[str, Any]:
        return {**trained, "val_loss": score.loss if score else None, "val_metric": score.metric if score else None,
                "metric": self.learner.options.plan.metric}


def _schedule(learner: Any) -> list[tuple[int, int]]:
    from zoo.train.crossfit import _points

    return _points(learner)


def _score(score: Any) -> dict[str, float]:
    return {"loss": float(score.loss), "metric": float(score.metric)}


def _on_features(learner: Any, x: Any, values: Any) -> dict[str, float]:
    """The learner's head on cached features (the pulled image tower), judged by the task."""
    import torch

    with torch.no_grad():
        outputs = learner.model.head.eval()(torch.from_numpy(x).float().to(learner.device)).float().cpu()
    return _score(learner.task.judge(outputs, values, learner.context))


# --------------------------------------------------------------------------- judging every a


def _alphas(learner: Any) -> list[float]:
    """The weights judged: :data:`ALPHAS`, and ``--mix``'s when it is off the grid."""
    fixed = learner.options.plan.mix
    return sorted({*ALPHAS, *(() if fixed == "auto" else (float(fixed),))})


def _sweep(learner: Any, zero: dict[str, Any], tuned: dict[str, Any], ends: dict[float, dict[str, float]],
           judge: Any) -> dict[str, dict[str, float]]:
    """Every ``a``'s held-out score: the ends as measured (``ends``), the rest through the mixed network."""
    scores = {}
    for a in _alphas(learner):
        if a in ends:
            scores[str(a)] = ends[a]
            continue
        learner.restore(mixed(zero, tuned, a))
        scores[str(a)] = judge()
    return scores


def _fold(learner: Any, number: int, x: Any, targets: Any, train: Any, held: Any, head: dict[str, Any],
          frozen: Any, params: dict[str, Any]) -> dict[str, Any]:
    """One fold (see the module): the frozen head fitted on its training part, the zero-shot
    start fine-tuned there, and every ``a`` judged on its held-out part."""
    import copy

    learner.restore_pretrained()
    zero_shot_head = learner.model.head
    learner.model.head = copy.deepcopy(frozen)
    load_fitted(learner, x[train], targets.take(train), params)
    frozen_score = _on_features(learner, x[held], targets.values[held])
    learner.model.head = zero_shot_head
    learner.restore(_zero_state(learner, head))
    loop = EpochLoop()
    strategy = _Fold(learner, number, x, targets, train, held)
    state = loop.run(strategy)
    trajectory = [{"loss": row["loss"], "metric": row["metric"]} for row in loop.rows]
    diverged = state.stopped is not None or len(trajectory) < 1 + len(_schedule(learner))
    tuned = _tuned_state(learner)
    zero = _zero_state(learner, head, tuned)
    if diverged:  # no fine-tuned end to mix with: every a > 0 scores as the worst
        worst = {"loss": float("inf"), "metric": float("-inf") if _higher(learner) else float("inf")}
        sweep = {str(a): trajectory[0] if a == 0 else worst for a in _alphas(learner)}
    else:
        last = max(p for p, _ in _schedule(learner))
        sweep = _sweep(learner, zero, tuned, {0.0: trajectory[0], 1.0: trajectory[-1]},
                       lambda: _score(learner.judge("fold", last, dataset=strategy.held_set,
                                                    values=strategy.held_values)))
    return {"fold": number, "frozen": frozen_score, "trajectory": trajectory, "alphas": sweep, "diverged": diverged}


def _higher(learner: Any) -> bool:
    return bool(learner.task.metrics[learner.options.plan.metric])


def _choose(scores: dict[str, dict[str, float]], frozen: dict[str, float], higher: bool, fixed: Any) -> dict[str, Any]:
    """The ``a`` of :data:`ALPHAS` with the best held-out metric (ties: the lower loss), or
    ``--mix``'s, and whether the mixture is kept: given ``--mix``, yes; else only when it beats
    the frozen head."""
    sign = 1.0 if higher else -1.0
    best = max(ALPHAS, key=lambda a: (sign * scores[str(a)]["metric"], -scores[str(a)]["loss"]))
    alpha = best if fixed == "auto" else float(fixed)
    return {"alpha": alpha, "best": best, "fixed": fixed != "auto",
            "kept": fixed != "auto" or sign * scores[str(best)]["metric"] > sign * frozen["metric"]}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    import numpy as np

    return {key: float(np.mean([row[key] for row in rows])) for key in ("loss", "metric")}


# --------------------------------------------------------------------------- the stage


def wise_stage(setup: Any, trained: Any) -> Any:
    """The recipe (see the module) after the cross-validated frozen head: returns ``trained``
    with the mixture as its network when it is kept, else the frozen head as it was."""
    from zoo.train.trained import Trained, stage_loop

    learner, selection = trained.learner, trained.selection
    frozen = learner.model.head
    head_loop = LoopState.from_dict(json.loads(json.dumps(trained.loop.to_dict())))  # should the head stay
    start = zero_shot_start(setup)
    learner.model.head = setup.task.zero_shot_head(start["prototypes"], start["scale"], start["bias"],
                                                   setup.context).to(setup.device)
    head = {k: v.detach().cpu().clone() for k, v in learner.model.head.state_dict().items()}
    higher = _higher(learner)
    names = [name for name, _ in learner.unfrozen(learner.n_phases() - 1)]
    folder = setup.folder / FOLDER
    if setup.plan.unfrozen == "folds":
        x = learner.features["train"].numpy()
        judged = _judged_on_folds(setup, learner, x, head, frozen, selection.params, folder)
        choice = _choice(folder, judged, higher, setup.options.plan.mix)
        if not choice["kept"]:
            return _not_kept(setup, trained, frozen, judged, choice, names, head_loop)
        loop = stage_loop(setup, first_epoch=1)
        if not setup.resuming or loop.checkpoints.latest(after=1) is None:
            learner.restore(_zero_state(learner, head))
        points = [(0, -1), *_schedule(learner)]
        means = [_mean([fold["trajectory"][i] for fold in judged["folds"]]) for i in range(len(points))]
        plan = {"points": points, "chosen": len(points) - 1, "mean_loss": [m["loss"] for m in means],
                "mean_metric": [m["metric"] for m in means]}
        state = loop.run(_Replay(learner, plan), resume=setup.resuming, start=trained.loop)
    else:
        x_train = learner.embeddings("train").numpy()
        judged = {"frozen": _frozen_on_split(learner, x_train, frozen, setup, selection.params)}
        learner.model.head.load_state_dict(head)
        judged["zero_shot"] = _on_features(learner, learner.embeddings("val").numpy(), setup.targets["val"].values)
        loop = stage_loop(setup, first_epoch=1)
        if not setup.resuming or loop.checkpoints.latest(after=1) is None:
            learner.restore(_zero_state(learner, head))
        points = [(0, -1), *_schedule(learner)]
        state = loop.run(_Split(learner, {"points": points, "chosen": len(points) - 1}), resume=setup.resuming,
                         start=trained.loop)
        judged["trajectory"] = [judged["zero_shot"]] + [{"loss": r["val_loss"], "metric": r["val_metric"]}
                                                         for r in _tuning_rows(setup)]
    tuned = _tuned_state(learner)
    zero = _zero_state(learner, head, tuned)
    if setup.plan.unfrozen != "folds":
        last = max(p for p, _ in _schedule(learner))
        fine = judged["trajectory"][-1]
        judged["alphas"] = _sweep(learner, zero, tuned, {0.0: judged["zero_shot"], 1.0: fine},
                                  lambda: _score(learner.judge("val", last)))
        choice = _choice(folder, judged, higher, setup.options.plan.mix)
        if not choice["kept"]:
            return _not_kept(setup, trained, frozen, judged, choice, names, head_loop)
    held_out = _ends_on_held_out(setup, learner, zero, tuned, frozen)
    learner.restore(mixed(zero, tuned, choice["alpha"]))
    setup.writer.choose(head={"kind": "prototypes"}, label_prior=None,
                        wise_ft={"alpha": choice["alpha"], "kept": True, "templates": start["templates"],
                                 "stages": names})
    record = _record(setup, judged, choice, names, start, held_out)
    learner.log(record["line"])
    result = Trained(learner, state, selection, trained.judged)
    result.judged["wise_ft"] = record
    return result


def _judged_on_folds(setup: Any, learner: Any, x: Any, head: dict[str, Any], frozen: Any, params: dict[str, Any],
                     folder: Any) -> dict[str, Any]:
    """Every fold's judgement (``wiseft/fold-N.json`` as each completes; read back on resume)."""
    targets = setup.targets["train"]
    k, folds = each_fold(learner, x, targets, folder, "wise-ft: fine-tuning from zero-shot, every mixing weight judged",
                         lambda number, train, held: _fold(learner, number, x, targets, train, held, head, frozen,
                                                           params))
    return {"k": k, "folds": folds, "frozen": _mean([f["frozen"] for f in folds]),
            "zero_shot": _mean([f["trajectory"][0] for f in folds]),
            "trajectory": [_mean([f["trajectory"][i] for f in folds]) for i in range(len(folds[0]["trajectory"]))],
            "alphas": {str(a): _mean([f["alphas"][str(a)] for f in folds]) for a in _alphas(learner)}}


def _choice(folder: Any, judged: dict[str, Any], higher: bool, fixed: Any) -> dict[str, Any]:
    """The choice of ``a`` (``wiseft/choice.json``: a resumed run reads what it chose)."""
    path = folder / "choice.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    choice = _choose(judged["alphas"], judged["frozen"], higher, fixed)
    atomic_write_json(path, choice)
    return choice


def _frozen_on_split(learner: Any, x_train: Any, frozen: Any, setup: Any, params: dict[str, Any]) -> dict[str, float]:
    """The frozen head refitted on the training split, judged on the validation split."""
    import copy

    zero_shot_head = learner.model.head
    learner.model.head = copy.deepcopy(frozen)
    load_fitted(learner, x_train, setup.targets["train"], params)
    score = _on_features(learner, learner.embeddings("val").numpy(), setup.targets["val"].values)
    learner.model.head = zero_shot_head
    return score


def _tuning_rows(setup: Any) -> list[dict[str, Any]]:
    """The fine-tuning's rows in the log (a resumed run's loop holds only those after its resume)."""
    from zoo.train.trained import logged_rows

    return [r for r in logged_rows(setup) if r.get("epoch", 0) > 1]


def _not_kept(setup: Any, trained: Any, frozen: Any, judged: dict[str, Any], choice: dict[str, Any],
              names: list[str], head_loop: LoopState) -> Any:
    """The frozen head stays (it beat the mixture on the same held-out data), and so does its place
    as the run's best (a split's fine-tuning moved the best past it)."""
    from zoo.train.trained import head_stays

    learner = trained.learner
    learner.model.head = frozen
    learner.restore(learner.state_of_head_only())
    head_stays(setup, trained.loop, head_loop.best)
    record = _record(setup, judged, choice, names, None, {})
    learner.log(record["line"])
    trained.judged["wise_ft"] = record
    setup.writer.choose(wise_ft={"alpha": choice["alpha"], "kept": False})
    return trained


def _ends_on_held_out(setup: Any, learner: Any, zero: dict[str, Any], tuned: dict[str, Any],
                      frozen: Any) -> dict[str, Any]:
    """The zero-shot network's, the fine-tuned one's and the frozen head's metrics on each held-out
    set the report scores (the mixture's are the run's own)."""
    import copy

    import torch

    out: dict[str, Any] = {}
    phase = learner.n_phases() - 1
    head = copy.deepcopy(frozen)
    head.load_state_dict(learner.fitted_all)  # fitted on every labelled example
    for name in ("val", "test"):
        dataset = setup.sets.get(name)
        if dataset is None or len(dataset) == 0:
            continue
        with torch.no_grad():
            outputs = {"frozen_head": head.eval()(learner.embeddings(name).to(learner.device)).float().cpu()}
        learner.restore(zero)
        outputs["zero_shot"] = learner.outputs(name, 0)
        learner.restore(tuned)
        outputs["fine_tuned"] = learner.outputs(name, phase)
        out[name] = {key: setup.task.evaluate(value.numpy(), setup.targets[name], setup.writer.choices)
                     for key, value in outputs.items()}
    return out


def _record(setup: Any, judged: dict[str, Any], choice: dict[str, Any], names: list[str], start: Any,
            held_out: dict[str, Any]) -> dict[str, Any]:
    """``wise_ft`` in report/metrics.json, with the line a person reads."""
    metric = setup.options.plan.metric
    alphas = judged["alphas"]
    on = f"{judged['k']} folds" if "k" in judged else "the validation split"
    mixture = alphas[str(choice["alpha"])]
    how = "--mix" if choice["fixed"] else f"chosen on {on}"
    verdict = ("the mixture is the model" if choice["kept"] else
               "the frozen head stays: the mixture did not beat it")
    line = (f"wise-ft ({', '.join(names)} fine-tuned from zero-shot), held-out {metric} on {on}: zero-shot "
            f"{judged['zero_shot']['metric']:.3f}, fine-tuned {alphas['1.0']['metric']:.3f}, mixed "
            f"a={choice['alpha']:g} ({how}) {mixture['metric']:.3f}, the frozen head "
            f"{judged['frozen']['metric']:.3f}; {verdict}")
    return {"alpha": choice["alpha"], "best": choice["best"], "chosen_by": "--mix" if choice["fixed"] else on,
            "judged_on": on,
            "kept": choice["kept"], "metric": metric, "folds": judged.get("k"), "stages": names,
            "alphas": [{"alpha": float(a), **score} for a, score in alphas.items()],
            "zero_shot": judged["zero_shot"], "fine_tuned": alphas["1.0"], "mixed": mixture,
            "frozen_head": judged["frozen"], "trajectory": judged["trajectory"], "held_out": held_out, "line": line,
            **({"templates": start["templates"], "scale": start["scale"], "bias": start["bias"]} if start else {})}
