"""Few-shot prototypes (zoo fewshot) vs the stage-1 head of zoo finetune on digits, 1/5/10 labels per class.

Same model (efficientnet_lite0), same splits, same embeddings, per seed:

- the split is zoo's own ``per_class=N`` (each class draws N examples with its seeded generator;
  every other image is the test set, 1797 - 10N images);
- finetune: ``zoo.finetune(MODEL, "digits", per_class=N, seed=seed, unfreeze=0)``, the default
  recipe's stage 1 (a linear head on cached embeddings, early stopping on validation loss), which
  trains on N - round(0.2N) and validates on the rest of the N (5: 4 + 1, 10: 8 + 2);
- per_class=1 leaves no validation example, which zoo finetune refuses. It runs "train only":
  ``val=`` a folder holding the very same 10 training images (the same seeded draw: with ``val``
  given, all N train), so early stopping watches the training loss (max 300 epochs, patience 20);
- fewshot: prototypes from all N labelled examples per class (it needs no validation), scored on
  the same test images.

Both sides use the same embeddings: the 1797 digits are embedded once into zoo finetune's feature
cache, and each split's entry is written from them before finetune runs (the bench checks that
every run then reports cache hits), so the comparison costs seconds per seed instead of
re-embedding the test set each time. One end-to-end check builds a classifier with the real
``zoo.embed.fewshot`` from PNG files and compares its predictions with the cached path's.

    python bench/fewshot_digits.py [--shots 1 5 10] [--seeds 0 1 2 3 4] [--no-check]

Measured (5 seeds, mean (worst) test accuracy): 1 label/class fewshot 0.581 (0.536) vs finetune
0.596 (0.566); 5: 0.782 (0.751) vs 0.825 (0.806); 10: 0.823 (0.804) vs 0.895 (0.863). Prototypes
take milliseconds and no validation data; the trained head is 4-7 points better from 5 labels
per class. Centring on the support mean (CL2N) or a square-root transform before it moved the
prototypes by +0.00 to +0.03 and were left out.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = "efficientnet_lite0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--no-check", action="store_true", help="skip the end-to-end zoo fewshot check")
    args = parser.parse_args()

    import torch

    import zoo
    from zoo.atomic import atomic_write_bytes
    from zoo.data import make_splits, open_dataset
    from zoo.embed import FewShot
    from zoo.embed.embedder import embedder_identity
    from zoo.pulling import pull, resolve_card
    from zoo.settings import zoo_home
    from zoo.frozen.features import cached_embeddings, feature_key
    from zoo.frozen import frozen_pass

    card = resolve_card(MODEL)
    fetched = pull(card, quiet=True)
    pool = open_dataset("digits", modality="image")
    started = time.perf_counter()
    backbone = zoo.load(card)
    full, record = cached_embeddings(card, fetched, pool, lambda: frozen_pass(backbone, fetched), batch_size=64)
    full = full.numpy()
    print(f"digits embeddings: {len(pool)} x {full.shape[1]} ({'cache hit' if record['hit'] else 'computed'} "
          f"in {time.perf_counter() - started:.0f}s)")
    row_of = {e.where: i for i, e in enumerate(pool.examples)}
    info = dict(model=card.name, revision=fetched.resolved or fetched.revision,
                embedder=embedder_identity(card, fetched), modality="image", input={})

    def rows(examples) -> list[int]:  # noqa: ANN001
        """Rows of the full matrix: digits[i] is row i; a PNG written by write_pngs is named i.png."""
        return [row_of[e.where] if e.where in row_of else int(Path(e.where).stem) for e in examples]

    def seed_cache(dataset) -> None:  # noqa: ANN001
        """The entry cached_embeddings would write for this dataset, from the full matrix."""
        key = feature_key(card, fetched, dataset.fingerprint())
        buffer = io.BytesIO()
        np.save(buffer, full[rows(dataset.examples)], allow_pickle=False)
        atomic_write_bytes(zoo_home() / "features" / card.name.replace("/", "--") / f"{key}.npy", buffer.getvalue())

    results: dict[int, list[tuple[float, float, float, int]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for shots in args.shots:
            for seed in args.seeds:
                val = None
                if shots == 1:
                    val = write_pngs(work / f"val-{seed}", pool, one_per_class(pool))  # any 10: to get the draw
                    drawn = make_splits("digits", modality="image", per_class=1, seed=seed, val=val)
                    val = write_pngs(work / f"train-{seed}", pool, rows(drawn.train.examples))
                splits = make_splits("digits", modality="image", per_class=shots, seed=seed, val=val)
                for dataset in (splits.train, splits.val, splits.test):
                    seed_cache(dataset)
                support = rows(splits.train.examples) + ([] if val is not None else rows(splits.val.examples))
                labels = [pool.examples[r].label for r in support]
                test_rows, truth = rows(splits.test.examples), np.array([e.label for e in splits.test.examples])

                began = time.perf_counter()
                classifier = FewShot.from_embeddings(full[support], labels, pool.classes, **info)
                guess = classifier.probabilities(full[test_rows]).argmax(axis=1)
                fewshot_s = time.perf_counter() - began
                fewshot_acc = float((guess == truth).mean())

                began = time.perf_counter()
                run = zoo.finetune(MODEL, "digits", per_class=shots, seed=seed, unfreeze=0, val=str(val) if val else None,
                                   out=work / f"run-{shots}-{seed}", progress=False, log=lambda _: None)
                finetune_s = time.perf_counter() - began
                hits = json.loads((run.dir / "features" / "index.json").read_text())
                assert all(r["hit"] for r in hits.values()), f"finetune missed the seeded cache: {hits}"
                epochs = run.best["epoch"] if run.best else -1
                results.setdefault(shots, []).append((fewshot_acc, run.test_accuracy, finetune_s, epochs))
                print(f"N={shots:>2} seed {seed}: fewshot {fewshot_acc:.3f} ({fewshot_s * 1000:.1f} ms) | finetune "
                      f"stage 1 {run.test_accuracy:.3f} ({finetune_s:.1f}s, best epoch {epochs}) | "
                      f"test n={len(test_rows)}")
        if not args.no_check:
            check(work, pool, full, rows, info)

    print("\nlabels/class  fewshot mean (min)   finetune stage-1 mean (min)   finetune s/run")
    for shots, items in results.items():
        few, fine = [i[0] for i in items], [i[1] for i in items]
        print(f"{shots:>12}  {statistics.mean(few):.3f} ({min(few):.3f})        {statistics.mean(fine):.3f} "
              f"({min(fine):.3f})                 {statistics.mean(i[2] for i in items):.1f}")
    print("(per_class=1: finetune trains on the 10 images and validates on the same 10: train-only)")


def one_per_class(pool) -> list[int]:  # noqa: ANN001
    first: dict[int, int] = {}
    for i, example in enumerate(pool.examples):
        first.setdefault(example.label, i)
    return list(first.values())


def write_pngs(folder: Path, pool, indices: list[int]) -> Path:  # noqa: ANN001
    """root/<class>/<digits index>.png: lossless, so the pixels are the arrays' own."""
    from PIL import Image

    for i in indices:
        example = pool.examples[i]
        target = folder / pool.classes[example.label] / f"{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(example.item).save(target)
    return folder


