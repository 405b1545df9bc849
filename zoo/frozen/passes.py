"""Running one frozen pass over many items on its engine: :class:`FrozenPass`.

The engine is chosen, and checked, by :func:`zoo.frozen.choice.frozen_pass`. Preprocessing is the
same for both engines (zoo's loader code), so they differ only in the network's arithmetic,
which the check bounds. Texts run in order of length, longest first, so a batch pads to its own
longest text rather than to the longest of the data; outputs come back in the caller's order.

- PyTorch: batches from zoo's loader (decoding in its worker processes when the thread budget
  has any), ``threads`` intra-op threads, channels_last images, autocast on CUDA.
- onnxruntime on CPU: ``threads`` threads, each decoding a small batch and running it on one
  core (:meth:`FrozenPass._threaded`); on CUDA, the loader's batches on the CUDA provider.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import EngineError

__all__ = ["FrozenPass", "spread", "in_eval_mode", "MICRO_PIXELS", "MICRO_TOKENS"]


#: onnxruntime on CPU runs fastest per item on small batches, whose activations stay in cache:
#: efficientnet_lite0 at 224x224 took 2.5-2.7 ms per image at batch 4-8 against 3.5 ms at 64, and
#: MiniLM about 1,000 tokens per call was best (32 tokens: batch 32; 128 tokens: batch 4-8). So the
#: loader's batches are split into calls of about this many pixels, or tokens.
MICRO_PIXELS = 8 * 224 * 224
MICRO_TOKENS = 1024
#: Texts per task of the threaded onnxruntime pass (split further by tokens in each call).
TEXT_CHUNK = 32


def _images_per_call(height: int, width: int) -> int:
    return max(1, MICRO_PIXELS // max(1, height * width))


def _micro_batch(feeds: dict[str, Any]) -> int:
    """Items per onnxruntime call for these feeds (images by pixels, texts by tokens)."""
    if "pixel_values" in feeds:
        return _images_per_call(*feeds["pixel_values"].shape[2:])
    return max(1, MICRO_TOKENS // max(1, feeds["input_ids"].shape[1]))


@contextmanager
def in_eval_mode(module: Any) -> Iterator[None]:
    """``module`` in eval mode for a block, then every submodule back in its own mode (a module in
    training with frozen BatchNorm layers keeps them frozen)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """Up to ``count`` items spread evenly over ``items`` (first and last included)."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / max(1, count - 1)
    return [items[round(i * step)] for i in range(count)]


@dataclass
class FrozenPass:
    """A backbone's forward over many items; build it with :func:`frozen_pass`."""

    backbone: Any
    device: Any
    engine: str  # "onnxruntime" | "torch"
    workers: int
    threads: int
    features: tuple[str, ...] = ()
    note: str | None = None  # why the engine is not the one asked for
    validation: dict[str, Any] | None = None  # onnxruntime (or autocast) vs PyTorch fp32, on the caller's items
    compiled: Any = None  # zoo.frozen.compiled.CompiledGraph
    autocast: Any = None  # a torch dtype on CUDA
    channels_last: bool = False
    _graph: Any = field(default=None, repr=False)
    _session: Any = field(default=None, repr=False)
    _tokenizing: Any = field(default_factory=threading.Lock, repr=False)  # one per pass, shared by its callers

    # ----------------------------------------------------------------- running

    def outputs(self, items: Sequence[Any], *, batch_size: int = 64, progress: Any = None) -> dict[str, Any]:
        """``{output name: (len(items), dim) float32 array}``: ``embedding``, then each feature."""
        import numpy as np
        import torch

        from zoo.frozen.graph import output_names
        from zoo.threads import torch_threads

        names = output_names(self.features)
        if not len(items):
            card = self.backbone.card
            dims = [card.embedding.dim, *(card.features.get(f, 0) for f in self.features)]
            return {name: np.zeros((0, dim), np.float32) for name, dim in zip(names, dims)}
        order = self._order(items)
        ordered = [items[i] for i in order] if order is not None else list(items)
        threaded = self.engine == "onnxruntime" and self.device.type == "cpu"
        # the threaded pass's threads are the compute: torch's own work there (stacking a batch) stays on each
        with in_eval_mode(self.backbone), torch_threads(1 if threaded else self.threads), torch.no_grad():
            if threaded:
                parts = self._threaded(ordered, progress)
            else:
                parts = self._loaded(ordered, batch_size, progress)
        chunks = [[part[n] for part in parts] for n in range(len(names))]
        result = {}
        for name, chunk in zip(names, chunks):
            matrix = np.concatenate(chunk)
            if order is not None:
                restored = np.empty_like(matrix)
                restored[order] = matrix
                matrix = restored
            result[name] = matrix
        return result

    def _loaded(self, ordered: list[Any], batch_size: int, progress: Any) -> list[list[Any]]:
        """Batches from zoo's loader (decoding in its workers), each through the engine."""
        from zoo.batches import make_loader

        # One batch leaves nothing to overlap: a worker process would only add its start-up.
        loader = make_loader(self.backbone, ordered, [0] * len(ordered), batch_size=batch_size,
                             workers=self.workers if len(ordered) > batch_size else 0)
        parts = []
        for inputs, _ in loader:
            parts.append(self._run(inputs))
            if progress is not None:
                progress.update(len(parts[-1][0]))
        return parts

    def _threaded(self, ordered: list[Any], progress: Any) -> list[list[Any]]:
        """onnxruntime on CPU: ``threads`` threads, each decoding its own small batch and running it
        on one core, so decoding overlaps the network with no extra thread. One session serves all
        (``run`` is thread-safe and releases the GIL, as do PIL's resize and numpy's arithmetic).
        On 2 cores this beat one 2-thread session fed by the main thread (bench/frozen_forward.py)."""
        from concurrent.futures import ThreadPoolExecutor

        from zoo.batches import encode_items

        card = self.backbone.card
        step = _images_per_call(*(card.input.size or (224, 224))) if card.modality == "image" else TEXT_CHUNK
        chunks = [ordered[i:i + step] for i in range(0, len(ordered), step)]

        def work(chunk: list[Any]) -> list[Any]:
            if card.modality == "text":
                with self._tokenizing:  # a transformers tokenizer is not safe to call from two threads
                    inputs = encode_items(self.backbone, chunk)
            else:
                inputs = encode_items(self.backbone, chunk)
            return self._run(inputs)

        parts = []
        with ThreadPoolExecutor(min(self.threads, len(chunks)), thread_name_prefix="zoo-frozen") as pool:
            for part in pool.map(work, chunks):
                parts.append(part)
                if progress is not None:
                    progress.update(len(part[0]))
        return parts

    def embed(self, items: Sequence[Any], *, batch_size: int = 64, progress: Any = None) -> Any:
        """The embeddings of ``items`` as a float32 CPU tensor, in order."""
        import torch

        from zoo.frozen.graph import EMBEDDING

        if not len(items):
            return torch.zeros(0, self.backbone.feature_dim)
        return torch.from_numpy(self.outputs(items, batch_size=batch_size, progress=progress)[EMBEDDING])

    def record(self) -> dict[str, Any]:
        """What produced the features, for a run's config.json and feature records."""
        out: dict[str, Any] = {"engine": self.engine, "device": str(self.device), "workers": self.workers,
                               "threads": self.threads}
        if self.engine == "onnxruntime" and self.compiled is not None:
            out["engine_key"] = self.compiled.key
            out["engine_sha256"] = self.compiled.record.get("sha256")
        if self.autocast is not None:
            out["autocast"] = str(self.autocast).replace("torch.", "")
        if self.channels_last:
            out["channels_last"] = True
        if self.validation is not None:
            out["validation"] = self.validation
        if self.note:
            out["note"] = self.note
        return out

    # ----------------------------------------------------------------- one batch

    def _run(self, inputs: Any) -> list[Any]:
        from zoo.frozen.graph import input_names

        names = input_names(self.backbone.card.modality)
        tensors = [inputs[n] for n in names] if isinstance(inputs, dict) else [inputs]
        if self.engine == "onnxruntime":
            return self._run_onnx(names, tensors)
        return self._run_torch(tensors)

    def _run_torch(self, tensors: list[Any]) -> list[Any]:
        import torch

        moved = []
        for tensor in tensors:
            tensor = tensor.to(self.device, non_blocking=True)
            if self.channels_last and tensor.dim() == 4:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            moved.append(tensor)
        graph = self._torch_graph()
        if self.autocast is None:
            with torch.no_grad():
                out = graph(*moved)
        else:
            with torch.no_grad(), torch.autocast(self.device.type, dtype=self.autocast):
                out = graph(*moved)
        return [o.float().cpu().numpy() for o in out]

    def _run_onnx(self, names: Sequence[str], tensors: list[Any]) -> list[Any]:
        import numpy as np

        from zoo.frozen.graph import output_names

        feeds = {name: t.numpy() for name, t in zip(names, tensors)}
        self._check_feeds(feeds)
        outputs = list(output_names(self.features))
        size = len(next(iter(feeds.values())))
        step = _micro_batch(feeds)
        if step >= size:
            return self._session.run(outputs, feeds)
        parts = [self._session.run(outputs, {k: v[i:i + step] for k, v in feeds.items()}) for i in range(0, size, step)]
        return [np.concatenate([p[n] for p in parts]) for n in range(len(outputs))]

    def _check_feeds(self, feeds: dict[str, Any]) -> None:
        """An input the graph was not built for is an error, never a silent reshape or truncation."""
        for spec in self._session.get_inputs():
            shape = feeds[spec.name].shape
            fixed = [(i, d) for i, d in enumerate(spec.shape) if isinstance(d, int)]
            if len(shape) != len(spec.shape) or any(shape[i] != d for i, d in fixed):
                raise EngineError(f"model {self.backbone.card.name!r}: the compiled graph takes {spec.name} of shape "
                                  f"{spec.shape}, got {list(shape)}; use engine='torch' for these inputs")
        limit = self.backbone.card.input.max_length
        if "input_ids" in feeds and limit and feeds["input_ids"].shape[1] > limit:
            raise EngineError(f"model {self.backbone.card.name!r}: {feeds['input_ids'].shape[1]} tokens, more than "
                              f"its max_length {limit}")

    def _torch_graph(self) -> Any:
        if self._graph is None:
            from zoo.frozen.graph import frozen_graph

            # the module keeps its memory format: channels_last inputs alone pick the fast kernels
            # (efficientnet_lite0 eager on CPU: 0.40 s a batch of 32 either way, against 0.79 s)
            self._graph = frozen_graph(self.backbone, self.features)
        return self._graph

    def _order(self, items: Sequence[Any]) -> list[int] | None:
        """Texts longest first (by tokens); None for images, which all have one size."""
        if self.backbone.card.modality != "text" or len(items) < 2:
            return None
        tokenizer = self.backbone.tokenizer
        limit = self.backbone.card.input.max_length or 512  # as the loader's collate truncates
        ids = tokenizer(list(items), truncation=True, max_length=limit)["input_ids"]
        return sorted(range(len(items)), key=lambda i: -len(ids[i]))
