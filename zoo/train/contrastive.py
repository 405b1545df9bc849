"""Contrastive fine-tuning of a text encoder on pairs from the labelled set (``--recipe contrastive``).

The idea of SetFit (Tunstall et al., 2022): with a handful of labels, the encoder learns more from
pairs than from the examples one by one. Each labelled text is paired with another text of its
class (target cosine 1) and with a text of another class (target 0); the encoder, every layer,
is trained to put their embeddings' cosine at the target (mean squared error), and then the head
is fitted on the adapted embeddings exactly as in the other recipes.

- Pairs are drawn by :func:`draw_pairs` from the run's seed alone, a bounded number of them
  (``--pairs``; ``auto``: :data:`PAIRS_PER_EXAMPLE` per labelled text, at most :data:`PAIR_LIMIT`),
  and trained on once, in that order, in :data:`ROUNDS` rounds with one learning-rate schedule
  (warmup, then cosine) over all of them.
- The rounds are steps of the one epoch loop (:mod:`zoo.train.loop`): after each, the encoder
  lands in ``checkpoints/contrastive/`` (with the optimizer's state), so a killed run resumes
  after its last complete round and ends where a straight run would: the pairs, their order and
  the dropout of each round are functions of the seed and the round. Only the best and the newest
  rounds' encoders are kept. The chosen encoder, once every round is done, is
  ``checkpoints/encoder.pt`` (and the rounds' folder is removed) until final.pt, which holds it
  with the head, replaces it.
- With a validation set, each round (and round 0, the pulled encoder) is judged by the head's
  validation loss on its embeddings (a logistic regression fitted on the training texts); the
  best round's encoder is restored, so contrastive training can never leave the run worse on
  validation than the pulled encoder. Cross-validated runs have no held-out texts the encoder has
  not seen: they train every round, as measured in bench/text_fewshot.py, and their folds'
  estimate of the head is then optimistic (the report says so).
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import numpy as np
import torch

from zoo.atomic import atomic_torch_save, atomic_write_json
from zoo.batches import derive_seed, encode_items
from zoo.tasks.contract import Score
from zoo.train.loop import Diverged, EpochLoop, Step

__all__ = ["CONTRASTIVE_PER_CLASS", "draw_pairs", "pair_count", "adapt_encoder", "Rounds", "PAIRS_PER_EXAMPLE",
           "PAIR_LIMIT", "ROUNDS", "PAIR_BATCH"]

#: Pairs per labelled text with ``--pairs auto`` (half with its class, half against another):
#: SetFit's default of 20 iterations, each giving every text one positive and one negative pair.
PAIRS_PER_EXAMPLE = 40
#: ... and at most this many in all, which bounds the recipe's time: on 2 CPU cores MiniLM-L6
#: trained 640 pairs of 64-word texts in 57 s; a whole default run on BBC News at 20 per class
#: (1,280 pairs, from an empty cache, 500 test texts) took 2 min 14 s.
PAIR_LIMIT = 1280
#: Checkpoints (and, with a validation set, judgements) per run of the pairs.
ROUNDS = 4
#: ``--recipe auto`` trains contrastively when a cross-validated text run has between these many
#: labelled texts per class (on average), where it beat the other recipes in bench/text_fewshot.py
#: (BBC News, MiniLM-L6, 5 seeds, mean / worst test accuracy): 0.900 / 0.856 at 5 per class (the
#: head with the label prior 0.850 / 0.768, a tuned logistic regression 0.805 / 0.762), 0.929 /
#: 0.904 at 10 (0.894 / 0.866), 0.948 / 0.938 at 20 (0.932 / 0.912). At 2 per class it fell below
#: zero-shot (0.737 against 0.792; 5 positive pairs in all are too few), so there the head with
#: the label prior (0.808) stays. Above 25 per class the run has a validation split and the head's
#: recipe.
CONTRASTIVE_PER_CLASS = (5, 25)
#: Pairs per optimizer step (SetFit's batch size).
PAIR_BATCH = 16


def pair_count(requested: int | str, labelled: int) -> int:
    """The number of pairs a run trains on (``--pairs``: a number or ``auto``)."""
    if requested == "auto":
        return min(PAIR_LIMIT, PAIRS_PER_EXAMPLE * labelled)
    return int(requested)


def draw_pairs(labels: Any, count: int, seed: int) -> np.ndarray:
    """``count`` rows of (first, second, same class 1/0), seeded: every labelled text in a shuffled
    order takes a partner of its class (where its class has another text) and one of another class,
    and the passes repeat until ``count`` pairs are drawn."""
    y = np.asarray(labels)
    rng = np.random.default_rng(derive_seed(seed, 0x5E7F17))
    members = {c: np.flatnonzero(y == c) for c in np.unique(y)}
    rows: list[tuple[int, int, int]] = []
    while len(rows) < count:
        for i in rng.permutation(len(y)).tolist():
            same = members[y[i]][members[y[i]] != i]
            if len(same):
                rows.append((i, int(rng.choice(same)), 1))
            rows.append((i, int(rng.choice(np.flatnonzero(y != y[i]))), 0))
            if len(rows) >= count:
                break
    return np.asarray(rows[:count], dtype=np.int64)


class Rounds:
    """The loop's strategy for contrastive training (see the module): round 0 is the pulled encoder
    (judged, not trained, when there is a validation set), rounds 1.. train on their share of the
    pairs; a judged run keeps the round with the lowest validation loss, an unjudged one the last."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        options = learner.options
        self.texts = [e.item for e in learner.sets["train"].examples]
        self.labels = np.asarray(learner.targets["train"].values)
        self.pairs = draw_pairs(self.labels, pair_count(options.unfreezing.pairs, len(self.texts)), options.seed)
        self.judged = learner.sets.get("val") is not None and len(learner.sets["val"]) > 0
        self.chunks = np.array_split(np.arange(len(self.pairs)), ROUNDS)
        # the optimizer steps of each round, counted as _round takes them (a round may have none when
        # there are fewer pairs than rounds), so a resumed round continues the same schedule
        self.per_round = [-(-len(c) // PAIR_BATCH) for c in self.chunks]
        self.optimizer: Any = None

    def steps(self) -> list[Step]:
        first = [Step(0, 0, "contrastive (pulled)")] if self.judged else []
        return first + [Step(0, number, "contrastive") for number in range(1, ROUNDS + 1)]

    def patience(self, phase: int) -> None:
        return None

    def begin(self, phase: int, optimizer_state: Any, loop: EpochLoop) -> None:
        body = self.learner.backbone.body
        for p in body.parameters():
            p.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(list(body.parameters()), lr=self.learner.options.unfreezing.contrastive_lr,
                                           weight_decay=self.learner.options.head.weight_decay)
        for group in self.optimizer.param_groups:
            group["base_lr"] = group["lr"]
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)

    def train(self, step: Step) -> dict[str, Any]:
        if step.phase_epoch == 0:
            return {}
        number = step.phase_epoch - 1
        return {"round": step.phase_epoch, "pair_loss": self._round(number)}

    def _round(self, number: int) -> float:
        """One round of pairs; returns its mean pair loss."""
        from zoo.threads import torch_threads
        from zoo.train.stepping import schedule

        learner = self.learner
        body = learner.backbone
        body.train()
        torch.manual_seed(derive_seed(learner.options.seed, 0x5E7F17, number))
        steps, done = max(1, sum(self.per_round)), sum(self.per_round[:number])
        rows = self.chunks[number]
        total, seen = 0.0, 0
        with torch_threads(learner.budget.threads):
            for begin in range(0, len(rows), PAIR_BATCH):
                batch = self.pairs[rows[begin:begin + PAIR_BATCH]]
                schedule(self.optimizer, done / steps, learner.options.unfreezing.warmup)
                first = encode_items(body, [self.texts[i] for i in batch[:, 0]])
                second = encode_items(body, [self.texts[j] for j in batch[:, 1]])
                u = body(**{k: v.to(learner.device) for k, v in first.items()})
                v = body(**{k: v.to(learner.device) for k, v in second.items()})
                target = torch.as_tensor(batch[:, 2], dtype=torch.float32, device=learner.device)
                loss = torch.nn.functional.mse_loss(torch.cosine_similarity(u.float(), v.float()), target)
                if not torch.isfinite(loss):
                    raise Diverged()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(batch)
                seen += len(batch)
                done += 1
        body.eval()
        return total / max(1, seen)

    def judge(self, step: Step) -> Score | None:
        """The validation loss and accuracy of a logistic regression on this encoder's embeddings."""
        if not self.judged:
            return None
        from sklearn.metrics import log_loss

        from zoo.fitting.linear import cross_validate, fit_probe

        learner = self.learner
        x = learner.encode(learner.sets["train"]).numpy()
        x_val = learner.encode(learner.sets["val"]).numpy()
        y_val = np.asarray(learner.targets["val"].values)
        classes = len(learner.targets["train"].names)
        score = cross_validate(x, self.labels, seed=learner.options.seed, where=learner.sets["train"].name)
        probabilities = fit_probe(x, self.labels, score.C).predict_proba(x_val)
        full = np.full((len(x_val), classes), 1e-12)
        full[:, np.unique(self.labels)] = probabilities
        return Score(loss=float(log_loss(y_val, full, labels=np.arange(classes))),
                     metric=float((full.argmax(1) == y_val).mean()))

    def is_best(self, step: Step, score: Score | None, best: dict[str, Any] | None) -> bool:
        if score is None:
            return True  # unjudged: every round is kept, the last is the result
        return score.beats(Score(**best["score"]) if best and best.get("score") else None)

    def state(self) -> dict[str, Any]:
        return {"body": {k: v.detach().cpu().clone() for k, v in self.learner.backbone.body.named_parameters()}}

    def optimizer_state(self) -> Any:
        return self.optimizer.state_dict() if self.optimizer is not None else None

    def restore(self, state: dict[str, Any]) -> None:
        self.learner.backbone.body.load_state_dict(state["body"], strict=False)

    def row(self, step: Step, trained: dict[str, Any], score: Score | None) -> dict[str, Any]:
        row = dict(trained)
        if score is not None:
            row.update(val_loss=score.loss, val_acc=score.metric)
        return row


def adapt_encoder(learner: Any, *, resume: bool) -> dict[str, Any]:
    """Train the learner's encoder on pairs of its training texts (or find it trained), then hand
    it to the learner as the encoder its head starts from (:meth:`Learner.adopt_encoder`); returns
    the record for the report (``contrastive.json``)."""
    from zoo.train.checkpoints import Checkpoints

    folder = learner.run_dir
    encoder_path = folder / "checkpoints" / "encoder.pt"  # the outcome, once every round is done
    final = folder / "checkpoints" / "final.pt"
    if resume and (encoder_path.is_file() or final.is_file()):
        source = encoder_path if encoder_path.is_file() else final
        state = torch.load(source, map_location="cpu", weights_only=True)
        learner.backbone.body.load_state_dict(state if source == encoder_path else state["body"], strict=False)
        learner.backbone.freeze()
        learner.adopt_encoder()
        learner.log(f"contrastive training was complete: the adapted encoder from checkpoints/{source.name}")
        return json.loads((folder / "contrastive.json").read_text(encoding="utf-8"))
    rounds = Rounds(learner)
    record: dict[str, Any] = {"pairs": len(rounds.pairs), "positive": int(rounds.pairs[:, 2].sum()), "rounds": [],
                              "lr": learner.options.unfreezing.contrastive_lr, "judged": rounds.judged}
    checkpoints = Checkpoints(folder / "checkpoints" / "contrastive")
    if not (resume and checkpoints.epochs()):
        learner.log(f"contrastive: {len(rounds.pairs)} pairs ({record['positive']} of the same class) from "
                    f"{len(rounds.texts)} texts, {ROUNDS} rounds")
    loop = EpochLoop(checkpoints=_Pruned(checkpoints), log_path=folder / "contrastive.jsonl",
                     say=lambda text: None)
    state = loop.run(rounds, resume=resume)
    rows = [json.loads(line) for line in (folder / "contrastive.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    judged_rows = [r for r in rows if "round" in r]
    for row in judged_rows:
        shown = f" | val loss {row['val_loss']:.3f} acc {row['val_acc']:.3f}" if "val_loss" in row else ""
        learner.log(f"  contrastive round {row['round']}/{ROUNDS}: pair loss {row['pair_loss']:.4f}{shown} | "
                    f"{row['seconds']:.1f}s")
    record["rounds"] = [{k: r[k] for k in ("round", "pair_loss", "seconds", "val_loss", "val_acc") if k in r}
                        for r in judged_rows]
    if rounds.judged:
        start = next(r for r in rows if r["stage"] == "contrastive (pulled)")
        record["start"] = {"val_loss": start["val_loss"], "val_acc": start["val_acc"]}
        best_row = next(r for r in rows if r["epoch"] == state.best["epoch"])
        record["best"] = int(best_row.get("round", 0))
        learner.log(f"  contrastive: keeping round {record['best']} (lowest validation loss)" if record["best"] else
                    "  contrastive: no round beat the pulled encoder on validation; keeping it")
    if state.stopped:
        record["stopped"] = state.stopped
        learner.log(f"  contrastive: {state.stopped}; going on with the best encoder so far")
    learner.backbone.freeze()
    atomic_write_json(folder / "contrastive.json", record)
    atomic_torch_save(encoder_path, rounds.state()["body"])
    # the rounds' state (with the optimizer's, twice the encoder's size) is no longer needed
    shutil.rmtree(checkpoints.folder, ignore_errors=True)
    (folder / "contrastive.jsonl").unlink(missing_ok=True)
    learner.adopt_encoder()
    return record


class _Pruned:
    """Checkpoints that keep only the best and the newest rounds' encoders (each one is the whole
    encoder: a run keeps two, not one per round)."""

    def __init__(self, checkpoints: Any) -> None:
        self.inner = checkpoints
        self.best_epoch: int | None = None

    def save(self, epoch: int, state: dict[str, Any]) -> Any:
        path = self.inner.save(epoch, state)
        best = self.inner.best()
        self.inner.prune({epoch, *((best["epoch"],) if best else ())})
        return path

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
