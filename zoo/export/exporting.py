"""``zoo.export``: a run or a backbone to one validated ONNX file (fp32, or int8 checked against fp32).

Everything happens in a temporary folder beside the output; the files move into place only when
every check passed, sidecars first (external data, tokenizer) and the graph last, each atomically.
A failed or refused export leaves no file behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo.__about__ import __version__
from zoo.atomic import ensure_folder
from zoo.errors import STORAGE_ERRNOS, StorageError, ZooError, storage_error
from zoo.modelinfo import ModelInfo
from zoo.onnxgraph.onnxfile import EXTERNAL_DATA_THRESHOLD, OPSET
from zoo.export.quantization import TEXT_OP_TYPES, QuantSettings
from zoo.onnxgraph.validation import ATOL, RTOL

__all__ = ["export", "ExportResult", "Built", "build_fp32", "build_int8", "default_output"]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and the evidence behind it."""

    path: Path
    files: tuple[Path, ...]  # the graph, then its sidecars (external data, tokenizer)
    info: ModelInfo
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.exists())

    def summary(self) -> list[str]:
        """Human-readable lines: what was exported, how it was validated, int8's evidence."""
        from zoo.render import format_bytes

        info, source = self.info, self.info.source
        folder = source.get("run") or source.get("fewshot")
        count = len(info.labels)
        outputs = f"{count} target{'s' * (count != 1)}" if info.kind == "regression" else f"{count} classes"
        what = (f"{'run' if 'run' in source else 'few-shot classifier'} {folder} ({info.model} + "
                f"{source.get('head', '')} head, {outputs})" if folder else f"{info.model} ({info.kind})")
        lines = [f"exported {what} -> {self.path} ({format_bytes(self.size)}, {info.precision}) in {self.seconds:.0f}s"]
        v = info.validation
        lines.append(f"validated against PyTorch on {v['samples']} samples ({v['inputs']}), batches "
                     f"{'+'.join(str(b) for b in v['batches'])}: max abs diff {v['max_abs_diff']:.2g}, "
                     f"max rel diff {v['max_rel_diff']:.2g} (atol {v['atol']:g}, rtol {v['rtol']:g})")
        q = info.quantization
        if q:
            e = q["evaluation"]
            if "fp32_metric" in e:
                lines.append(f"int8 on {e['samples']} samples ({e['set']}): {e.get('metric', 'mAP')} "
                             f"{e['fp32_metric']:.3f} (fp32) -> "
                             f"{e['int8_metric']:.3f} (int8), drop {e['drop_points']:.1f} points (max {q['max_drop']:g})")
            elif "growth_percent_of_std" in e:
                lines.append(f"int8 on {e['samples']} samples ({e['set']}): RMSE {e['fp32_rmse']} (fp32) -> "
                             f"{e['int8_rmse']} (int8), growth {e['growth_percent_of_std']:.2f}% of the target's "
                             f"std (max {q['max_drop']:g}%)")
            elif "fp32_accuracy" in e:
                lines.append(f"int8 on {e['samples']} samples ({e['set']}): accuracy {e['fp32_accuracy']:.3f} (fp32) -> "
                             f"{e['int8_accuracy']:.3f} (int8), drop {e['drop_points']:.1f} points (max "
                             f"{q['max_drop']:g}), top-1 agreement {e['top1_agreement']:.3f}")
            else:
                lines.append(f"int8 on {e['samples']} samples ({e['set']}): cosine similarity to fp32 mean "
                             f"{e['cosine_mean']:.4f}, min {e['cosine_min']:.4f} (no labels: no accuracy check)")
        answers = v.get("answers")
        if answers and "objects" in answers:  # an instance segmenter's objects
            lines.append(f"objects equal PyTorch's on {answers['pictures']} pictures ({answers['objects']} objects): "
                         f"boxes within {answers['max_box_diff']:.2g} px, scores within "
                         f"{answers['max_score_diff']:.2g}, the same object on at least "
                         f"{answers['worst_agreement']:.2%} of each picture's pixels")
        elif answers and "worst_agreement" in answers:  # a segmenter's masks
            lines.append(f"masks equal PyTorch's on {answers['pictures']} pictures: the same class on at least "
                         f"{answers['worst_agreement']:.2%} of each picture's pixels (mean {answers['mean_agreement']:.2%})")
        elif answers:
            lines.append(f"kept detections equal PyTorch's on {answers['pictures']} pictures ({answers['detections']} "
                         f"boxes): boxes within {answers['max_box_diff']:.2g} px, scores within "
                         f"{answers['max_score_diff']:.2g}")
        if len(self.files) > 1:
            lines.append("files: " + ", ".join(f.name for f in self.files) + " (keep them together)")
        lines += [f"note: {n}" for n in self.notes]
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "files": [str(f) for f in self.files], "size": self.size,
                "seconds": round(self.seconds, 2), "notes": list(self.notes), **self.info.to_dict()}


