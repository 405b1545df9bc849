"""Which engine runs a frozen pass, checked against PyTorch before it is used: :func:`frozen_pass`.

Every place where zoo runs a backbone without training it (stage-1 features of ``zoo finetune``,
``zoo embed``, ``zoo fewshot``, ``zoo search`` queries, ``zoo.load(..., engine=...)``) gets its pass here:

- ``engine="auto"`` on CPU: the cut backbone compiled to ONNX (:mod:`zoo.frozen.compiled`) in
  onnxruntime, checked against PyTorch on a few of the caller's own items before the pass; if
  onnxruntime is missing, the model cannot be compiled, or the outputs differ, PyTorch eager with
  one line saying why (a failure is remembered, so it is not retried on every run).
- ``engine="auto"`` on CUDA: PyTorch with autocast (bf16 where the GPU supports it, else fp16)
  and channels_last images, checked against fp32 on the same items (cosine >= 0.999, else fp32).
  onnxruntime-gpu's CUDA provider is ``engine="onnxruntime"``; which of the two is faster is
  measured by bench/frozen_forward_cuda.py.
- ``engine="torch"``: PyTorch eager; ``engine="onnxruntime"``: onnxruntime or an error saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from zoo.errors import EngineError, ZooError
from zoo.frozen.engines import ENGINES
from zoo.frozen.passes import FrozenPass, in_eval_mode, spread

__all__ = ["frozen_pass", "LazyPass", "feature_precision", "ENGINES", "feeds_as_tensors"]

#: Items of the caller's data each onnxruntime pass is checked on before it runs (one batch of 1
#: and one of the rest: the dynamic batch axis at two sizes).
CHECK_ITEMS = 6
#: Least cosine similarity to fp32 for CUDA autocast features to be used instead of fp32 ones.
AUTOCAST_MIN_COSINE = 0.999


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

    ``check``: the caller's items (a few, spread over them, are used); the onnxruntime (or CUDA
    autocast) pass is compared with PyTorch fp32 on them before use, and the result recorded.
    Without them, generated inputs stand in when the graph is compiled or autocast is tried, and a
    cached graph's validation at build stands. ``fetched=None`` (random or changed weights) always
    runs PyTorch: only a pull's hashes identify weights. ``features``: pooled intermediate
    features as extra outputs (the backbone must be loaded with ``features=[card.embedding.node,
    *features]``). ``log``: where the one-line notes go (default: stderr).
    """
    import torch

    from zoo.threads import available_cores, thread_budget

    if engine not in ENGINES:
        raise ZooError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    say = log or _stderr
    card = backbone.card
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    images = card.modality == "image"
    sample = spread(list(check), CHECK_ITEMS) if check else None
    budget = thread_budget(workers, decoding=images)
    torch_base = dict(backbone=backbone, device=device, workers=budget.workers, threads=threads or budget.threads,
                      features=tuple(features), channels_last=images if channels_last is None else channels_last)
    if engine == "torch" or (engine == "auto" and device.type == "cuda"):
        chosen = FrozenPass(**torch_base, engine="torch")
        if engine == "auto":  # on CUDA
            with in_eval_mode(backbone):
                _choose_autocast(chosen, sample, say)
        return chosen
    # onnxruntime on CPU starts no loader workers: its threads decode (FrozenPass._threaded)
    onnx_base = {**torch_base, "workers": 0, "threads": threads or (available_cores() if device.type == "cpu"
                                                                     else budget.threads)}
    try:
        with in_eval_mode(backbone):  # tracing and checking run the network in eval mode
            return _onnx_pass(onnx_base, fetched, sample, retry=engine == "onnxruntime", say=say)
    except EngineError as exc:
        if engine == "onnxruntime":
            raise
        note = f"PyTorch eager, not onnxruntime: {exc}"
        say(f"frozen pass: {note}")
        return FrozenPass(**torch_base, engine="torch", note=note)


