"""zoo embed throughput against calling the backbone directly in a loop, images and texts.

Side by side, alternating, repeated (other jobs share the CPUs), on the same inputs and batch size:

- direct: ``backbone = zoo.load(MODEL)`` then ``backbone.embed(items[i:i + batch])`` in a loop,
  preprocessing in the loop's own thread; timed with and without the load;
- zoo: ``zoo.embed.embed_dataset(MODEL, DATA, db=...)`` into a fresh table, end to end: model
  load, reading and checking the inputs, content hashing, embedding (DataLoader workers),
  normalising, zoo finetune's feature cache (emptied before each repeat, so it is a miss), the
  LanceDB write.

Images are JPEG photos (400x300 crops of scikit-learn's sample photos), texts are prose lines.

    python bench/embed_throughput.py [--images 128] [--texts 1000] [--repeats 3] [--batch-size 64]

Target (issue 6): zoo embed within 1.1x of the direct loop.

Measured on the 2 shared CPU cores (load average 5-6), two runs of 3 repeats: median ratio
(zoo embed / load + loop) 1.07 and 1.07 for 128 photos, 1.07 and 1.00 for 1,000 texts; single
repeats range 0.95-1.15 with the other jobs' load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

IMAGE_MODEL = "efficientnet_lite0"
TEXT_MODEL = "all-minilm-l6-v2-offline"


def photos(folder: Path, count: int) -> list[Path]:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    sources = load_sample_images().images  # two 427x640 photos
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        image = sources[n % len(sources)]
        top, left = rng.integers(0, image.shape[0] - 300), rng.integers(0, image.shape[1] - 400)
        path = folder / f"{n:04d}.jpg"
        Image.fromarray(image[top:top + 300, left:left + 400]).save(path, quality=90)
        paths.append(path)
    return paths


def texts(path: Path, count: int) -> list[str]:
    words = ("model data image text search table vector index label class train query embed store cache "
             "layer network weight batch file folder result score value number small large new old fast").split()
    import numpy as np

    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=int(rng.integers(8, 24)))).capitalize() + "." for _ in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def direct(model: str, items: list, batch_size: int) -> tuple[float, float]:
    import zoo

    started = time.perf_counter()
    backbone = zoo.load(model)
    loaded = time.perf_counter()
    out = [backbone.embed(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    assert sum(len(o) for o in out) == len(items)
    return loaded - started, time.perf_counter() - loaded


def through_zoo(model: str, data: Path, work: Path, batch_size: int) -> tuple[float, object]:
    from zoo.embed import embed_dataset
    from zoo.settings import zoo_home

    shutil.rmtree(zoo_home() / "features", ignore_errors=True)  # a cache miss, like a first run
    db = work / f"db-{time.monotonic_ns()}"
    started = time.perf_counter()
    report = embed_dataset(model, data, db=db, batch_size=batch_size, index=False)
    seconds = time.perf_counter() - started
    shutil.rmtree(db)
    return seconds, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        os.environ.setdefault("ZOO_HOME", str(work / "home"))
        import torch

        from zoo.pulling import pull

        print(f"{os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
        cases = []
        if args.images:
            cases.append((IMAGE_MODEL, work / "photos", [str(p) for p in photos(work / "photos", args.images)]))
        if args.texts:
            cases.append((TEXT_MODEL, work / "lines.txt", texts(work / "lines.txt", args.texts)))
        for model, data, items in cases:
            pull(model, quiet=True)
            direct(model, items[: args.batch_size], args.batch_size)  # warm: first-run costs of both paths
            through_zoo(model, data, work, args.batch_size)
            rows = []
            for repeat in range(args.repeats):
                load_s, loop_s = direct(model, items, args.batch_size)
                zoo_s, report = through_zoo(model, data, work, args.batch_size)
                assert report.embedded == len(items), report
                rows.append((load_s, loop_s, zoo_s))
                print(f"{model} repeat {repeat + 1}: direct loop {loop_s:6.2f}s (+ load {load_s:4.2f}s) "
                      f"{len(items) / loop_s:7.1f} items/s | zoo embed {zoo_s:6.2f}s {len(items) / zoo_s:7.1f} items/s "
                      f"| ratio {zoo_s / (load_s + loop_s):.3f} (vs loop only {zoo_s / loop_s:.3f})")
            with_load = statistics.median(z / (l + d) for l, d, z in rows)
            loop_only = statistics.median(z / d for _, d, z in rows)
            print(f"{model}: {len(items)} items, median ratio zoo embed / (load + loop) {with_load:.3f}, "
                  f"/ loop only {loop_only:.3f}  (target <= 1.1)\n")


if __name__ == "__main__":
    main()