@dataclass(frozen=True)
class Built:
    """One validated model in a work folder."""

    path: Path
    info: ModelInfo


def default_output(prepared: Any, quantize: str | None) -> Path:
    """A run or few-shot classifier exports into its folder (``model.onnx``); a backbone into the
    current folder (``NAME.onnx``)."""
    suffix = ".int8.onnx" if quantize else ".onnx"
    if prepared.home is not None:
        return prepared.home / f"model{suffix}"
    return Path(prepared.name + suffix)


def _output(out: str | Path | None, prepared: Any, quantize: str | None) -> Path:
    if out is None:
        return default_output(prepared, quantize)
    path = Path(out)
    if path.is_dir():
        return path / ("model.int8.onnx" if quantize else "model.onnx")
    if path.suffix.lower() != ".onnx":
        raise ZooError(f"{path}: the output file should end in .onnx (e.g. -o model.onnx)")
    return path


def _encoder(info: ModelInfo, folder: Path, where: str) -> Any:
    from zoo.runtime import Preprocessor

    return Preprocessor(info, folder, where=where)


def build_fp32(prepared: Any, folder: Path, name: str, *, atol: float = ATOL, rtol: float = RTOL,
               opset: int = OPSET, threshold: int = EXTERNAL_DATA_THRESHOLD,
               say: Callable[[str], None] = lambda _: None) -> Built:
    """Trace, save with metadata, check, and validate against PyTorch: ``folder/name`` (+ sidecars)."""
    import onnx

    from zoo.onnxgraph.onnxfile import save, trace, write_metadata
    from zoo.export.prepare import sha256_file
    from zoo.onnxgraph.static_dims import fold_static_dims
    from zoo.onnxgraph.validation import validate
    from zoo.runtime import open_model

    folder.mkdir(parents=True, exist_ok=True)
    preprocessing = dict(prepared.preprocessing)
    if prepared.tokenizer is not None:
        tokenizer_file = folder / (Path(name).stem + ".tokenizer.json")
        # written by Python, not tokenizers' save(): a full disk is then an OSError, not a bare Exception
        tokenizer_file.write_text(prepared.tokenizer.to_str(pretty=True), encoding="utf-8")
        preprocessing.update(tokenizer=tokenizer_file.name, tokenizer_sha256=sha256_file(tokenizer_file))
    info = ModelInfo(kind=prepared.kind, modality=prepared.modality, inputs=prepared.input_names,
                     output=prepared.output_name, labels=prepared.labels, preprocessing=preprocessing,
                     source=prepared.source, weights=prepared.weights, version=__version__)
    encode = _encoder(info, folder, name)
    if prepared.reference_encode is not None:
        _check_tokenizer(prepared, encode)
    say(f"tracing {info.model} to ONNX (opset {opset})")
    raw = folder / "traced" / name
    raw.parent.mkdir()
    trace(prepared.module, encode(prepared.samples[:2]), prepared.input_names, prepared.output_name, raw,
          modality=prepared.modality, opset=opset)
    path = folder / name
    graph = onnx.load(str(raw))
    fold_static_dims(graph)
    save(graph, path, info, threshold=threshold)
    shutil.rmtree(raw.parent)
    say(f"validating onnxruntime against PyTorch on {len(prepared.samples)} samples ({prepared.samples_from})")
    model = open_model(path, provider="cpu")
    validation = validate(model.session, prepared.module, model.encode, prepared.samples, prepared.input_names,
                          atol=atol, rtol=rtol, inputs=prepared.samples_from, scale=prepared.source.get("scale"))
    info = replace(info, validation=validation.to_dict())
    if prepared.check is not None:  # a dense task's answers as a person sees them (a detector's kept boxes)
        say("checking the runtime's kept answers against PyTorch's")
        info = replace(info, validation={**info.validation, "answers": prepared.check(model)})
    write_metadata(path, info)
    return Built(path, info)