class LazyPass:
    """:func:`frozen_pass` with these arguments, built on the first call and kept: hand it to
    :func:`zoo.frozen.features.cached_embeddings`, which calls it only on a cache miss."""

    def __init__(self, backbone: Any, fetched: Any, **options: Any) -> None:
        self.backbone, self.fetched, self.options = backbone, fetched, options
        self.made: FrozenPass | None = None

    def __call__(self) -> FrozenPass:
        if self.made is None:
            self.made = frozen_pass(self.backbone, self.fetched, **self.options)
        return self.made

    @property
    def precision(self) -> str:
        """What the pass will compute in, known before it is built (the feature cache's key needs it)."""
        return feature_precision(self.options.get("engine", "auto"), self.options.get("device")
                                 or next(self.backbone.parameters()).device)


def feature_precision(engine: str, device: Any) -> str:
    """The arithmetic a pass of ``engine`` on ``device`` computes in, for the feature cache's key:
    ``fp32`` (onnxruntime and PyTorch, validated equal) or ``autocast`` (CUDA's auto, which differs
    from fp32 by up to cosine 0.999 and so keeps features of its own)."""
    import torch

    kind = torch.device(device).type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    return "autocast" if engine == "auto" and kind == "cuda" else "fp32"


def _stderr(text: str) -> None:
    import sys

    print(text, file=sys.stderr, flush=True)


