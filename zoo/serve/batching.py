"""Dynamic batching: requests to one model gathered into one batch, run off the event loop.

A :class:`Batcher` per model takes each request's :class:`zoo.serve.execution.Work` and gives back
its answer. Its loop waits for a first request, then for a free worker (:class:`Workers`: the
threads that run batches, shared by every model, so the server never runs more batches at once
than it has workers), then gathers what else arrived, until the batch holds ``max_items`` items
or its first request has waited ``max_delay_s``, and hands the batch to a worker. A request is
never split; one larger than ``max_items`` runs alone. While a batch runs, the next one gathers,
so under load batches fill with no waiting at all.

A request that gives up (its timeout) is skipped when the batch is made; one already running is
finished and its answer dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from zoo.serve.errors import unavailable
from zoo.serve.execution import BatchReport, Work

__all__ = ["Batcher", "Workers", "BatchObserver", "batch_limit", "CPU_IMAGE_PIXELS", "LARGE_BATCH"]

#: Image pixels per batch on the CPU when --max-batch is not given: 4 images of 224x224. Serving
#: efficientnet_lite0 on 2 cores to 16 clients (bench/serve_bench.py, the same machine, two rounds):
#: batches of 4 gave 149 items/s (p95 122 ms, 6.7 ms of CPU an image), batches of 8 gave 132-135
#: (7.2 ms), one at a time 114-143 (7.2 ms): on a CPU a conv net costs the same per image at any
#: batch size, and a few images' activations stay in cache (the frozen pass found 4-8 best too).
CPU_IMAGE_PIXELS = 4 * 224 * 224
#: Items per batch otherwise: texts (MiniLM took 2.35 ms of CPU a text alone, 1.46 in batches of
#: 16, split by length into calls of about 1,024 tokens) and any model on a GPU.
LARGE_BATCH = 32


def batch_limit(max_batch: int | None, info: Any, providers: Sequence[str]) -> int:
    """Items per batch for a model: ``--max-batch`` when given, else by what it reads and where."""
    if max_batch is not None:
        return max_batch
    if info.modality == "text" or (providers and providers[0] != "CPUExecutionProvider"):
        return LARGE_BATCH
    height, width = info.preprocessing.get("size") or (224, 224)
    return max(1, CPU_IMAGE_PIXELS // (int(height) * int(width)))

#: Called after each batch: (its report, seconds from its first request's arrival to the end).
BatchObserver = Callable[[BatchReport, float], None]


class Workers:
    """The threads that run batches (``count`` of them), and a slot per thread for the batchers."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.executor = ThreadPoolExecutor(count, thread_name_prefix="zoo-serve-batch")
        self._slots: asyncio.Semaphore | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:  # made on the loop that uses it
            self._slots = asyncio.Semaphore(self.count)
        return self._slots

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Pending:
    work: Work
    future: asyncio.Future
    arrived: float


@dataclass
class Batcher:
    """One model's queue: ``run`` answers a list of works (in a worker thread)."""

    run: Callable[[list[Work]], BatchReport]
    workers: Workers
    max_items: int
    max_delay_s: float
    observe: BatchObserver | None = None
    queued: int = 0  # items not yet handed to a worker (queued, or in a batch still gathering)
    _queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    _task: asyncio.Task | None = None
    _running: set[asyncio.Task] = field(default_factory=set)
    _closed: bool = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, work: Work) -> Any:
        """The answer to ``work`` once its batch has run (or the exception that is its answer)."""
        if self._closed:
            raise unavailable("the server is shutting down; send the request to another replica", retry_after=1)
        loop = asyncio.get_running_loop()
        pending = _Pending(work, loop.create_future(), loop.time())
        self.queued += work.size
        self._queue.put_nowait(pending)
        try:
            return await pending.future
        finally:
            if not pending.future.done():  # the caller gave up (timeout): the loop skips it
                pending.future.cancel()

    async def stop(self) -> None:
        """Finish the batches that run, refuse what still waits (SIGTERM drains requests before this)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(unavailable("the server is shutting down", retry_after=1))

    async def retire(self) -> None:
        """Finish everything already submitted, then stop (the old batcher of a reloaded model)."""
        while self.queued or self._running:
            await asyncio.sleep(0.01)
        await self.stop()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        carried: _Pending | None = None
        while True:
            first = carried or await self._queue.get()
            carried = None
            if first.future.done():
                self.queued -= first.work.size
                continue
            await self.workers.slots.acquire()
            batch, carried = await self._gather(first, loop)
            self.queued -= sum(p.work.size for p in batch)
            task = loop.create_task(self._dispatch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _gather(self, first: _Pending, loop: asyncio.AbstractEventLoop) -> tuple[list[_Pending], _Pending | None]:
        """``first`` and what joins it before the batch is full or ``first`` has waited long enough;
        a request that would overfill the batch is carried over to the next."""
        batch, items = [first], first.work.size
        deadline = first.arrived + self.max_delay_s
        while items < self.max_items:
            try:
                pending = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if pending.future.done():
                self.queued -= pending.work.size
                continue
            if items + pending.work.size > self.max_items:
                return batch, pending
            batch.append(pending)
            items += pending.work.size
        return batch, None

    async def _dispatch(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            live = [p for p in batch if not p.future.done()]
            if not live:
                return
            try:
                report = await loop.run_in_executor(self.workers.executor, self.run, [p.work for p in live])
            except Exception as exc:  # noqa: BLE001 - a bug in run: every request of the batch gets it
                report = BatchReport(results=[exc] * len(live))
            for pending, result in zip(live, report.results):
                if pending.future.done():
                    continue
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            if self.observe is not None:
                self.observe(report, loop.time() - batch[0].arrived)
        finally:
            self.workers.slots.release()