def _check_tokenizer(prepared: Any, encode: Any) -> None:
    """The tokenizer file must give the trained model's tokens, or predictions would silently drift."""
    import numpy as np

    texts = [s for s in prepared.samples if isinstance(s, str)]
    if not texts:
        return
    ours, theirs = encode(texts), prepared.reference_encode(texts)
    for key in ("input_ids", "attention_mask"):
        if ours[key].shape != theirs[key].shape or not np.array_equal(ours[key], theirs[key]):
            raise ZooError(f"model {prepared.card.name!r}: its tokenizer.json does not reproduce the model's tokenizer "
                           f"({key} differ on the samples); this tokenizer cannot be exported for the runtime")


def build_int8(prepared: Any, fp32: Built, folder: Path, *, max_drop: float | None = None,
               settings: QuantSettings = QuantSettings(), say: Callable[[str], None] = lambda _: None) -> Built:
    """Quantize a validated fp32 model, compare it with fp32, refuse it beyond ``max_drop`` points."""
    from zoo.onnxgraph.onnxfile import check, data_files
    from zoo.export.quantization import calibration_batches, compare_int8, head_nodes, quantize_int8
    from zoo.runtime import open_model

    if not prepared.calibration:
        data = "the few-shot classifier's support set" if "fewshot" in prepared.source else "the run's training data"
        raise ZooError(f"{prepared.home or prepared.card.name}: int8 quantization needs calibration samples from {data}, which cannot be read; "
                       f"restore that data, or export without --quantize")
    if settings.op_types is None and prepared.modality == "text":
        settings = replace(settings, op_types=TEXT_OP_TYPES)
    folder.mkdir(parents=True, exist_ok=True)
    for sidecar in fp32.path.parent.glob(Path(fp32.path.name).stem + ".tokenizer.json"):
        shutil.copy2(sidecar, folder / sidecar.name)
    path = folder / fp32.path.name
    encode = _encoder(fp32.info, fp32.path.parent, fp32.path.name)
    say(f"quantizing to int8 (static QDQ), calibrated on {len(prepared.calibration)} samples "
        f"({prepared.calibration_from})")
    if getattr(prepared.module, "one_at_a_time", False):
        # the graph takes one picture: calibrated so; and only its convolutions are quantized (an
        # instance segmenter's: onnxruntime 1.32 crashed, SIGSEGV, running it with the box head's
        # Gemm and the rest quantized too)
        settings = replace(settings, batch=1, op_types=("Conv",))
    batches = calibration_batches(prepared.calibration, encode, settings.batch,
                                  pad_id=int(fp32.info.preprocessing.get("pad_id", 0)))
    kept = quantize_int8(fp32.path, path, batches, settings=settings, external_data=bool(data_files(fp32.path)),
                         exclude=head_nodes(fp32.path))
    check(path)
    items, labels = prepared.evaluation or (prepared.samples, None)
    where = prepared.evaluation_from if prepared.evaluation else prepared.samples_from
    say(f"comparing fp32 and int8 on {len(items)} samples ({where})")
    if prepared.judge is not None:  # judged by the task's own metric (a detector's mAP), in points
        return _judged_int8(prepared, fp32, path, kept, settings, where, len(items), max_drop)
    fp32_out = open_model(fp32.path, provider="cpu").outputs(items)
    int8_out = open_model(path, provider="cpu").outputs(items)
    if prepared.kind == "regression":  # judged by the task's own yardstick: RMSE against the target's spread
        return _regression_int8(prepared, fp32, path, kept, settings, where, fp32_out, int8_out, labels, max_drop)
    evaluation = {"set": where, **compare_int8(fp32_out, int8_out, labels)}
    max_drop = 1.0 if max_drop is None else max_drop
    drop = evaluation.get("drop_points")
    if drop is not None and max_drop is not None and drop > max_drop + 1e-9:
        count = evaluation["samples"]
        larger = ("more support examples" if "fewshot" in prepared.source
                  else "a larger test set (`zoo finetune --test DATA`)")
        coarse = (f"; with {count} samples one changed answer is {100 / count:.1f} points, so {larger} would "
                  f"measure the drop more finely") if count < 100 else ""
        raise ZooError(f"int8 loses {drop:.1f} points of accuracy on {where} ({evaluation['fp32_accuracy']:.3f} fp32 "
                       f"-> {evaluation['int8_accuracy']:.3f} int8, {count} samples), more than "
                       f"--max-drop {max_drop:g}{coarse}; nothing was written. Export fp32 (without --quantize), or "
                       f"accept the loss with a larger --max-drop")
    return _kept_int8(prepared, fp32, path, kept, settings, evaluation, max_drop)