def _onnx_pass(base: dict[str, Any], fetched: Any, sample: list[Any] | None, *, retry: bool,
               say: Callable[[str], None]) -> FrozenPass:
    """The onnxruntime pass: the compiled graph (built, or read from the cache) checked against
    PyTorch before its first use in this process (:func:`_checked`); a cached graph whose outputs
    differ is rebuilt once, and a rebuilt one that still differs is refused (remembered)."""
    backbone = base["backbone"]
    card = backbone.card
    onnxruntime = _onnxruntime()
    if fetched is None:
        raise EngineError(f"model {card.name!r} has no pulled weights to identify it (random weights?)")
    from zoo.frozen.compiled import compile_graph, open_session
    from zoo.samples import generated_items

    device = base["device"]
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise EngineError("onnxruntime has no CUDA provider here (install 'zoo[gpu]': onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    # Traced and checked against PyTorch on the CPU: the graph is the same for every provider.
    probe = FrozenPass(**{**base, "device": _cpu(), "channels_last": False}, engine="torch")
    moved = device.type != "cpu"
    if moved:
        backbone.cpu()
    try:
        batches = _encoded_batches(probe, sample or generated_items(card, CHECK_ITEMS, seed=3))

        def validate(session: Any) -> dict[str, Any]:
            return _compare(probe, FrozenPass(**{**base, "device": _cpu()}, engine="onnxruntime", _session=session),
                            batches)

        def compiled_now(rebuild: bool = False) -> Any:
            return compile_graph(probe._torch_graph(), card, fetched, features=base["features"], feeds=batches[0],
                                 cut=getattr(backbone, "cut", None), validate=validate, retry=retry or rebuild,
                                 rebuild=rebuild, log=say)

        def session_of(compiled: Any) -> Any:
            try:
                # CPU: one compute thread per call, and ``threads`` calls at once (FrozenPass._threaded)
                return open_session(compiled.path, threads=1 if device.type == "cpu" else base["threads"],
                                    providers=providers, sha256=compiled.record.get("sha256"))
            except EngineError:
                raise
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own error classes
                raise EngineError(f"onnxruntime cannot load the compiled graph of {card.name!r} ({exc})") from None

        compiled = compiled_now()
        chosen = FrozenPass(**base, engine="onnxruntime", compiled=compiled, _session=session_of(compiled))
        chosen.validation = _checked(probe, chosen, batches, sample is not None)
        if not chosen.validation["passed"] and not compiled.built:
            say(f"the cached engine {compiled.path.parent} gives other outputs than PyTorch (max abs diff "
                f"{chosen.validation['max_abs_diff']:.3g}): rebuilding it")
            compiled = compiled_now(rebuild=True)
            chosen = FrozenPass(**base, engine="onnxruntime", compiled=compiled, _session=session_of(compiled))
            chosen.validation = _checked(probe, chosen, batches, sample is not None)
    finally:
        if moved:
            backbone.to(device)
    if not chosen.validation["passed"]:
        what = f"on {len(sample)} of the data's items" if sample else "on generated inputs"
        reason = (f"onnxruntime's outputs differ from PyTorch's {what} (max abs diff "
                  f"{chosen.validation['max_abs_diff']:.3g})")
        compiled.mark_failed(reason)
        raise EngineError(f"model {card.name!r}: {reason}")
    return chosen


#: Graphs already checked against PyTorch in this process on generated inputs, by graph sha256:
#: a second pass of the same engine (``zoo embed`` of several folders) is not checked again.
_CHECKED: dict[str, dict[str, Any]] = {}


def _checked(reference: FrozenPass, candidate: FrozenPass, batches: Sequence[dict[str, Any]],
             caller_items: bool) -> dict[str, Any]:
    """``candidate`` (onnxruntime) against ``reference`` (PyTorch) before its first use in this
    process, whatever the entry point: on the caller's items when it gave some (their own check,
    every time), else on generated inputs, once per graph per process. A graph built by this call
    was checked just now by :func:`zoo.frozen.compiled.compile_graph`, on the same batches.

    The check is what protects a pass from a cached graph that was replaced by another valid one
    (its recorded sha256 edited to match): the hash only proves the file is the one recorded. It
    costs one PyTorch forward of the check items (efficientnet_lite0, 6 generated images: about 60
    ms on 2 cores, bench/frozen_forward.py --check)."""
    compiled = candidate.compiled
    if compiled.built:
        _CHECKED[compiled.record.get("sha256", "")] = compiled.validation
        return compiled.validation
    memo = None if caller_items else compiled.record.get("sha256", "")
    if memo is not None and memo in _CHECKED:
        return _CHECKED[memo]
    validation = _compare(reference, candidate, batches)
    if memo is not None and validation["passed"]:
        _CHECKED[memo] = validation
    return validation


def _onnxruntime() -> Any:
    """onnxruntime, or an :class:`EngineError` (which ``engine="auto"`` falls back on) with the
    runtime's install hint when it is missing or installed but broken."""
    from zoo.runtime import onnxruntime_module

    try:
        return onnxruntime_module()
    except ZooError as exc:
        raise EngineError(str(exc)) from None


def _cpu() -> Any:
    import torch

    return torch.device("cpu")


def _compare(reference: FrozenPass, candidate: FrozenPass, batches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Both passes on the same encoded batches: elementwise (zoo export's tolerances) and cosine."""
    from zoo.frozen.compiled import compare_outputs
    from zoo.frozen.graph import output_names

    expected = _concat([reference._run(feeds_as_tensors(b)) for b in batches])
    got = _concat([candidate._run(feeds_as_tensors(b)) for b in batches])
    return {**compare_outputs(expected, got, output_names(reference.features)),
            "batches": [int(next(iter(b.values())).shape[0]) for b in batches]}


def _encoded_batches(torch_pass: FrozenPass, items: Sequence[Any]) -> list[dict[str, Any]]:
    """``items`` as the pass's loader encodes them, as numpy feeds: one batch of 1, one of the rest."""
    from zoo.batches import encode_items
    from zoo.frozen.graph import input_names

    names = input_names(torch_pass.backbone.card.modality)
    groups = [list(items[:1]), list(items[1:])] if len(items) > 1 else [list(items)]
    batches = []
    for group in groups:
        inputs = encode_items(torch_pass.backbone, group)
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


def _choose_autocast(chosen: FrozenPass, sample: list[Any] | None, say: Callable[[str], None]) -> None:
    """CUDA: autocast in bf16 where supported (else fp16) when it stays within cosine 0.999 of fp32
    on the caller's items (or generated ones)."""
    import copy

    import torch

    from zoo.samples import generated_items

    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    batches = _encoded_batches(chosen, sample or generated_items(chosen.backbone.card, CHECK_ITEMS, seed=3))
    candidate = copy.copy(chosen)
    candidate.autocast = dtype
    chosen.validation = _compare(chosen, candidate, batches)
    if chosen.validation["cosine_min"] >= AUTOCAST_MIN_COSINE:
        chosen.autocast = dtype
        return
    chosen.note = (f"autocast ({dtype}) moved the features too far from fp32 (cosine "
                   f"{chosen.validation['cosine_min']:.5f}); running in fp32")
    say(f"frozen pass: {chosen.note}")
