"""One frozen pass over many items, on the fastest engine that is validated equal to PyTorch.

Every place where zoo runs a backbone without training it (stage-1 features of ``zoo finetune``,
``zoo embed``, ``zoo fewshot``, ``zoo search`` queries, the layer probe) goes through
:func:`frozen_pass`:

- ``engine="auto"`` on CPU: the cut backbone compiled to ONNX (:mod:`zoo.frozen.compiled`) in
  onnxruntime, checked against PyTorch on a few of the caller's own items before the pass; if
  onnxruntime is missing, the model cannot be compiled, or the outputs differ, PyTorch eager with
  one line saying why (a compile failure is remembered, so it is not retried on every run).
- ``engine="auto"`` on CUDA: PyTorch with autocast (bf16 where the GPU supports it, else fp16)
  and channels_last images, checked against fp32 on the same items (cosine >= 0.999, else fp32).
- ``engine="torch"``: PyTorch eager; ``engine="onnxruntime"``: onnxruntime or an error saying why.

Preprocessing is the same for both engines (zoo's loader, decoding in worker processes), so the
engines differ only in the network's arithmetic, which the check bounds. Texts are run in order
of length, longest first, so a batch pads to its own longest text rather than to the longest of
the data; outputs come back in the caller's order. Threads follow :mod:`zoo.threads`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import EngineError, ZooError

__all__ = ["FrozenPass", "frozen_pass", "ENGINES", "spread"]

ENGINES = ("auto", "torch", "onnxruntime")

#: Items of the caller's data each onnxruntime pass is checked on before it runs (one batch of 1
#: and one of the rest: the dynamic batch axis at two sizes).
CHECK_ITEMS = 6
#: Least cosine similarity to fp32 for CUDA autocast features to be used instead of fp32 ones.
AUTOCAST_MIN_COSINE = 0.999


#: onnxruntime on CPU runs fastest per item on small batches, whose activations stay in cache:
#: efficientnet_lite0 at 224x224 took 2.5-2.7 ms per image at batch 4-8 against 3.5 ms at 64, and
#: MiniLM about 1,000 tokens per call was best (32 tokens: batch 32; 128 tokens: batch 4-8). So the
#: loader's batches are split into calls of about this many pixels, or tokens.
MICRO_PIXELS = 8 * 224 * 224
MICRO_TOKENS = 1024
#: Texts per task of the threaded onnxruntime pass (split further by tokens in each call).
TEXT_CHUNK = 32


def _micro_batch(feeds: dict[str, Any]) -> int:
    """Items per onnxruntime call for these feeds (images by pixels, texts by tokens)."""
    if "pixel_values" in feeds:
        height, width = feeds["pixel_values"].shape[2:]
        return max(1, MICRO_PIXELS // max(1, height * width))
    return max(1, MICRO_TOKENS // max(1, feeds["input_ids"].shape[1]))


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

    # ----------------------------------------------------------------- running

    def outputs(self, items: Sequence[Any], *, batch_size: int = 64, progress: Any = None) -> dict[str, Any]:
        """``{output name: (len(items), dim) float32 array}``: ``embedding``, then each feature."""
        import numpy as np
        import torch

        from zoo.frozen.graph import output_names
        from zoo.threads import torch_threads

        names = output_names(self.features)
        if not len(items):
            return {name: np.zeros((0, 0), np.float32) for name in names}
        order = self._order(items)
        ordered = [items[i] for i in order] if order is not None else list(items)
        self.backbone.eval()
        threaded = self.engine == "onnxruntime" and self.device.type == "cpu"
        # the threaded pass's threads are the compute: torch's own work there (stacking a batch) stays on each
        with torch_threads(1 if threaded else self.threads), torch.no_grad():
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
        import threading
        from concurrent.futures import ThreadPoolExecutor

        from zoo.batches import encode_items

        card = self.backbone.card
        if card.modality == "image":
            height, width = card.input.size or (224, 224)
            step = max(1, MICRO_PIXELS // (height * width))
        else:
            step = TEXT_CHUNK
        chunks = [ordered[i:i + step] for i in range(0, len(ordered), step)]
        tokenizing = threading.Lock()  # a transformers tokenizer is not safe to call from two threads

        def work(chunk: list[Any]) -> list[Any]:
            if card.modality == "text":
                with tokenizing:
                    inputs = encode_items(self.backbone, chunk)
            else:
                inputs = encode_items(self.backbone, chunk)
            return self._run(inputs)

        if len(chunks) == 1 or self.threads == 1:
            return [work(chunk) for chunk in chunks]
        parts = []
        with ThreadPoolExecutor(self.threads, thread_name_prefix="zoo-frozen") as pool:
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
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.autocast or torch.float32,
                                             enabled=self.autocast is not None):
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

            self._graph = frozen_graph(self.backbone, self.features)
            if self.channels_last:
                self._graph = self._graph.to(memory_format=__import__("torch").channels_last)
        return self._graph

    def _order(self, items: Sequence[Any]) -> list[int] | None:
        """Texts longest first (by tokens); None for images, which all have one size."""
        if self.backbone.card.modality != "text" or len(items) < 2:
            return None
        tokenizer = self.backbone.tokenizer
        limit = self.backbone.card.input.max_length or 512  # as the loader's collate truncates
        ids = tokenizer(list(items), truncation=True, max_length=limit)["input_ids"]
        return sorted(range(len(items)), key=lambda i: -len(ids[i]))


def frozen_pass(
    backbone: Any,
    fetched: Any = None,
    *,
    engine: str = "auto",
    device: Any = None,
    workers: int | None = None,
    threads: int | None = None,
    features: Sequence[str] = (),
    check: Sequence[Any] | None = None,
    channels_last: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> FrozenPass:
    """A :class:`FrozenPass` over ``backbone`` (as loaded: its pretrained weights, ``fetched``).

    ``check``: a few of the caller's items; the onnxruntime (or CUDA autocast) pass is compared
    with PyTorch fp32 on them before use, and the result recorded. Without them, the compiled
    graph's own validation (at build, on the first data it saw or on generated inputs) stands.
    ``fetched=None`` (random or changed weights) always runs PyTorch: only a pull's hashes
    identify weights. ``features``: pooled intermediate features as extra outputs (the backbone
    must be loaded with ``features=[card.embedding.node, *features]``).
    """
    import torch

    from zoo.threads import thread_budget

    if engine not in ENGINES:
        raise ZooError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    say = log or (lambda _: None)
    card = backbone.card
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    budget = thread_budget(workers, decoding=card.modality != "text")
    base = dict(backbone=backbone, device=device, workers=budget.workers,
                threads=threads or budget.threads, features=tuple(features))
    images = card.modality == "image"
    if engine == "torch" or (engine == "auto" and device.type == "cuda"):
        chosen = FrozenPass(**base, engine="torch", channels_last=images if channels_last is None else channels_last)
        if device.type == "cuda":
            _choose_autocast(chosen, check, say)
        return chosen
    try:
        return _onnx_pass(base, fetched, check, retry=engine == "onnxruntime", say=say)
    except EngineError as exc:
        if engine == "onnxruntime":
            raise
        note = f"PyTorch eager, not onnxruntime: {exc}"
        say(f"frozen pass: {note}")
        return FrozenPass(**base, engine="torch", note=note,
                          channels_last=images if channels_last is None else channels_last)


def _onnx_pass(base: dict[str, Any], fetched: Any, check: Sequence[Any] | None, *, retry: bool,
               say: Callable[[str], None]) -> FrozenPass:
    backbone = base["backbone"]
    card = backbone.card
    try:
        import onnxruntime
    except ImportError:
        raise EngineError("onnxruntime is not installed (pip install 'zoo[cpu]', or 'zoo[gpu]' for "
                          "onnxruntime-gpu)") from None
    if fetched is None:
        raise EngineError(f"model {card.name!r} has no pulled weights to identify it (random weights?)")
    from zoo.frozen.compiled import compile_graph, compare_outputs, open_session
    from zoo.frozen.graph import frozen_graph, output_names
    from zoo.samples import generated_items

    providers = ["CPUExecutionProvider"]
    if base["device"].type == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise EngineError("onnxruntime has no CUDA provider here (install 'zoo[gpu]': onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    probe = FrozenPass(**base, engine="torch")
    module = probe._torch_graph()
    sample = list(check) if check else generated_items(card, CHECK_ITEMS, seed=3)
    batches = _encoded_batches(probe, sample)
    compiled = compile_graph(module, card, fetched, features=base["features"], batches=batches,
                             threads=base["threads"], retry=retry, log=say)
    try:
        # CPU: one compute thread per call, and ``threads`` calls at once (FrozenPass._threaded)
        session = open_session(compiled.path, threads=1 if base["device"].type == "cpu" else base["threads"],
                               providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error classes
        compiled.mark_failed(f"onnxruntime cannot load the graph: {exc}")
        raise EngineError(f"onnxruntime cannot load the compiled graph of {card.name!r} ({exc})") from None
    chosen = FrozenPass(**base, engine="onnxruntime", compiled=compiled, _session=session, _graph=module)
    if compiled.built or not check:
        chosen.validation = compiled.validation  # just validated on these very items (or no items given)
        return chosen
    names = output_names(base["features"])
    reference = _concat([probe._run(feeds_as_tensors(b)) for b in batches])
    actual = _concat([chosen._run(feeds_as_tensors(b)) for b in batches])
    chosen.validation = {**compare_outputs(reference, actual, names),
                         "batches": [int(next(iter(b.values())).shape[0]) for b in batches]}
    if not chosen.validation["passed"]:
        reason = (f"onnxruntime's outputs differ from PyTorch's on {len(sample)} of the data's items (max abs diff "
                  f"{chosen.validation['max_abs_diff']:.3g})")
        compiled.mark_failed(reason)
        raise EngineError(f"model {card.name!r}: {reason}")
    return chosen


def _encoded_batches(torch_pass: FrozenPass, items: Sequence[Any]) -> list[dict[str, Any]]:
    """``items`` through the pass's own loader, as numpy feeds: one batch of 1, one of the rest."""
    from zoo.batches import make_loader
    from zoo.frozen.graph import input_names

    names = input_names(torch_pass.backbone.card.modality)
    groups = [list(items[:1]), list(items[1:])] if len(items) > 1 else [list(items)]
    batches = []
    for group in groups:
        loader = make_loader(torch_pass.backbone, group, [0] * len(group), batch_size=len(group), workers=0)
        inputs, _ = next(iter(loader))
        tensors = [inputs[n] for n in names] if isinstance(inputs, dict) else [inputs]
        batches.append({n: t.numpy() for n, t in zip(names, tensors)})
    return batches