def _kept_int8(prepared: Any, fp32: Built, path: Path, kept: Any, settings: QuantSettings,
               evaluation: dict[str, Any], max_drop: float, **more: Any) -> Built:
    """The int8 graph that passed its task's judgement: its metadata records the quantizer's
    settings, the nodes kept fp32, the calibration, the judgement and the limit it met."""
    from zoo.onnxgraph.onnxfile import write_metadata

    record = {**settings.to_dict(), "kept_fp32": kept, "calibration": {"samples": len(prepared.calibration),
                                                                       "from": prepared.calibration_from},
              "evaluation": evaluation, "max_drop": max_drop, **more}
    info = replace(fp32.info, quantization=record)
    write_metadata(path, info)
    return Built(path, info)


def _judged_int8(prepared: Any, fp32: Built, path: Path, kept: Any, settings: QuantSettings, where: str, count: int,
                 max_drop: float | None) -> Built:
    """A dense task's int8 graph kept only when its metric on the held-out data (a detector's mAP,
    a segmenter's mIoU) falls by at most ``max_drop`` points (default 1)."""
    from zoo.runtime import open_model

    limit = 1.0 if max_drop is None else max_drop
    before, after = prepared.judge(open_model(fp32.path, provider="cpu")), prepared.judge(open_model(path, provider="cpu"))
    drop = 100 * (before - after)
    evaluation = {"set": where, "samples": count, "metric": prepared.judge_metric, "fp32_metric": round(before, 6),
                  "int8_metric": round(after, 6), "drop_points": round(drop, 4)}
    if drop > limit + 1e-9:
        raise ZooError(f"int8 loses {drop:.1f} points of {prepared.judge_metric} on {where} "
                       f"({before:.3f} fp32 -> {after:.3f} int8, "
                       f"{count} pictures), more than --max-drop {limit:g}; nothing was written. Export fp32 (without "
                       f"--quantize), or accept the loss with a larger --max-drop")
    return _kept_int8(prepared, fp32, path, kept, settings, evaluation, limit)


def _regression_int8(prepared: Any, fp32: Built, path: Path, kept: Any, settings: QuantSettings, where: str,
                     fp32_out: Any, int8_out: Any, truth: Any, max_growth: float | None) -> Built:
    """A regression's int8 graph kept only when its held-out RMSE grows by at most ``max_growth``
    percent of each target's standard deviation (default :data:`REGRESSION_MAX_GROWTH`)."""
    from zoo.export.quantization import REGRESSION_MAX_GROWTH, compare_regression

    limit = REGRESSION_MAX_GROWTH if max_growth is None else max_growth
    evaluation = {"set": where, **compare_regression(fp32_out, int8_out, truth, prepared.source["scale"],
                                                     prepared.labels)}
    growth = evaluation.get("growth_percent_of_std")
    if growth is not None and growth > limit + 1e-9:
        raise ZooError(f"int8 makes the RMSE on {where} grow by {growth:.2f}% of the target's standard deviation "
                       f"(fp32 {evaluation['fp32_rmse']}, int8 {evaluation['int8_rmse']}), more than --max-drop "
                       f"{limit:g}%; nothing was written. Export fp32 (without --quantize), or accept the loss with a "
                       f"larger --max-drop")
    return _kept_int8(prepared, fp32, path, kept, settings, evaluation, limit,
                      max_drop_unit="percent of the target's std")


