"""Segmentation on --data pasted-photos: zoo's default against the same network trained by a plain
loop for the same wall time, on the test set (new stamps on backgrounds never trained on).

- zoo: ``zoo finetune efficientnet_lite0 --data pasted-photos --task segment --seed S`` as a user
  runs it (a subprocess; its wall time is the budget, report and baseline included).
- plain loop: the very network zoo builds (efficientnet_lite0's maps at strides 4-32 -> FPN ->
  decoder, pictures squashed to 224 like zoo's), trained as torchvision's segmentation reference
  (references/segmentation/train.py) trains: every layer learning from the start, SGD lr 0.01
  momentum 0.9 weight decay 1e-4, polynomial decay (power 0.9, here over the time budget),
  cross-entropy ignoring 255, random flips and crops (zoo's ``light`` policy, the same as zoo's
  run), batches of 4, on all 240 training pictures until the budget is spent; then scored like
  zoo's run (mIoU over the test pictures' own pixels).
- ``--heads``: the choice of the segmentation head (zoo_dense.segnet): each head trained on the
  frozen backbone's maps (phase 0 only, ``--head-epochs`` epochs, seed 0), its validation and test
  mIoU and its time.

    python bench/segment_pasted.py --seeds 0 1 2     # prints a table, writes bench/segment_pasted.json
    python bench/segment_pasted.py --heads           # fpn against deeplab

Runs interleave (zoo, loop, zoo, loop...) so that the shared machine's load drifts over both alike.

Measured (2 quiet CPU cores, Intel Xeon, seeds 0-2): zoo test mIoU 0.546 / 0.549 / 0.547 (pixel
accuracy 0.954) in 80-89 s; the plain loop in the same time 0.440 / 0.427 / 0.440 (5-6 epochs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

MODEL = "efficientnet_lite0"


def run_zoo(seed: int, out: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run(["zoo", "finetune", MODEL, "--data", "pasted-photos", "--task", "segment", "--seed",
                           str(seed), "--out", str(out), "--quiet", "--json"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(done.stderr)
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"seconds": seconds, "miou": metrics["test"]["miou"], "pixel_accuracy": metrics["test"]["pixel_accuracy"],
            "val_miou": metrics["val"]["miou"], "epochs": len(history), "best_phase": metrics["best_phase"],
            "baseline_miou": (metrics.get("baseline") or {}).get("test", {}).get("miou")}


def _data() -> tuple:
    from dataclasses import replace

    import zoo
    from zoo.runs.options import FinetuneOptions
    from zoo.tasks import get_task
    from zoo_dense.demo import ensure_pasted
    from zoo_dense.formats import read_coco

    task = get_task("segmentation")
    card = zoo.get_card(MODEL)
    card = replace(card, input=task.input_spec(card))
    folder = ensure_pasted()
    options = FinetuneOptions.from_flat(MODEL, "pasted-photos", task="segment")
    train, test = read_coco(folder / "train.json"), read_coco(folder / "test.json")
    targets = task.targets(train, options)
    return task, card, options, train, test, targets, task.targets(test, options, targets)


def plain_loop(seed: int, budget: float) -> dict:
    """torchvision's segmentation reference's loop on zoo's network, for ``budget`` seconds."""
    import torch

    import zoo
    from zoo.tasks.contract import TaskContext
    from zoo_dense.samples import MaskSampler
    from zoo_dense.segmentation import Segmentation

    started = time.perf_counter()
    torch.manual_seed(seed)
    task, card, options, train, test, targets, test_targets = _data()
    options = type(options).from_flat(MODEL, "pasted-photos", task="segment", class_weight="none")
    backbone = zoo.load(card, features=task.feature_maps(card))
    network = task.network(backbone, targets, TaskContext(options=options, card=card))
    sampler = MaskSampler(card.input, len(targets.names))
    for p in backbone.parameters():
        p.requires_grad_(True)
    params = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    epochs = 0
    while time.perf_counter() - started < budget:
        network.train()
        order = torch.randperm(len(train), generator=generator).tolist()
        for start in range(0, len(order) - 3, 4):
            spent = (time.perf_counter() - started) / budget
            if spent >= 1:
                break
            for group in optimizer.param_groups:  # the reference's PolynomialLR, over the time budget
                group["lr"] = 0.01 * (1 - spent) ** 0.9
            batch = [sampler(train.examples[i].item, targets.values[i],
                             int(torch.randint(1 << 30, (1,), generator=generator)), "light")
                     for i in order[start:start + 4]]
            images, masks = MaskSampler.collate(batch)
            loss = sum(network(images, masks).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epochs += 1
    network.eval()
    answers = []
    with torch.no_grad():
        for start in range(0, len(test), 16):
            pictures = torch.stack([sampler(e.item, None, -1, "none")[0] for e in test.examples[start:start + 16]])
            answers += [{k: v.numpy() for k, v in a.items()} for a in network(pictures)]
    scores = Segmentation().evaluate(answers, test_targets, {})
    return {"seconds": time.perf_counter() - started, "epochs": epochs, "miou": scores["miou"],
            "pixel_accuracy": scores["pixel_accuracy"]}


def heads(epochs: int, work: Path, class_weight: str = "none") -> list[dict]:
    """Each head of zoo_dense.segnet on the frozen maps (see the module), through zoo.finetune."""
    import zoo
    from zoo_dense import segnet

    rows = []
    default = dict(segnet.SETTINGS)
    try:
        for head in ("fpn", "deeplab"):
            segnet.SETTINGS.update(segmenter=head)  # build_segmenter's default, read when a network is built
            started = time.perf_counter()
            run = zoo.finetune(MODEL, "pasted-photos", task="segment", unfreeze=0, unfreeze_epochs=epochs, seed=0,
                               class_weight=class_weight, out=work / f"head-{head}-{class_weight}", progress=False,
                               log=lambda _: None)
            metrics = zoo.open_run(run.dir).metrics
            rows.append({"head": head, "class_weight": class_weight, "val_miou": metrics["val"]["miou"], "test_miou": metrics["test"]["miou"],
                         "seconds": time.perf_counter() - started})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        segnet.SETTINGS.update(default)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heads", action="store_true", help="compare the segmentation heads instead")
    parser.add_argument("--head-epochs", type=int, default=6)
    parser.add_argument("--class-weight", default="none", help="--heads: the runs' --class-weight")
    parser.add_argument("--work", type=Path, default=Path("bench-segment"))
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("segment_pasted.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    if args.heads:
        rows = heads(args.head_epochs, args.work, args.class_weight)
        args.json.with_name("segment_heads.json").write_text(json.dumps(rows, indent=2) + "\n")
        return
    rows = []
    for seed in args.seeds:
        mine = run_zoo(seed, args.work / f"zoo-{seed}")
        theirs = plain_loop(seed, mine["seconds"])
        rows.append({"seed": seed, "zoo": mine, "loop": theirs})
        print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for who in ("zoo", "loop"):
        for key in ("miou", "pixel_accuracy"):
            values = [row[who][key] for row in rows]
            summary[f"{who}_{key}"] = {"mean": sum(values) / len(values), "worst": min(values)}
    summary["seconds"] = sum(row["zoo"]["seconds"] for row in rows) / len(rows)
    args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"{'':8}{'mIoU mean':>11}{'mIoU worst':>12}{'pixel acc mean':>16}{'pixel acc worst':>17}")
    for who in ("zoo", "loop"):
        print(f"{who:8}{summary[f'{who}_miou']['mean']:>11.3f}{summary[f'{who}_miou']['worst']:>12.3f}"
              f"{summary[f'{who}_pixel_accuracy']['mean']:>16.3f}{summary[f'{who}_pixel_accuracy']['worst']:>17.3f}")
    print(f"wall time per run (the loop's budget): {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main()
