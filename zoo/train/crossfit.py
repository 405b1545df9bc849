"""Training on every labelled example, with each decision taken by cross-validation (small data).

The head is the cross-validated logistic regression of :mod:`zoo.train.selection`, fitted on all
labelled examples. Unfrozen phases (``--unfreeze``, text's default) need an epoch count, and
without a validation set it comes from folds:

1. for each of k stratified folds (k = min(3, smallest class): an unfrozen epoch costs a pass
   of the backbone), the head is fitted on the fold's training part, then the phases run there
   for ``unfreeze_epochs`` each (warmup + cosine per phase), and after every epoch the held-out
   part is scored (loss and ``--metric``); the starting point, the head alone, is scored too;
2. the point of the schedule with the lowest mean held-out loss is chosen; it is kept only if
   its mean ``--metric`` beats the head's on the same folds, so the run is never below its own
   head-only estimate; otherwise the head alone is the result;
3. a kept schedule is replayed on all labelled examples up to that point (same phases, same
   per-phase learning-rate schedule), checkpointed every epoch like any run.

Each fold's trajectory lands in ``cv/fold-N.json`` as it completes, and the choice in
``cv/schedule.json``: a killed run resumes after its last complete fold, or from its last
checkpoint once the final training has begun.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.atomic import atomic_write_json
from zoo.train.heads import LabelAwareHead, NormalisedLinear
from zoo.train.recipe import Diverged, Score, Trainer, _append_jsonl, _epoch_line, _truncate_jsonl

__all__ = ["CrossFit", "SCHEDULE_FOLDS"]

#: At most this many folds choose the unfrozen schedule (each costs the whole schedule once).
SCHEDULE_FOLDS = 3


def _metric(truth: np.ndarray, predicted: np.ndarray, metric: str) -> float:
    from sklearn.metrics import accuracy_score, f1_score

    if metric == "macro_f1":
        return float(f1_score(truth, predicted, average="macro", zero_division=0))
    return float(accuracy_score(truth, predicted))


class CrossFit:
    """Runs a ``validation="cv"`` run for a :class:`~zoo.train.recipe.Trainer` set up on all
    labelled examples (``splits.train``; ``splits.val`` empty)."""

    def __init__(self, trainer: Trainer, selection: Any, labelled_features: np.ndarray) -> None:
        self.t = trainer
        self.selection = selection
        self.x = labelled_features
        self.y = np.asarray(trainer.splits.train.labels)
        self.folder = trainer.dir / "cv"
        self.weight = "balanced" if trainer.class_weights else None

    # ----------------------------------------------------------------- the head

    def _fit_head(self, index: np.ndarray | None = None) -> None:
        from zoo.probing.linear import fit_probe

        rows = slice(None) if index is None else index
        probe = fit_probe(self.x[rows], self.y[rows], self.selection.C, class_weight=self.weight)
        weight, bias = probe.linear()
        fitted = NormalisedLinear.fitted(weight, bias).to(self.t.device)
        head = self.t.model.head
        (head.head if isinstance(head, LabelAwareHead) else head).load_state_dict(fitted.state_dict())

    def _head_scores(self, index: np.ndarray) -> tuple[float, float]:
        """(loss, metric) of the current head on cached features of ``index``."""
        with torch.no_grad():
            logits = self.t.model.head.eval()(torch.from_numpy(self.x[index]).float().to(self.t.device)).float().cpu()
        labels = torch.from_numpy(self.y[index])
        return float(self.t.val_loss_fn(logits, labels)), _metric(self.y[index], logits.argmax(1).numpy(),
                                                                  self.t.config.metric)

    # ----------------------------------------------------------------- the loop

    def fit(self, resume: bool = False) -> dict[str, Any]:
        t = self.t
        estimate = self.selection.estimate
        head_score = {"acc": estimate["accuracy"], "loss": estimate["log_loss"]}
        loop: dict[str, Any] = {"best": {"epoch": 1, "phase": 0, "score": head_score}, "phase_done": 0,
                                "stopped": None, "bad": 0, "validation": "cv"}
        latest = t.checkpoints.latest() if resume else None
        if not resume:
            t.metrics_path.unlink(missing_ok=True)
        if latest is None or latest[0] < 1:
            self._fit_head()
            train_loss, train_acc = self._head_scores(np.arange(len(self.y)))
            row = {"epoch": 1, "stage": "head (cv)", "phase": 0, "phase_epoch": 0, "train_loss": train_loss,
                   "train_acc": train_acc, "val_loss": None, "val_acc": None, "cv_acc": estimate["accuracy"],
                   "cv_loss": estimate["log_loss"], "seconds": self.selection.seconds, "best": True}
            _append_jsonl(t.metrics_path, row)
            t.save(1, 0, 0, t.optimizer(0), loop)
            t.checkpoints.mark_best(1, {"phase": 0, **head_score})
            t.log(f"head: logistic regression (C={self.selection.C:g}) on all {len(self.y)} labelled examples, "
                  f"cross-validated {t.config.metric} {self._head_metric():.3f}")
        if t.n_phases() == 1:
            t.restore(t.checkpoints.load(1))
            return loop
        plan = self._schedule()
        loop["schedule"] = {k: v for k, v in plan.items() if k != "folds"}
        if not plan["keep"]:
            t.log(f"unfrozen layers not kept: their cross-validated {t.config.metric} "
                  f"{plan['unfrozen_metric']:.3f} does not beat the head's {plan['head_metric']:.3f} on the same folds")
            t.restore(t.checkpoints.load(1))
            return loop
        return self._final(plan, loop, latest)

    def _head_metric(self) -> float:
        key = "accuracy" if self.t.config.metric == "accuracy" else "macro_f1"
        return float(self.selection.estimate[key])

    # ----------------------------------------------------------------- the schedule from folds

    def _points(self) -> list[tuple[int, int]]:
        """The schedule's points after the head: (phase, phase_epoch), in order."""
        return [(phase, epoch) for phase in range(1, self.t.n_phases()) for epoch in range(self.t.config.unfreeze_epochs)]

    def _schedule(self) -> dict[str, Any]:
        from sklearn.model_selection import StratifiedKFold

        t = self.t
        path = self.folder / "schedule.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        self.folder.mkdir(exist_ok=True)
        smallest = int(np.bincount(self.y)[np.bincount(self.y) > 0].min())
        k = max(2, min(SCHEDULE_FOLDS, smallest))
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=t.config.seed)
        folds = []
        for number, (train, held) in enumerate(splitter.split(self.x, self.y)):
            fold_path = self.folder / f"fold-{number}.json"
            if fold_path.is_file():
                folds.append(json.loads(fold_path.read_text(encoding="utf-8")))
                continue
            t.log(f"choosing the unfrozen schedule: fold {number + 1} of {k}")
            folds.append(self._fold(number, train, held))
            atomic_write_json(fold_path, folds[-1])
        losses = np.array([f["loss"] for f in folds], dtype=np.float64)
        metrics = np.array([f["metric"] for f in folds], dtype=np.float64)
        mean_loss, mean_metric = losses.mean(0), metrics.mean(0)
        best = int(np.nanargmin(np.where(np.isfinite(mean_loss), mean_loss, np.nan)))
        points = [(0, -1), *self._points()]
        plan = {"folds": folds, "k": k, "mean_loss": mean_loss.tolist(), "mean_metric": mean_metric.tolist(),
                "points": points, "chosen": best, "phase": points[best][0], "phase_epoch": points[best][1],
                "head_metric": float(mean_metric[0]), "unfrozen_metric": float(mean_metric[best]),
                "keep": bool(best > 0 and mean_metric[best] > mean_metric[0])}
        atomic_write_json(path, plan)
        t.log(f"  schedule: head {plan['head_metric']:.3f}, best unfrozen point phase {plan['phase']} epoch "
              f"{plan['phase_epoch'] + 1} {plan['unfrozen_metric']:.3f} (mean held-out {t.config.metric} over {k} folds)")
        return plan

    def _fold(self, number: int, train: np.ndarray, held: np.ndarray) -> dict[str, Any]:
        t = self.t
        t.restore_pretrained()
        self._fit_head(train)
        fold_train = t.splits.train.subset(train.tolist(), f"fold {number} [train]")
        fold_held = t.splits.train.subset(held.tolist(), f"fold {number} [held out]")
        loss, metric = self._head_scores(held)
        losses, metrics = [loss], [metric]
        truth = np.asarray(fold_held.labels)
        for phase in range(1, t.n_phases()):
            optimizer = t.optimizer(phase)
            for epoch in range(t.config.unfreeze_epochs):
                try:
                    t.train_epoch(phase, epoch, optimizer, data=fold_train, salt=number + 1)
                except Diverged:
                    remaining = len(self._points()) + 1 - len(losses)
                    losses += [float("inf")] * remaining
                    metrics += [0.0] * remaining
                    return {"fold": number, "loss": losses, "metric": metrics, "diverged": True}
                logits = t.logits("fold", fold_held, phase)
                losses.append(float(t.val_loss_fn(logits, torch.from_numpy(truth))))
                metrics.append(_metric(truth, logits.argmax(1).numpy(), t.config.metric))
        return {"fold": number, "loss": losses, "metric": metrics, "diverged": False}

    # ----------------------------------------------------------------- the final training

    def _final(self, plan: dict[str, Any], loop: dict[str, Any], latest: Any) -> dict[str, Any]:
        t = self.t
        points = [tuple(p) for p in plan["points"]][1:plan["chosen"] + 1]
        start, optimizer_state, epoch = 0, None, 1
        if latest is not None and latest[1]["phase"] > 0:
            epoch, checkpoint = latest
            t.restore(checkpoint)
            optimizer_state = checkpoint.get("optimizer")
            start = points.index((checkpoint["phase"], checkpoint["phase_epoch"])) + 1
            _truncate_jsonl(t.metrics_path, epoch)
            t.log(f"resuming after epoch {epoch}")
        else:
            t.restore_pretrained()
            self._fit_head()
        optimizer, current = None, None
        for phase, phase_epoch in points[start:]:
            if phase != current:
                names = [n for n, _ in t.unfrozen(phase)]
                t.log(f"phase {phase}: unfreezing {', '.join(names)} on all labelled examples")
                optimizer, current = t.optimizer(phase), phase
                if optimizer_state is not None:
                    optimizer.load_state_dict(optimizer_state)
                    optimizer_state = None
            started = time.perf_counter()
            try:
                train_loss, train_acc = t.train_epoch(phase, phase_epoch, optimizer)
            except Diverged:
                loop["stopped"] = f"loss became NaN or infinite in phase {phase}, epoch {phase_epoch}"
                t.log(f"stopping: {loop['stopped']}; keeping the head alone")
                loop["best"] = {"epoch": 1, "phase": 0, "score": loop["best"]["score"]}
                t.restore(t.checkpoints.load(1))
                return loop
            epoch += 1
            index = [tuple(p) for p in plan["points"]].index((phase, phase_epoch))
            score = Score(acc=plan["mean_metric"][index], loss=plan["mean_loss"][index])
            last = (phase, phase_epoch) == points[-1]
            if last:
                loop["best"] = {"epoch": epoch, "phase": phase, "score": score.__dict__}
            row = {"epoch": epoch, "stage": f"unfreeze-{phase}", "phase": phase, "phase_epoch": phase_epoch,
                   "train_loss": train_loss, "train_acc": train_acc, "val_loss": None, "val_acc": None,
                   "cv_acc": score.acc, "cv_loss": score.loss, "seconds": time.perf_counter() - started,
                   "best": last}
            _append_jsonl(t.metrics_path, row)
            loop["phase_done"] = phase - 1
            t.save(epoch, phase, phase_epoch, optimizer, loop)
            if last:
                t.checkpoints.mark_best(epoch, {"phase": phase, **score.__dict__})
            t.log(_epoch_line(row))
        loop["phase_done"] = points[-1][0]
        best = loop["best"]
        if best["phase"] == 0:  # resumed after the last point: the checkpoint holds it
            best_epoch = t.checkpoints.latest()[0]
            loop["best"] = {"epoch": best_epoch, "phase": points[-1][0],
                            "score": {"acc": plan["unfrozen_metric"], "loss": plan["mean_loss"][plan["chosen"]]}}
        t.restore(t.checkpoints.load(loop["best"]["epoch"]))
        return loop


def read_schedule(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "cv" / "schedule.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