def _place(built: Built, out: Path) -> tuple[Path, ...]:
    """Sidecars first, the graph last, each flushed to disk and renamed over its final name:
    readers never see half a model. The work folder is beside ``out`` (same file system), so the
    files move without a second copy, which a nearly full disk might not hold."""
    from zoo.onnxgraph.onnxfile import data_files

    sidecars = data_files(built.path)
    tokenizer = built.info.preprocessing.get("tokenizer")
    if tokenizer:
        sidecars.append(built.path.parent / tokenizer)
    targets = [(s, out.parent / s.name) for s in sidecars] + [(built.path, out)]
    for source, _ in targets:
        descriptor = os.open(source, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    stale = out.with_name(out.name + ".data")
    if stale.exists() and stale not in [t for _, t in targets]:
        stale.unlink()  # an earlier export of this name used external data; this one does not
    for source, target in targets:
        os.replace(source, target)
    return (out, *(t for _, t in targets[:-1]))


def _companion(prepared: Any, tower: str, companion: Any, path: Path, work: Path, **options: Any
               ) -> tuple[Path, Built]:
    """An image-text model's other tower (its text tower) built and validated like the main file,
    in fp32, for ``path``'s neighbour ``NAME.text.onnx``; said in the export's notes."""
    stem = path.name.removesuffix(".onnx").removesuffix(".int8")
    beside = path.with_name(f"{stem}.{tower}.onnx")
    built = build_fp32(companion, work / tower, beside.name, **options)
    v = built.info.validation
    prepared.notes.append(f"its {tower} tower: {beside.name} (fp32, validated against PyTorch on {v['samples']} "
                          f"samples, max abs diff {v['max_abs_diff']:.2g}), which embeds {tower} queries in the same "
                          f"space for `zoo search --onnx`")
    return beside, built


#: What a user can do when the output's folder cannot hold the export.
_OUT_FIX = "choose another --out"


def _unwritable(exc: OSError, path: Path) -> OSError:
    """A write of the export that failed, as one line naming ``path`` (the output, or its folder)
    and the fix; nothing was left at the output's path."""
    return exc if isinstance(exc, StorageError) else storage_error(exc, path, _OUT_FIX)


def export(
    source: str | Path,
    out: str | Path | None = None,
    *,
    quantize: str | None = None,
    max_drop: float | None = None,
    atol: float = ATOL,
    rtol: float = RTOL,
    opset: int = OPSET,
    pretrained: bool = True,
    samples: int = 16,
    calibration: int = 128,
    settings: QuantSettings = QuantSettings(),
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
    registry_files: Sequence[str | Path] = (),
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a fine-tuned run folder, a few-shot classifier folder, or a registry model's embedding,
    to a validated ONNX file.

    - A run or a few-shot classifier gives probabilities over its labels; a model name gives its embedding
      (``pretrained=False``: random weights, for tests and speed benchmarks).
    - onnxruntime's outputs are compared with PyTorch's on ``samples`` real inputs (the run's
      data, or inputs generated from the card's spec); beyond ``atol``/``rtol`` the export fails.
    - ``quantize="int8"``: static QDQ quantization calibrated on up to ``calibration`` training
      samples (the head and output softmax stay fp32), then fp32 vs int8 accuracy on the run's
      held-out data (validation and test sets; a few-shot folder: its support set); more than
      ``max_drop`` points lost refuses the export (default 1; a regression is judged by its RMSE,
      refused when it grows by more than ``max_drop`` percent of the target's standard deviation,
      default 2).
    - ``out`` defaults to ``FOLDER/model.onnx`` for a run or few-shot classifier and ``./NAME.onnx`` for a model; weights
      over ``external_data_threshold`` bytes go to ``OUT.data`` beside it.
    """
    from zoo.export.prepare import prepare
    from zoo.runtime import onnxruntime_module

    started = time.perf_counter()
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    onnxruntime_module()  # the export is validated on onnxruntime: say so before any work
    if quantize not in (None, "int8"):
        raise ZooError(f"unknown quantization {quantize!r}: the only one is 'int8'")
    if max_drop is not None and max_drop < 0:
        raise ZooError(f"--max-drop is how much int8 may lose (accuracy points; for a regression, RMSE growth in "
                       f"percent of the target's spread), >= 0, not {max_drop}")
    if samples < 1:
        raise ZooError(f"validation needs at least one sample, not {samples}")
    prepared = prepare(source, pretrained=pretrained, samples=samples, calibration=calibration,
                       registry_files=registry_files)
    path = _output(out, prepared, quantize)
    try:
        ensure_folder(path.parent, _OUT_FIX)
        work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise _unwritable(exc, path.parent) from None
    try:
        built = build_fp32(prepared, work / "fp32", path.name, atol=atol, rtol=rtol, opset=opset,
                           threshold=external_data_threshold, say=say)
        if quantize:
            built = build_int8(prepared, built, work / "int8", max_drop=max_drop, settings=settings, say=say)
        towers = [_companion(prepared, tower, companion, path, work, atol=atol, rtol=rtol, opset=opset,
                             threshold=external_data_threshold, say=say) for tower, companion in prepared.companions]
        files = _place(built, path) + tuple(f for beside, done in towers for f in _place(done, beside))
    except OSError as exc:  # every file is written in the work folder first: the output's place is at fault
        if isinstance(exc, StorageError) or exc.errno not in STORAGE_ERRNOS:
            raise
        raise _unwritable(exc, path) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(path=path, files=files, info=built.info, seconds=time.perf_counter() - started,
                        notes=tuple(prepared.notes))
