"""zoo search over 100,000 stored 384-d vectors: latency, ANN recall@10, and the index threshold.

A real zoo table (VectorStore / Table, the code `zoo embed` writes with) is filled with N
L2-normalised 384-d vectors drawn like sentence embeddings: a mixture of 1,000 Gaussian clusters
(each point as far from its centre as the centre is from the origin: cosine ~0.7 to its centre,
~0.5 to its cluster mates). Queries are 200 fresh draws from the same mixture, never stored
vectors. The table is labelled as all-minilm-l6-v2-offline's, so the end-to-end figure embeds
real text queries with that model before searching (recall is only meaningful for the vectors).

Measured, side by side and repeated (other jobs share the CPUs):

- flat scan (exact) latency at several table sizes: where it crosses 20 ms sets INDEX_THRESHOLD;
- index build time (IVF_FLAT, zoo's choice) and ANN latency, median and p95 over the queries;
- recall@10 of the ANN results against exact top-10 from numpy (true cosine order);
- end to end through `Searcher` (embed a text with the model, then search);
- with --compare: IVF_PQ (+ refine_factor 10) and IVF_HNSW_SQ built on the same table;
- with --real N: N real sentences (prose lines of the docstrings and comments of the installed
  Python packages) embedded by `zoo embed` itself, 200 held-out lines as queries, recall@10 of
  the index zoo built against an exact scan, and again with the partition count zoo would use at
  --rows (the same fraction of the table probed per query as at 100,000 rows).

    python bench/search_speed.py [--rows 100000] [--queries 200] [--repeats 3] [--compare] [--uniform]
                                 [--real 30000 --threads 1]

Targets (issue 6): median query < 20 ms at 100,000 rows, recall@10 >= 0.95 against exact search.

Measured on the 2 shared CPU cores (load average 4-7 from other jobs), three runs: IVF_FLAT over
100,000 vectors (316 partitions, 111 probed) 7.7-13.5 ms median per query (p95 12-23 ms),
recall@10 1.000 on the mixture; flat scan 130-200 ms; index built in 4-6 s. Real sentences
(30,000): recall@10 0.969-0.977 with zoo's index, 0.978-0.981 with 111 of 316 partitions; end to
end with the MiniLM query embedding 20-35 ms. Uniform random vectors (--uniform): recall@10 0.18
at 20 probes: no index helps on structureless data, and embeddings are not structureless.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
MODEL = "all-minilm-l6-v2-offline"


def mixture(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    picked = centres[rng.integers(0, len(centres), n)]
    points = picked + rng.standard_normal((n, DIM)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    points = rng.standard_normal((n, DIM)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def fill(store, name: str, vectors: np.ndarray, info) -> object:  # noqa: ANN001
    table = store.create(name, info)
    ids = [f"{i:016x}" for i in range(len(vectors))]
    for start in range(0, len(vectors), 50_000):
        stop = start + 50_000
        table.add(ids[start:stop], [f"synthetic item {i}" for i in range(start, min(stop, len(vectors)))],
                  [None] * len(ids[start:stop]), [f"c{i}" for i in range(start, min(stop, len(vectors)))],
                  vectors[start:stop])
    return table


def latencies(table, queries: np.ndarray, *, exact: bool, k: int = 10) -> tuple[list[float], list[list[int]]]:  # noqa: ANN001
    times, found = [], []
    table.search(queries[0], k, exact=exact)  # warm: open files, load the index
    for query in queries:
        started = time.perf_counter()
        hits = table.search(query, k, exact=exact)
        times.append((time.perf_counter() - started) * 1000)
        found.append([int(h.id, 16) for h in hits])
    return times, found


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    return f"median {statistics.median(ordered):6.2f} ms, p95 {ordered[int(0.95 * (len(ordered) - 1))]:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="1000,5000,10000,20000,50000", help="flat-scan sizes for the threshold")
    parser.add_argument("--compare", action="store_true", help="also build IVF_PQ and IVF_HNSW_SQ (minutes)")
    parser.add_argument("--uniform", action="store_true", help="uniform random vectors (no clusters): the hard case")
    parser.add_argument("--real", type=int, default=0, help="also N real sentences embedded by zoo embed")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is faster when other jobs share the CPUs)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from zoo.embed import Searcher, VectorStore
    from zoo.embed.embedder import embedder_identity
    from zoo.embed.store import INDEX_THRESHOLD, TableInfo
    from zoo.pulling import pull, resolve_card

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, DIM)).astype(np.float32)
    draw = (lambda n: uniform(rng, n)) if args.uniform else (lambda n: mixture(rng, centres, n))
    vectors = draw(args.rows)
    queries = draw(args.queries)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    card = resolve_card(MODEL)
    fetched = pull(card, quiet=True)
    info = TableInfo(model=MODEL, revision=fetched.resolved or fetched.revision, embedder=embedder_identity(card, fetched),
                     modality="text", dim=DIM)
    print(f"{args.rows} vectors ({'uniform' if args.uniform else '1,000-cluster mixture'}), {args.queries} queries, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    with tempfile.TemporaryDirectory() as folder:
        store = VectorStore(Path(folder) / "db", create=True)
        print("\nflat scan (exact) by table size, 50 queries each:")
        for size in [int(s) for s in args.sizes.split(",") if int(s) < args.rows]:
            small = fill(store, f"flat{size}", vectors[:size], info)
            times, _ = latencies(small, queries[:50], exact=True)
            print(f"  {size:>7} rows: {summary(times)}")

        started = time.perf_counter()
        table = fill(store, "main", vectors, info)
        print(f"\nstored {args.rows} rows in {time.perf_counter() - started:.1f}s")
        flat_times, flat_found = latencies(table, queries[:50], exact=True)
        print(f"  {args.rows:>7} rows: {summary(flat_times)}  recall@10 {recall(flat_found, truth[:50]):.3f} "
              f"(exact scan vs numpy)")

        started = time.perf_counter()
        note = table.maintain_index(True)
        print(f"\n{note} in {time.perf_counter() - started:.1f}s (threshold {INDEX_THRESHOLD} rows): "
              f"{table.index().describe()}")
        medians = []
        for repeat in range(args.repeats):
            ann_times, found = latencies(table, queries, exact=False)
            flat_times, _ = latencies(table, queries[:30], exact=True)
            medians.append(statistics.median(ann_times))
            print(f"  repeat {repeat + 1}: ANN {summary(ann_times)}, recall@10 {recall(found, truth):.3f} | "
                  f"flat {summary(flat_times)}")
        print(f"  ANN median over repeats: {statistics.median(medians):.2f} ms")

        searcher = Searcher(Path(folder) / "db", "main")
        texts = [f"a short question about topic number {i} and what it means" for i in range(50)]
        searcher(texts[0])
        end_to_end = []
        for text in texts:
            result = searcher(text, 10)
            end_to_end.append(result.seconds * 1000)
        print(f"\nend to end (embed a text with {MODEL} on one thread, then ANN search): {summary(end_to_end)}")

        if args.compare:
            compare(table, queries, truth)
        if args.real:
            real(Path(folder) / "db", args.real, args.queries, args.rows)


def sentences() -> list[str]:
    """English prose lines from the docstrings and comments of the installed packages (cached)."""
    import re
    import site
    import sys

    from zoo.settings import zoo_home

    cache = zoo_home() / "bench" / "sentences.txt"
    if cache.is_file():
        return cache.read_text(encoding="utf-8").splitlines()
    prose = re.compile(r"^[A-Z][a-z]+ [a-z]+ [a-z ,']+.*[a-z.]$")
    code = re.compile(r"[(){}\[\]=_<>@`*|\\]")
    found: set[str] = set()
    roots = [*site.getsitepackages(), f"{sys.prefix}/lib/python{sys.version_info[0]}.{sys.version_info[1]}"]
    for root in roots:
        for path in Path(root).rglob("*.py"):
            try:
                text = path.read_text(encoding="utf-8", errors="ignore")
            except OSError:
                continue
            for line in text.splitlines():
                line = line.strip().lstrip("# ")
                if 40 <= len(line) <= 160 and prose.match(line) and not code.search(line):
                    found.add(line)
    lines = sorted(found)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def real(db: Path, rows: int, n_queries: int, full_rows: int) -> None:
    """Recall of zoo's own index on real sentence embeddings made by zoo embed."""
    import math

    from zoo.embed import Searcher, embed_dataset

    lines = sentences()
    np.random.default_rng(1).shuffle(lines)
    if len(lines) < rows + n_queries:
        raise SystemExit(f"only {len(lines)} sentences found; ask for fewer --real rows")
    data = db.parent / "sentences.txt"
    data.write_text("\n".join(lines[:rows]) + "\n", encoding="utf-8")
    started = time.perf_counter()
    report = embed_dataset(MODEL, data, db=db, table="real", progress=True)
    print(f"\nreal sentences: {report.embedded} embedded by zoo embed in {time.perf_counter() - started:.0f}s "
          f"(feature cache {report.feature_cache}); {report.index}")
    searcher = Searcher(db, "real")
    queries = np.stack([searcher.embed(text) for text in lines[rows:rows + n_queries]])
    exact = [[h.id for h in searcher.table.search(q, 10, exact=True)] for q in queries]

    def measure(label: str, nprobes: int | None = None) -> None:
        times, hits = [], []
        for q in queries:
            started = time.perf_counter()
            found = searcher.table.search(q, 10, nprobes=nprobes)
            times.append((time.perf_counter() - started) * 1000)
            hits.append(len({h.id for h in found} & set(exact[len(hits)])) / 10)
        print(f"  {label}: {summary(times)}, recall@10 {np.mean(hits):.3f}")

    measure(f"zoo's index ({searcher.table.index().describe()})")
    partitions = int(math.sqrt(full_rows))
    started = time.perf_counter()
    searcher.table.build_index(partitions)
    print(f"rebuilt with {partitions} partitions, the probed share at {full_rows} rows, in "
          f"{time.perf_counter() - started:.1f}s; recall by partitions probed:")
    for nprobes in sorted({20, 40, 80, searcher.table.index().nprobes, 160}):
        measure(f"{nprobes:>3} of {partitions}" + (" (zoo's choice)" if nprobes == searcher.table.index().nprobes else ""),
                nprobes)