def check(work: Path, pool, full: np.ndarray, rows, info: dict) -> None:  # noqa: ANN001
    """zoo.embed.fewshot end to end (PNG support folder, real predict) agrees with the cached path."""
    from zoo.data import make_splits
    from zoo.embed import FewShot, fewshot

    splits = make_splits("digits", modality="image", per_class=5, seed=0)
    support = rows(splits.train.examples) + rows(splits.val.examples)
    folder = write_pngs(work / "check-support", pool, support)
    started = time.perf_counter()
    real = fewshot(MODEL, folder)
    built = time.perf_counter() - started
    test = splits.test.examples[::17][:100]
    predicted = [p.label for p in real.predict([e.item for e in test])]
    cached = FewShot.from_embeddings(full[support], [pool.examples[r].label for r in support], pool.classes, **info)
    expected = [pool.classes[i] for i in cached.probabilities(full[rows(test)]).argmax(axis=1)]
    agree = np.mean([a == b for a, b in zip(predicted, expected)])
    accuracy = np.mean([p == pool.classes[e.label] for p, e in zip(predicted, test)])
    print(f"\nend to end: zoo.embed.fewshot on 50 PNGs built in {built:.1f}s; on {len(test)} test images it agrees "
          f"with the cached path on {agree:.3f} of predictions (accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()
