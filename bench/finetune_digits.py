"""Transfer vs scratch vs fastai on `digits` with 10 labels per class (efficientnet_lite0).

For each seed, on the same split (zoo's `per_class=10`: 8 train + 2 validation per class, the
other 1697 images are the test set), side by side:

- zoo: `zoo.finetune("efficientnet_lite0", "digits", per_class=10)`, the default recipe;
- scratch: the same architecture (tf_efficientnet_lite0) from random weights, every layer
  training (AdamW 1e-3, zoo's augmentation, best epoch by validation loss), for at least the
  wall time the zoo run took from a cold cache (the same budget) and at least 10 epochs;
- fastai: `vision_learner` on the same backbone and weights with fastai's defaults
  (`fine_tune(epochs)`: one frozen epoch, then `epochs` unfrozen, base_lr 2e-3, its default
  augmentation and head), for the common `fine_tune(1)` and a longer `fine_tune(10)`.
  Needs `pip install fastai` (the `bench` extra); skipped with a note when it is missing.

    python bench/finetune_digits.py [--seeds 0 1 2] [--no-fastai] [--no-scratch]

Targets (issue 4): zoo >= 0.80 test accuracy, >= 1.8x scratch, and above fastai.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import zoo
from zoo.data import make_splits
from zoo.loading import adapter_of
from zoo.batches import make_loader
from zoo.frozen import frozen_pass

MODEL = "efficientnet_lite0"


def run_zoo(seed: int, out: Path) -> tuple[float, float]:
    started = time.perf_counter()
    run = zoo.finetune(MODEL, "digits", per_class=10, seed=seed, out=out / f"zoo-{seed}", progress=False,
                       log=lambda _: None)
    return run.test_accuracy, time.perf_counter() - started


def run_scratch(seed: int, budget_s: float) -> tuple[float, float, int]:
    """Every layer of the randomly initialised architecture learns, for the same wall time."""
    torch.manual_seed(seed)
    splits = make_splits("digits", modality="image", per_class=10, seed=seed)
    backbone = zoo.load(MODEL, pretrained=False)
    head = torch.nn.Linear(backbone.feature_dim, 10)
    model = torch.nn.Sequential(backbone, head)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    items = [e.item for e in splits.train.examples]
    labels = [e.label for e in splits.train.examples]
    val_items = [e.item for e in splits.val.examples]
    val_labels = torch.tensor([e.label for e in splits.val.examples])
    best, best_state, epochs, started = float("inf"), None, 0, time.perf_counter()
    while epochs < 10 or time.perf_counter() - started < budget_s:
        model.train()
        for x, y in make_loader(backbone, items, labels, batch_size=32, seed=seed * 1000 + epochs, shuffle=True,
                                augmenting=True, workers=0):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epochs += 1
        model.eval()
        with torch.no_grad():
            val_loss = float(torch.nn.functional.cross_entropy(
                head(frozen_pass(backbone, engine="torch", workers=0).embed(val_items)), val_labels))
        if val_loss < best:
            best, best_state = val_loss, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    test_items = [e.item for e in splits.test.examples]
    test_labels = torch.tensor([e.label for e in splits.test.examples])
    with torch.no_grad():
        logits = head(frozen_pass(backbone, engine="torch", workers=0).embed(test_items))
    return float((logits.argmax(1) == test_labels).float().mean()), time.perf_counter() - started, epochs


def run_fastai(seed: int, epochs: int, out: Path) -> tuple[float, float]:
    """fastai's vision_learner + fine_tune defaults on the same backbone weights and split."""
    from fastai.vision.all import ImageDataLoaders, Normalize, Resize, aug_transforms, vision_learner
    from PIL import Image

    splits = make_splits("digits", modality="image", per_class=10, seed=seed)
    folder = out / f"fastai-{seed}-{epochs}"
    test_files, test_labels = [], []
    for name, dataset in (("train", splits.train), ("valid", splits.val), ("test", splits.test)):
        for i, example in enumerate(dataset.examples):
            path = folder / name / dataset.classes[example.label] / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(example.item)).save(path)
            if name == "test":
                test_files.append(path)
                test_labels.append(dataset.classes[example.label])
    card = zoo.get_card(MODEL)
    dls = ImageDataLoaders.from_folder(
        folder, train="train", valid="valid", bs=64, num_workers=0, seed=seed,
        item_tfms=Resize(card.input.resize),
        batch_tfms=[*aug_transforms(size=card.input.size[0]), Normalize.from_stats(card.input.mean, card.input.std)])
    started = time.perf_counter()
    learn = vision_learner(dls, "tf_efficientnet_lite0", pretrained=False)
    body = learn.model[0].model
    missing = body.load_state_dict({k: v for k, v in _pretrained_state().items()
                                    if not k.startswith("classifier")}, strict=False)
    assert not [k for k in missing.missing_keys if not k.startswith("classifier")], missing
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(epochs)
        predictions, _ = learn.get_preds(dl=dls.test_dl(test_files))
    truth = torch.tensor([dls.vocab.o2i[label] for label in test_labels])
    return float((predictions.argmax(1) == truth).float().mean()), time.perf_counter() - started


def _pretrained_state() -> dict:
    """The weights zoo uses (the package's file mapped onto timm), as timm's own state dict."""
    card = zoo.get_card(MODEL)
    network = adapter_of(card).build(card, zoo.pull(MODEL))
    return network.state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-fastai", action="store_true")
    parser.add_argument("--no-scratch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        os.environ["ZOO_HOME"] = str(out / "zoo-home")  # a cold cache: zoo's time includes embedding
        for seed in args.seeds:
            accuracy, seconds = run_zoo(seed, out)
            results.setdefault("zoo (default recipe)", []).append(accuracy)
            print(f"seed {seed}: zoo {accuracy:.3f} in {seconds:.0f}s", flush=True)
            if not args.no_scratch:
                accuracy_s, seconds_s, epochs = run_scratch(seed, seconds)
                results.setdefault("scratch (same arch, same time)", []).append(accuracy_s)
                print(f"seed {seed}: scratch {accuracy_s:.3f} in {seconds_s:.0f}s ({epochs} epochs)", flush=True)
            if not args.no_fastai:
                try:
                    for epochs in (1, 10):
                        accuracy_f, seconds_f = run_fastai(seed, epochs, out)
                        results.setdefault(f"fastai fine_tune({epochs})", []).append(accuracy_f)
                        print(f"seed {seed}: fastai fine_tune({epochs}) {accuracy_f:.3f} in {seconds_f:.0f}s",
                              flush=True)
                except ImportError:
                    print("fastai is not installed (pip install fastai): skipped")
                    args.no_fastai = True
    print(f"\n{'method':<34}{'mean acc':>10}{'min acc':>10}")
    for method, values in results.items():
        print(f"{method:<34}{statistics.mean(values):>10.3f}{min(values):>10.3f}")
    zoo_mean = statistics.mean(results["zoo (default recipe)"])
    for method, values in results.items():
        if method.startswith("zoo"):
            continue
        print(f"zoo / {method}: {zoo_mean / max(statistics.mean(values), 1e-9):.2f}x")


if __name__ == "__main__":
    main()