def feeds_as_tensors(feeds: dict[str, Any]) -> Any:
    """Numpy feeds back into the loader's form (a tensor for images, a dict of tensors for text)."""
    import torch

    if "pixel_values" in feeds:
        return torch.from_numpy(feeds["pixel_values"])
    return {k: torch.from_numpy(v) for k, v in feeds.items()}


def _concat(parts: list[list[Any]]) -> list[Any]:
    import numpy as np

    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def _choose_autocast(chosen: FrozenPass, check: Sequence[Any] | None, say: Callable[[str], None]) -> None:
    """CUDA: autocast in bf16 where supported (else fp16) when it stays within cosine 0.999 of fp32."""
    import torch

    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if not check:
        chosen.autocast = dtype
        return
    from zoo.frozen.compiled import compare_outputs
    from zoo.frozen.graph import output_names

    with torch.no_grad():
        batches = [feeds_as_tensors(b) for b in _encoded_batches(chosen, list(check))]
        reference = _concat([chosen._run(b) for b in batches])
        chosen.autocast = dtype
        actual = _concat([chosen._run(b) for b in batches])
    chosen.validation = compare_outputs(reference, actual, output_names(chosen.features))
    if chosen.validation["cosine_min"] < AUTOCAST_MIN_COSINE:
        chosen.autocast = None
        chosen.note = (f"autocast ({dtype}) moved the features too far from fp32 (cosine "
                       f"{chosen.validation['cosine_min']:.5f}); running in fp32")
        say(f"frozen pass: {chosen.note}")
