"""The run folder's life: its default name, one writer at a time, nothing left by a run that failed
before it began, the private copies the other ranks of a distributed run write into, and the line
that says where a stopped run can resume (what :mod:`zoo.stopping` prints)."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["default_dir", "in_run_folder", "as_rank", "stopped_run"]


def default_dir(model: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model.replace('/', '--').replace(':', '-')}-{stamp}"  # hf:org/x: no ':' on Windows


def in_run_folder(run_dir: Path, body: Callable[[], Any]) -> Any:
    """``body()`` with ``run_dir`` created (or resumed) and locked; a folder this call created is
    removed when the run fails before it began (no config.json yet)."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from zoo.errors import storage_error

        raise storage_error(exc, run_dir, "choose another --out") from None
    lock = _lock(run_dir)
    try:
        return body()
    except BaseException:
        if created and not (run_dir / "config.json").is_file():  # failed before it began: leave nothing behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        lock.release()


def _lock(run_dir: Path) -> Any:
    """One process at a time per run folder: a second ``--resume`` (or a run into the same
    ``--out``) would interleave its writes with the first's."""
    import filelock

    lock = filelock.FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise ZooError(f"{run_dir}: another `zoo finetune` is writing this run folder; wait for it to end (or stop "
                       f"it), then resume with `zoo finetune --resume {run_dir}`") from None
    except OSError as exc:
        raise ZooError(f"{run_dir}: cannot write in the run folder ({exc.strerror}); choose a writable --out") from None
    return lock


def as_rank(run_dir: Path, resuming: bool, body: Callable[[Path], Any], reopen: Callable[[Path], Any]) -> Any:
    """One rank of a run under torch.distributed (torchrun, or ``zoo finetune --nproc``).

    Every rank runs the whole recipe on the same data: the frozen pass, validation and the test
    are sharded and gathered (:mod:`zoo.distributed`), the unfrozen phases step one
    DistributedDataParallel model, and everything else (the head on cached features,
    cross-validation, the choices) is computed identically on every rank from the same numbers,
    so no rank waits for another's decision. Rank 0 owns the run folder. The other ranks write
    what the recipe writes into a private scratch copy (deleted at the end), which keeps the
    recipe free of rank checks; a resumed run's scratch starts as a copy of the run folder, so
    resuming needs the run folder on a filesystem every node sees (as multi-node training
    always does). Nothing in a checkpoint depends on the world size, so a run may be resumed
    with another one. The scratch copy is a hidden sibling of the run folder (``.NAME.rankR``):
    a rank killed with SIGKILL cannot remove it, and the next resume replaces it."""
    from zoo.distributed import barrier, broadcast, world

    here = world()
    run_dir = Path(broadcast(str(run_dir)))  # rank 0's default name (its clock) for every rank
    scratch = None
    if not here.main:
        scratch = run_dir.parent / f".{run_dir.name}.rank{here.rank}"
        shutil.rmtree(scratch, ignore_errors=True)  # a killed rank's
        if resuming:
            shutil.copytree(run_dir, scratch, ignore=shutil.ignore_patterns(".lock"))
    barrier()  # the copies are made before rank 0 writes anything
    try:
        run = body(run_dir if scratch is None else scratch)
        barrier()  # rank 0's folder is complete
        return run if here.main else reopen(run_dir) if (run_dir / "config.json").is_file() else run
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def stopped_run(signal_name: str, run_dir: Path) -> str:
    """The line for a ``zoo finetune`` stopped by ``signal_name``: its last complete checkpoint
    in ``run_dir`` and the exact command that resumes it (or that nothing was kept)."""
    from zoo.train.checkpoints import Checkpoints

    head = f"zoo finetune stopped by {signal_name}"
    if not (run_dir / "config.json").is_file():  # stopped before it began: the folder is removed
        return f"{head} before the run began; nothing was kept: run the same command again"
    resume = f"resume with `zoo finetune --resume {shlex.quote(str(run_dir))}`"
    checkpoints = Checkpoints(run_dir / "checkpoints")
    epochs = checkpoints.epochs()
    if not epochs:
        return f"{head} before its first checkpoint; {resume} (its epochs start from the beginning)"
    return f"{head}; the last complete checkpoint is epoch {epochs[-1]} ({checkpoints.path(epochs[-1])}); {resume}"
