"""Detection on --data pasted-photos: zoo's default against the same torchvision detector trained by a
plain loop for the same wall time, on the test set (new stamps on backgrounds never trained on).

- zoo: ``zoo finetune efficientnet_lite0 --data pasted-photos --task detect --seed S`` as a user runs
  it (a subprocess; its wall time is the budget, report and baseline included).
- plain loop: the very network zoo builds (efficientnet_lite0's maps at strides 8/16/32 -> FPN ->
  torchvision's FCOS, pictures squashed to 224 like zoo's), trained as torchvision's detection
  tutorial trains (every layer learning, BatchNorm statistics kept as the tutorial's frozen ones
  are, random horizontal flips, SGD lr 0.005 momentum 0.9 weight decay 5e-4, a linear warmup over
  the first epoch, StepLR(3, 0.1), batches of 4) on all 240 training pictures until the budget is
  spent, then scored like zoo's run (torchmetrics' COCO mAP on the test pictures, their pixels).

    python bench/detect_pasted.py --seeds 0 1 2            # prints a table, writes bench/detect_pasted.json

Runs interleave (zoo, loop, zoo, loop...) so that the shared machine's load drifts over both alike.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MODEL = "efficientnet_lite0"


def run_zoo(seed: int, out: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run(["zoo", "finetune", MODEL, "--data", "pasted-photos", "--task", "detect", "--seed",
                           str(seed), "--out", str(out), "--quiet", "--json"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(done.stderr)
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"seconds": seconds, "map": metrics["test"]["map"], "map_50": metrics["test"]["map_50"],
            "val_map": metrics["val"]["map"], "epochs": len(history), "best_phase": metrics["best_phase"],
            "baseline_map": (metrics.get("baseline") or {}).get("test", {}).get("map")}


def plain_loop(seed: int, budget: float) -> dict:
    """torchvision's detection tutorial's loop on zoo's network, for ``budget`` seconds."""
    from dataclasses import replace

    import torch
    from torchvision.transforms import v2

    import zoo
    from zoo.runs.options import FinetuneOptions
    from zoo.tasks import get_task
    from zoo_dense.demo import ensure_pasted
    from zoo_dense.formats import read_coco
    from zoo_dense.samples import BoxSampler
    from zoo_dense.scoring import average_precision

    started = time.perf_counter()
    torch.manual_seed(seed)
    task = get_task("detection")
    card = zoo.get_card(MODEL)
    card = replace(card, input=task.input_spec(card))
    folder = ensure_pasted()
    options = FinetuneOptions.from_flat(MODEL, "pasted-photos")
    train, test = read_coco(folder / "train.json"), read_coco(folder / "test.json")
    targets = task.targets(train, options)
    test_targets = task.targets(test, options, targets)
    backbone = zoo.load(card, features=task.feature_maps(card))
    network = task.network(backbone, targets, None)
    sampler = BoxSampler(card.input)
    flip = v2.RandomHorizontalFlip(0.5)

    def example(index: int, generator: torch.Generator):
        from torchvision import tv_tensors

        from zoo import open_image

        image = open_image(train.examples[index].item)
        value = targets.values[index]
        boxes = tv_tensors.BoundingBoxes(torch.as_tensor(value["boxes"]), format="XYXY",
                                         canvas_size=(image.size[1], image.size[0]))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(1 << 30, (1,), generator=generator)))
            image, boxes = flip(image, boxes)
        return sampler(image, {**value, "boxes": boxes.numpy()}, -1, "none")

    for p in backbone.parameters():
        p.requires_grad_(True)
    params = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9, weight_decay=0.0005)
    steps = len(train) // 4
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.001, total_iters=min(1000, steps - 1))
    decay = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    generator = torch.Generator().manual_seed(seed)
    epochs = 0
    while time.perf_counter() - started < budget:
        network.train()
        for module in backbone.modules():  # the tutorial's backbones keep BatchNorm frozen
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        order = torch.randperm(len(train), generator=generator).tolist()
        for start in range(0, len(order) - 3, 4):
            batch = [example(i, generator) for i in order[start:start + 4]]
            images, boxes = BoxSampler.collate(batch)
            loss = sum(network(images, boxes).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if epochs == 0:
                warmup.step()
            if time.perf_counter() - started >= budget:
                break
        decay.step()
        epochs += 1
    network.eval()
    answers = []
    with torch.no_grad():
        for start in range(0, len(test), 16):
            pictures = torch.stack([sampler(e.item, None, -1, "none")[0] for e in test.examples[start:start + 16]])
            answers += [{k: v.numpy() for k, v in a.items()} for a in network(pictures)]
    scores = average_precision(answers, test_targets.values, targets.names, card.input.size)
    return {"seconds": time.perf_counter() - started, "epochs": epochs, "map": scores["map"], "map_50": scores["map_50"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("bench-detect"))
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("detect_pasted.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    rows = []
    for seed in args.seeds:
        mine = run_zoo(seed, args.work / f"zoo-{seed}")
        theirs = plain_loop(seed, mine["seconds"])
        rows.append({"seed": seed, "zoo": mine, "loop": theirs})
        print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for who in ("zoo", "loop"):
        for key in ("map", "map_50"):
            values = [row[who][key] for row in rows]
            summary[f"{who}_{key}"] = {"mean": sum(values) / len(values), "worst": min(values)}
    summary["seconds"] = sum(row["zoo"]["seconds"] for row in rows) / len(rows)
    args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"{'':8}{'mAP mean':>10}{'mAP worst':>11}{'mAP@.5 mean':>13}{'mAP@.5 worst':>14}")
    for who in ("zoo", "loop"):
        print(f"{who:8}{summary[f'{who}_map']['mean']:>10.3f}{summary[f'{who}_map']['worst']:>11.3f}"
              f"{summary[f'{who}_map_50']['mean']:>13.3f}{summary[f'{who}_map_50']['worst']:>14.3f}")
    print(f"wall time per run (the loop's budget): {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main()
