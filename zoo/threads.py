"""How many threads a pass may use: loader processes plus compute threads never exceed the cores.

On a 2-core machine, PyTorch's default (one intra-op thread per core) plus a DataLoader worker
decoding beside it put three busy threads on two cores; OpenMP's spin-waiting then burns more
system time than compute (the digits demo: 44 s user, 83 s system in 73 s of wall time). The
budget counts the cores this process may run on (``os.sched_getaffinity``, which respects
``taskset`` and container CPU sets), gives the loader its workers and the compute the rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["available_cores", "cores_per_process", "ThreadBudget", "thread_budget", "torch_threads", "blas_threads"]


def available_cores() -> int:
    """The cores this process may run on (its affinity mask), not the machine's count; under a
    distributed launcher, its share: the mask divided among the processes of this node
    (``LOCAL_WORLD_SIZE``), since every rank sees the whole mask and gloo ranks each spinning a
    thread per core would oversubscribe them."""
    return cores_per_process(_processes_on_this_node())


def cores_per_process(processes: int) -> int:
    """Each of ``processes`` processes' share of this process's cores (at least one): what a rank
    of ``zoo ... --nproc N`` computes with, so the launcher can give it to the ranks beforehand."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        cores = max(1, os.cpu_count() or 1)
    return max(1, cores // max(1, processes))


def _processes_on_this_node() -> int:
    """``LOCAL_WORLD_SIZE``, which torchrun sets for every rank (:mod:`zoo.distributed` reads the
    rest of the world; this module stays below it); 1 outside a launcher or when it is not a number."""
    value = os.environ.get("LOCAL_WORLD_SIZE", "").strip()
    return max(1, int(value)) if value.isdigit() else 1


@dataclass(frozen=True)
class ThreadBudget:
    """Loader processes and compute threads (torch intra-op, or onnxruntime's) for one pass."""

    workers: int
    threads: int

    def to_dict(self) -> dict[str, int]:
        return {"workers": self.workers, "threads": self.threads, "cores": available_cores()}


def thread_budget(workers: int | None = None, *, decoding: bool = True, cores: int | None = None) -> ThreadBudget:
    """Split the cores between loader workers and compute threads.

    ``decoding``: the items need decoding (images); texts are tokenized in the main process, so
    they get no workers. The default gives decoding one worker per four cores and the compute the
    rest; an explicit ``workers`` is honoured and the compute gets what is left (at least one).

    Below four cores no worker: a worker takes a whole core from the network, and on 2 cores
    decoding in the main process beside 2 compute threads was faster for both engines
    (efficientnet_lite0 on digits: onnxruntime 4.5 ms per image against 6.2 ms with one worker and
    one thread; bench/frozen_forward.py), since decoding (0.5-1 ms) is far cheaper than the network.
    """
    cores = cores or available_cores()
    if not decoding:
        return ThreadBudget(workers=0, threads=cores)
    if workers is None:
        workers = cores // 4
    workers = max(0, int(workers))
    return ThreadBudget(workers=workers, threads=max(1, cores - workers))


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``count`` for a block, and put back after it: the caller's
    process keeps its own setting."""
    import torch

    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def blas_threads(count: int = 1) -> Iterator[None]:
    """numpy's and scipy's BLAS (OpenBLAS, MKL) limited to ``count`` threads for a block, and put
    back after it (threadpoolctl, which scikit-learn ships with).

    The probes, the baselines and every cross-validated head fit thousands of small logistic
    regressions (80 x 80 matrices): a multi-threaded BLAS wakes its threads for each product and
    spends far more time handing them work than computing. On the digits demo's choice of cut (6
    candidates, 15 outer folds each, 2 cores) one thread took 7 s of CPU against 129 s with
    OpenBLAS's default of a thread per core while another process was busy (bench/main_job.py)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield
