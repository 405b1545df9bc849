"""torch.distributed for zoo: which process this is, and the few collective steps the recipe needs.

zoo runs under ``torchrun`` (or ``zoo finetune --nproc N``, which starts torch's own elastic
launcher in this process) with nothing home-made: the launcher sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``, :func:`init_world` joins the process group (gloo on CPU,
NCCL on CUDA), and the pipelines use:

- :func:`shard` to split items among the ranks (each item embedded once) and :func:`gather_rows`
  to put the pieces back together in the original order on every rank;
- :func:`main_first`: rank 0 writes (checkpoints, the run folder, the feature cache, a table),
  the others wait at a barrier and then read what it wrote;
- :func:`broadcast` for a value rank 0 chose (a run folder's name).

Outside a launcher (``WORLD_SIZE`` unset or 1) every function is the single-process identity, so
the pipelines call them unconditionally. Nothing here imports torch until a world of more than one
process is joined.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from zoo.errors import ZooError

__all__ = ["World", "world", "init_world", "shard", "gather_rows", "broadcast", "broadcast_rows", "barrier",
           "main_first", "all_reduce_sum", "lost_peer", "launch"]


@dataclass(frozen=True)
class World:
    """This process's place among the launcher's processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def to_dict(self) -> dict[str, int]:
        return {"rank": self.rank, "size": self.size, "local_rank": self.local_rank, "local_size": self.local_size}


def world() -> World:
    """The world the launcher described in the environment (one process when there is none)."""
    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "").strip()
        try:
            return int(value) if value else default
        except ValueError:
            raise ZooError(f"{name}={value!r} is not a number: the environment of this process is not "
                           f"torchrun's; unset it or start zoo with torchrun") from None

    size = number("WORLD_SIZE", 1)
    return World(rank=number("RANK", 0), size=size, local_rank=number("LOCAL_RANK", 0),
                 local_size=number("LOCAL_WORLD_SIZE", size))


def init_world(device: Any = None) -> World:
    """Join the process group when the launcher started several processes: NCCL for a CUDA
    device, gloo otherwise. Idempotent; a single process joins nothing."""
    here = world()
    if not here.distributed:
        return here
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = device is not None and torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(here.local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        # torchrun sets OMP_NUM_THREADS=1 for every rank; each rank takes its share of the cores
        # instead (the launcher made this process for zoo, so the setting is zoo's to make)
        from zoo.threads import available_cores

        torch.set_num_threads(available_cores())
    return here


def _dist() -> Any:
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _device(dist: Any) -> Any:
    """Where collective tensors live: NCCL reduces CUDA tensors only, gloo CPU ones."""
    import torch

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: Sequence[float]) -> tuple[float, ...]:
    """Each of ``values`` summed over the ranks (float64, so counts stay exact)."""
    dist = _dist()
    if dist is None:
        return tuple(values)
    import torch

    total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device(dist))
    dist.all_reduce(total)
    return tuple(total.cpu().tolist())


def shard(count: int, here: World | None = None) -> range:
    """This rank's share of ``count`` items: a contiguous slice, the first ranks one item longer
    when ``count`` does not divide, so every item belongs to exactly one rank."""
    here = here or world()
    base, extra = divmod(count, here.size)
    start = here.rank * base + min(here.rank, extra)
    return range(start, start + base + (1 if here.rank < extra else 0))


def gather_rows(rows: Any, count: int) -> Any:
    """Every rank's :func:`shard` of an ``(n, ...)`` tensor joined in item order, on every rank.

    gloo's ``all_gather`` needs equal shapes, so each piece is padded to the longest share and cut
    back after: one collective call, no pickling of tensors."""
    dist = _dist()
    if dist is None:
        return rows
    import torch

    here = world()
    longest = shard(count, World(rank=0, size=here.size)).stop
    padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=_device(dist))
    padded[:len(rows)] = rows.to(padded.device)
    pieces = [torch.empty_like(padded) for _ in range(here.size)]
    dist.all_gather(pieces, padded)
    joined = torch.cat([piece[:len(shard(count, World(rank=r, size=here.size)))] for r, piece in enumerate(pieces)])
    return joined.to(rows.device)


def broadcast_rows(rows: Any) -> Any:
    """Rank 0's tensor on every rank (the others pass None): a feature cache only rank 0 read."""
    dist = _dist()
    if dist is None:
        return rows
    import torch

    shape, dtype = broadcast((tuple(rows.shape), rows.dtype) if rows is not None else None)
    box = rows.to(_device(dist)) if rows is not None else torch.empty(shape, dtype=dtype, device=_device(dist))
    dist.broadcast(box, src=0)
    return box.cpu()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    dist = _dist()
    if dist is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    dist = _dist()
    if dist is not None:
        dist.barrier()


@contextmanager
def main_first() -> Iterator[bool]:
    """Rank 0 runs the block first (yields True there), the others after it (False): for a file
    rank 0 writes and the others then read. Single process: the block runs once, yielding True."""
    here = world()
    if not here.distributed:
        yield True
        return
    if not here.main:
        barrier()
    try:
        yield here.main
    finally:
        if here.main:
            barrier()


def lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because another rank is gone (killed, crashed):
    then the launcher stops every rank, and this one's traceback only repeats that."""
    here = world()
    if not here.distributed or not isinstance(exc, RuntimeError):
        return False
    text = str(exc)
    return type(exc).__name__ in ("DistBackendError", "DistNetworkError") or any(
        clue in text for clue in ("Connection closed by peer", "Connection reset by peer", "Broken pipe"))


@contextmanager
def _threads_for_ranks(nproc: int) -> Iterator[None]:
    """``OMP_NUM_THREADS`` set, for the launcher's children, to each rank's share of the cores.

    torch.distributed.run sets it to 1 itself when it is unset, with a four-line warning to tune
    it; set beforehand (its documented way to say the threads are chosen) the launcher passes it
    on silently. The value is the share :func:`init_world` gives a rank anyway
    (:func:`zoo.threads.available_cores` under ``LOCAL_WORLD_SIZE``), so a rank starts with its
    final thread count. A value the user set is theirs and stays; ours is removed after the launch."""
    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    from zoo.threads import cores_per_process

    os.environ["OMP_NUM_THREADS"] = str(cores_per_process(nproc))
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)


class _StopNotices:
    """A logging filter: the launcher's own notices of a signal it got and passed on to the ranks."""

    def filter(self, record: Any) -> bool:
        text = str(record.msg)
        return "death signal" not in text and "closing signal" not in text


@contextmanager
def _no_stop_notices() -> Iterator[None]:
    """torch's launcher logs, in three WARNING lines, that it received a signal and sent it to
    each rank; rank 0 of a zoo run says what matters in one line (where the run stopped, how to
    resume), so those notices are dropped while zoo's launch runs. Its other warnings stay."""
    import logging

    loggers = [logging.getLogger(name) for name in ("torch.distributed.elastic.agent.server.api",
                                                    "torch.distributed.elastic.multiprocessing.api")]
    notices = _StopNotices()
    for logger in loggers:
        logger.addFilter(notices)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(notices)


def launch(nproc: int, argv: Sequence[str], *, rendezvous: Sequence[str] = ()) -> None:
    """Run ``python -m zoo ARGV`` in ``nproc`` processes with torch's elastic launcher, in this
    process (what ``zoo finetune --nproc N`` does): the same as ``torchrun --standalone
    --nproc-per-node N -m zoo ARGV``, or with ``rendezvous`` (torchrun's own options, e.g.
    ``--nnodes 2 --rdzv-backend c10d --rdzv-endpoint host:29400``) instead of ``--standalone``.
    A rank that dies ends every rank; the error names it and says how to resume."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    options = list(rendezvous) or ["--standalone"]
    args = get_args_parser().parse_args([*options, "--nproc-per-node", str(nproc), "--max-restarts", "0",
                                         "-m", "zoo", *argv])
    try:
        with _threads_for_ranks(nproc), _no_stop_notices():
            run(args)
    except SignalException as exc:
        # SIGINT/SIGTERM to the launcher: it passed SIGTERM on to the ranks, and rank 0 says where
        # the run stopped (zoo.stopping); here only the shell's exit code for the signal remains
        from zoo.stopping import Interrupted

        raise Interrupted("", int(exc.sigval)) from None
    except ChildFailedError as exc:
        # the cause, not the ranks the launcher stopped after it (SIGTERM: killed by it, or a zoo
        # finetune that said where it stopped and exited as shells report it) or that lost their peer
        stopped = {-15, 128 + 15}
        causes = [item for item in sorted(exc.failures.items()) if item[1].exitcode not in stopped] \
            or sorted(exc.failures.items())
        rank, failure = min(causes, key=lambda item: (item[1].exitcode == 1, item[1].timestamp))
        how = f"exit code {failure.exitcode}" if failure.exitcode >= 0 else f"signal {-failure.exitcode}"
        raise ZooError(f"rank {rank} of {nproc} failed ({how}); every rank was stopped. The run folder keeps its "
                       f"last complete checkpoint: continue with `--resume RUN` (any --nproc)") from None
