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
- After each round the encoder lands in ``checkpoints/contrastive.pt`` (with the optimizer and
  the round's record), so a killed run resumes after its last complete round and ends where a
  straight run would: the pairs, their order and the dropout of each round are functions of the
  seed and the round. The chosen encoder, once every round is done, is ``checkpoints/encoder.pt``
  (and the rounds' state is removed) until final.pt, which holds it with the head, replaces it.
- With a validation set, each round (and round 0, the pulled encoder) is judged by the head's
  validation loss on its embeddings (a logistic regression fitted on the training texts); the
  best round's encoder is restored, so contrastive training can never leave the run worse on
  validation than the pulled encoder. Cross-validated runs have no held-out texts the encoder has
  not seen: they train every round, as measured in bench/text_fewshot.py, and their folds'
  estimate of the head is then optimistic (the report says so).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch

from zoo.atomic import atomic_torch_save, atomic_write_json
from zoo.batches import derive_seed, encode_items

__all__ = ["CONTRASTIVE_PER_CLASS", "draw_pairs", "pair_count", "Contrastive", "PAIRS_PER_EXAMPLE", "PAIR_LIMIT", "ROUNDS", "PAIR_BATCH"]

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


class Contrastive:
    """Trains a :class:`~zoo.train.recipe.Trainer`'s encoder on pairs of its training set, then
    hands it the adapted encoder (:meth:`Trainer.adopt_encoder`)."""

    def __init__(self, trainer: Any) -> None:
        self.t = trainer
        config = trainer.config
        self.texts = [e.item for e in trainer.splits.train.examples]
        self.labels = np.asarray(trainer.splits.train.labels)
        self.pairs = draw_pairs(self.labels, pair_count(config.pairs, len(self.texts)), config.seed)
        self.path = trainer.dir / "checkpoints" / "contrastive.pt"
        self.best_path = trainer.dir / "checkpoints" / "contrastive-best.pt"
        self.encoder_path = trainer.dir / "checkpoints" / "encoder.pt"  # the outcome, once every round is done
        self.judged = len(trainer.splits.val) > 0

    # ----------------------------------------------------------------- state

    def _body(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.t.backbone.body.named_parameters()}

    def _optimizer(self) -> torch.optim.Optimizer:
        body = self.t.backbone.body
        for p in body.parameters():
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(list(body.parameters()), lr=self.t.config.contrastive_lr,
                                      weight_decay=self.t.config.weight_decay)
        for group in optimizer.param_groups:
            group["base_lr"] = group["lr"]
        return optimizer

    # ----------------------------------------------------------------- judging

    def _judge(self) -> dict[str, float]:
        """The validation loss and accuracy of a logistic regression on this encoder's embeddings."""
        from zoo.probing.linear import cross_validate, fit_probe

        t = self.t
        x = t.encode(t.splits.train).numpy()
        x_val = t.encode(t.splits.val).numpy()
        y_val = np.asarray(t.splits.val.labels)
        score = cross_validate(x, self.labels, seed=t.config.seed, where=t.splits.train.name)
        probabilities = fit_probe(x, self.labels, score.C).predict_proba(x_val)
        full = np.full((len(x_val), len(t.classes)), 1e-12)
        full[:, np.unique(self.labels)] = probabilities
        from sklearn.metrics import log_loss

        return {"val_loss": float(log_loss(y_val, full, labels=np.arange(len(t.classes)))),
                "val_acc": float((full.argmax(1) == y_val).mean())}

    # ----------------------------------------------------------------- the rounds

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train (or continue) every round; returns the record for the report (contrastive.json)."""
        from zoo.train.recipe import Diverged

        t = self.t
        optimizer = self._optimizer()
        record: dict[str, Any] = {"pairs": len(self.pairs), "positive": int(self.pairs[:, 2].sum()),
                                  "rounds": [], "lr": t.config.contrastive_lr, "judged": self.judged}
        start = 0
        final = t.dir / "checkpoints" / "final.pt"
        if resume and (self.encoder_path.is_file() or final.is_file()):
            source = self.encoder_path if self.encoder_path.is_file() else final
            state = torch.load(source, map_location="cpu", weights_only=True)
            t.backbone.body.load_state_dict(state if source == self.encoder_path else state["body"], strict=False)
            t.backbone.freeze()
            t.adopt_encoder()
            t.log(f"contrastive training was complete: the adapted encoder from checkpoints/{source.name}")
            return json.loads((t.dir / "contrastive.json").read_text(encoding="utf-8"))
        if resume and self.path.is_file():
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            t.backbone.body.load_state_dict(saved["body"], strict=False)
            optimizer.load_state_dict(saved["optimizer"])
            record = saved["record"]
            start = len(record["rounds"])
            t.log(f"resuming contrastive training after round {start} of {ROUNDS}")
        if start == 0:
            t.log(f"contrastive: {len(self.pairs)} pairs ({record['positive']} of the same class) from "
                  f"{len(self.texts)} texts, {ROUNDS} rounds")
            if self.judged:
                record["start"] = self._judge()
                record["best"] = 0
                atomic_torch_save(self.best_path, {"body": self._body()})
        chunks = np.array_split(np.arange(len(self.pairs)), ROUNDS)
        # the optimizer steps of each round, counted as _round takes them (a round may have none
        # when there are fewer pairs than rounds), so a resumed round continues the same schedule
        per_round = [-(-len(c) // PAIR_BATCH) for c in chunks]
        steps = max(1, sum(per_round))
        done = sum(per_round[:start])
        for number in range(start, ROUNDS):
            started = time.perf_counter()
            try:
                loss, done = self._round(optimizer, chunks[number], number, done, steps)
            except Diverged:
                record["stopped"] = f"the pair loss became NaN or infinite in round {number + 1}"
                t.log(f"  contrastive: {record['stopped']}; going on with the pulled encoder")
                t.restore_pretrained()
                record["best"] = 0
                break
            row: dict[str, Any] = {"round": number + 1, "pair_loss": loss, "seconds": time.perf_counter() - started}
            if self.judged:
                row.update(self._judge())
                best = record["rounds"][record["best"] - 1] if record["best"] else record["start"]
                if row["val_loss"] < best["val_loss"] - 1e-6:
                    record["best"] = number + 1
                    atomic_torch_save(self.best_path, {"body": self._body()})
            record["rounds"].append(row)
            atomic_torch_save(self.path, {"body": self._body(), "optimizer": optimizer.state_dict(), "record": record})
            judged = f" | val loss {row['val_loss']:.3f} acc {row['val_acc']:.3f}" if self.judged else ""
            t.log(f"  contrastive round {number + 1}/{ROUNDS}: pair loss {loss:.4f}{judged} | {row['seconds']:.1f}s")
        if self.judged and record["best"] != ROUNDS and "stopped" not in record:
            saved = torch.load(self.best_path, map_location="cpu", weights_only=True)
            t.backbone.body.load_state_dict(saved["body"], strict=False)
            t.log(f"  contrastive: keeping round {record['best']} (lowest validation loss)"
                  if record["best"] else "  contrastive: no round beat the pulled encoder on validation; keeping it")
        t.backbone.freeze()
        atomic_write_json(t.dir / "contrastive.json", record)
        atomic_torch_save(self.encoder_path, self._body())
        # the rounds' state (with the optimizer's, twice the encoder's size) is no longer needed
        self.path.unlink(missing_ok=True)
        self.best_path.unlink(missing_ok=True)
        t.adopt_encoder()
        return record

    def _round(self, optimizer: torch.optim.Optimizer, rows: np.ndarray, number: int, done: int,
               steps: int) -> tuple[float, int]:
        """One round of pairs; returns its mean pair loss and the steps done so far."""
        from zoo.train.recipe import Diverged, schedule
        from zoo.threads import torch_threads

        t = self.t
        body = t.backbone
        body.train()
        torch.manual_seed(derive_seed(t.config.seed, 0x5E7F17, number))
        total, seen = 0.0, 0
        with torch_threads(t.budget.threads):
            for begin in range(0, len(rows), PAIR_BATCH):
                batch = self.pairs[rows[begin:begin + PAIR_BATCH]]
                schedule(optimizer, done / steps, t.config.warmup)
                first = encode_items(body, [self.texts[i] for i in batch[:, 0]])
                second = encode_items(body, [self.texts[j] for j in batch[:, 1]])
                u = body(**{k: v.to(t.device) for k, v in first.items()})
                v = body(**{k: v.to(t.device) for k, v in second.items()})
                target = torch.as_tensor(batch[:, 2], dtype=torch.float32, device=t.device)
                loss = torch.nn.functional.mse_loss(torch.cosine_similarity(u.float(), v.float()), target)
                if not torch.isfinite(loss):
                    raise Diverged()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                seen += len(batch)
                done += 1
        body.eval()
        return total / max(1, seen), done
