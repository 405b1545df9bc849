"""Which engine runs a frozen pass, checked against PyTorch before it is used: :func:`frozen_pass`.

Every place where zoo runs a backbone without training it (stage-1 features of ``zoo finetune``,
``zoo embed``, ``zoo fewshot``, ``zoo search`` queries, the layer probe) gets its pass here:

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
from zoo.frozen.passes import FrozenPass

__all__ = ["frozen_pass", "ENGINES", "feeds_as_tensors"]

ENGINES = ("auto", "torch", "onnxruntime")

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