def compare(table, queries: np.ndarray, truth: np.ndarray) -> None:  # noqa: ANN001
    """Other LanceDB index types on the same table, searched through LanceDB directly."""
    from lancedb.index import HnswSq, IvfPq

    lance = table._lance
    for name, config, refine in (("IVF_PQ", IvfPq(distance_type="dot"), None),
                                 ("IVF_PQ", IvfPq(distance_type="dot"), 10),
                                 ("IVF_HNSW_SQ", HnswSq(distance_type="dot"), None),
                                 ("IVF_HNSW_SQ", HnswSq(distance_type="dot"), 10)):
        if refine is None:
            started = time.perf_counter()
            lance.create_index("vector", config=config, replace=True)
            print(f"\n{name}: built in {time.perf_counter() - started:.1f}s")
        times, found = [], []
        for query in queries:
            builder = lance.search(query).distance_type("dot").limit(10).select(["id", "_distance"]).nprobes(20)
            if refine:
                builder = builder.refine_factor(refine)
            started = time.perf_counter()
            data = builder.to_arrow()
            times.append((time.perf_counter() - started) * 1000)
            found.append([int(i, 16) for i in data["id"].to_pylist()])
        print(f"  refine_factor {refine}: {summary(times)}, recall@10 {recall(found, truth):.3f}")


if __name__ == "__main__":
    main()
