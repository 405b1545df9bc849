"""A cut backbone compiled to ONNX once, cached under ``$ZOO_HOME/engines``, checked at every use.

The key covers everything that changes the graph or its numbers: the model, its weight files'
sha256, the cut point and requested features, the input spec, and the zoo, torch, onnx and
onnxruntime versions with the opset. One folder per key holds ``graph.onnx`` and ``engine.json``
(the identity, the graph's sha256 and the validation against PyTorch).

- Built in a temp folder beside it and renamed into place with ``engine.json`` already inside, so
  a kill mid-build leaves nothing that is ever used (the leftovers are removed by the next build).
- Built under an inter-process lock: two processes needing the same engine build it once; the
  other waits and uses it.
- Before use, the graph file is hashed against ``engine.json``; a damaged or edited file is
  rebuilt, never loaded.
- A failure (the model does not trace, onnxruntime's outputs differ from PyTorch's) is written
  to ``KEY.failed.json`` and not retried for that key: the versions are part of the key, so an
  upgrade retries, and deleting the file does too. A cache that cannot be written (no space, no
  permission) is an error too, but not the model's: it is not remembered.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.download import sha256_file
from zoo.errors import EngineError

__all__ = ["CompiledGraph", "compile_graph", "engine_identity", "engine_folder", "open_session",
           "compare_outputs"]

_FORMAT = 1
_GRAPH = "graph.onnx"
_RECORD = "engine.json"


@dataclass(frozen=True)
class CompiledGraph:
    """A validated ONNX graph of a cut backbone, at its final path."""

    path: Path
    key: str
    record: dict[str, Any]
    built: bool  # built by this call (not read from the cache)

    @property
    def validation(self) -> dict[str, Any]:
        return dict(self.record.get("validation") or {})

    def mark_failed(self, reason: str) -> None:
        """Remember that this engine failed on real data, so ``auto`` does not use it again (an explicit
        ``engine="onnxruntime"`` still may, and checks it again)."""
        import filelock

        folder = self.path.parent.parent
        try:
            with filelock.FileLock(str(folder / f"{self.key}.lock")):
                _remember(folder / f"{self.key}.failed.json", self.record.get("identity", {}), reason)
        except OSError:
            pass  # an unwritable cache: the failure is reported, just not remembered


def engine_identity(card: Any, fetched: Any, features: Sequence[str], cut: Sequence[str] | None = None
                    ) -> dict[str, Any]:
    """Everything that determines the compiled graph, as plain data (hashed into the key); ``cut``:
    the layers of a backbone cut elsewhere than the card says (``zoo.load(..., cut=...)``)."""
    import onnx
    import onnxruntime
    import torch

    from zoo.__about__ import __version__
    from zoo.onnxgraph.onnxfile import OPSET

    identity = {
        "format": _FORMAT, "model": card.name, "modality": card.modality,
        "adapter": repr(card.adapter), "plugin": _adapter_plugin(card),
        "weights": sorted(f.sha256 for f in fetched.files),
        "cut": [card.embedding.node, card.embedding.dim, card.embedding.pooling],
        "features": list(features), "input": repr(card.input),
        "versions": {"zoo": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "opset": OPSET},
    }
    if cut:  # keys of the card's own cut stay as they were
        identity["layers"] = list(cut)
    return identity


def _adapter_plugin(card: Any) -> str:
    """The plugin (and its version) whose adapter builds the network: another version may build
    another graph from the same weights."""
    from zoo.plugins import get_host

    host = get_host()
    provided = host.adapters().get(card.adapter.type)
    if provided is None:
        return "?"
    versions = {p.name: p.version for p in host.plugins()}
    return f"{provided.plugin} {versions.get(provided.plugin) or ''}".strip()


def _key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def engine_folder(card: Any, root: Path | None = None) -> Path:
    from zoo.settings import zoo_home

    return (root or zoo_home() / "engines") / card.name.replace("/", "--")


def _intact(folder: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a usable cached engine, or None when it is missing, damaged or another's."""
    try:
        record = json.loads((folder / _RECORD).read_text(encoding="utf-8"))
        if record.get("identity") != identity:
            return None
        return record if sha256_file(folder / _GRAPH)[0] == record.get("sha256") else None
    except (OSError, ValueError, AttributeError):
        return None


def open_session(path: Path, *, threads: int, providers: Sequence[str] = ("CPUExecutionProvider",),
                 sha256: str | None = None) -> Any:
    """An onnxruntime session with exactly ``threads`` compute threads.

    Spinning is off: the intra-op threads sleep between operators instead of spinning, so they do
    not take cycles from the loader processes decoding the next batch beside them (measured in
    bench/frozen_forward.py).

    ``sha256``: the graph's recorded hash; the file is then read once, hashed and given to
    onnxruntime as bytes, so the graph that runs is the one whose hash was checked (a file swapped
    between the check and the load cannot slip in).
    """
    import onnxruntime as ort

    model: Any = str(path)
    if sha256 is not None:
        model = Path(path).read_bytes()
        if hashlib.sha256(model).hexdigest() != sha256:
            raise EngineError(f"the compiled graph {path} changed since its sha256 was checked; run again to rebuild it")

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=options, providers=list(providers))


def compare_outputs(reference: Sequence[Any], actual: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    """Elementwise (zoo export's tolerances) and per-row cosine comparison of two engines' outputs."""
    import numpy as np

    from zoo.onnxgraph.validation import ATOL, RTOL, compare

    worst: dict[str, Any] = {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "cosine_min": 1.0, "passed": True,
                             "atol": ATOL, "rtol": RTOL, "outputs": list(names)}
    for ref, got in zip(reference, actual):
        result = compare(ref, got)
        ref64, got64 = np.asarray(ref, np.float64), np.asarray(got, np.float64)
        norms = np.linalg.norm(ref64, axis=1) * np.linalg.norm(got64, axis=1)
        cosine = float(np.min(np.sum(ref64 * got64, axis=1) / np.maximum(norms, 1e-30))) if len(ref64) else 1.0
        worst["max_abs_diff"] = max(worst["max_abs_diff"], result.max_abs_diff)
        worst["max_rel_diff"] = max(worst["max_rel_diff"], result.max_rel_diff)
        worst["cosine_min"] = min(worst["cosine_min"], cosine)
        worst["passed"] = worst["passed"] and result.passed
    worst["samples"] = int(len(reference[0])) if reference else 0
    return worst


def compile_graph(module: Any, card: Any, fetched: Any, *, features: Sequence[str], feeds: dict[str, Any],
                  cut: Sequence[str] | None = None,
                  validate: Callable[[Any], dict[str, Any]], retry: bool = False, rebuild: bool = False,
                  root: Path | None = None, log: Callable[[str], None] = lambda _: None) -> CompiledGraph:
    """The cached, validated ONNX graph of ``module`` (a :func:`zoo.frozen.graph.frozen_graph` on the
    CPU), built now if missing or damaged.

    ``feeds``: encoded inputs (numpy arrays by input name) to trace on. ``validate(session)``
    compares an onnxruntime session of the new graph with PyTorch and returns the record (with
    ``passed``). ``retry``: use or build it even when a failure is remembered for this key (an
    explicit ``engine="onnxruntime"``). ``rebuild``: build it again even when the cached one is
    intact by its hash (its outputs were found to differ from PyTorch's). Raises
    :class:`EngineError`. A cache that cannot be written (read-only, full, a file in the way) is
    not the model's failure: the graph is built in a temporary folder for this process instead,
    said in one line, and removed when the process ends.
    """
    import filelock

    identity = engine_identity(card, fetched, features, cut)
    key = _key(identity)
    folder = engine_folder(card, root)
    final = folder / key
    failed = folder / f"{key}.failed.json"
    if failed.is_file() and not retry:
        raise EngineError(_remembered(failed))
    record = None if rebuild else _intact(final, identity)  # the common case needs no lock
    if record is not None:
        return CompiledGraph(final / _GRAPH, key, record, built=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(folder / f"{key}.lock")):
            if failed.is_file() and not retry:  # another process failed while we waited
                raise EngineError(_remembered(failed))
            record = None if rebuild else _intact(final, identity)  # or built it
            if record is not None:
                return CompiledGraph(final / _GRAPH, key, record, built=False)
            for leftover in folder.glob(f".{key}.*"):  # a build killed midway (we hold the lock: not running)
                shutil.rmtree(leftover, ignore_errors=True)
            if final.exists():
                if not rebuild:  # a rebuild was said by its caller, with why
                    log(f"the cached engine {final} is damaged or stale (its sha256 does not match): rebuilding it")
                shutil.rmtree(final)
            work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder))
            try:
                record = _build(module, card, identity, key, feeds, validate, work, log=log)
                os.replace(work, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            failed.unlink(missing_ok=True)
    except EngineError as exc:
        _remember(failed, identity, str(exc))
        raise
    except OSError as exc:  # the cache's place, not the model: built elsewhere for now, not remembered
        log(f"the engine cache {folder} cannot be written ({exc.strerror or exc}): compiling into a temporary "
            f"folder for this run (set ZOO_HOME to a writable folder to keep it)")
        return _compile_uncached(module, card, identity, key, feeds, validate, log=log)
    except MemoryError:  # the machine, not the model: said, not remembered
        raise EngineError(f"not enough memory to compile {card.name!r} for the frozen pass") from None
    except Exception as exc:  # noqa: BLE001 - the tracer's and exporter's many error classes mean "not this model"
        _remember(failed, identity, _reason(exc))
        raise _not_compiled(card, exc) from exc
    return CompiledGraph(final / _GRAPH, key, record, built=True)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _not_compiled(card: Any, exc: BaseException) -> EngineError:
    return EngineError(f"model {card.name!r} cannot be compiled to ONNX ({_reason(exc)[:300]})")


def _compile_uncached(module: Any, card: Any, identity: dict[str, Any], key: str, feeds: dict[str, Any],
                      validate: Callable[[Any], dict[str, Any]], *, log: Callable[[str], None]) -> CompiledGraph:
    """The graph built and validated in a temporary folder (removed when the process ends): a
    read-only or full cache costs the cache, never the run's speed."""
    import atexit

    try:
        work = Path(tempfile.mkdtemp(prefix=f"zoo-engine-{key[:12]}-"))
    except OSError as exc:
        raise EngineError(f"neither the engine cache nor a temporary folder can hold the compiled graph "
                          f"({exc.strerror or exc}); set ZOO_HOME or TMPDIR to a writable folder") from None
    atexit.register(shutil.rmtree, work, True)
    try:
        record = _build(module, card, identity, key, feeds, validate, work, log=log)
    except EngineError:
        raise
    except OSError as exc:
        raise EngineError(f"the temporary folder {work} cannot hold the compiled graph ({exc.strerror or exc}); "
                          f"set TMPDIR to a folder with space") from None
    except Exception as exc:  # noqa: BLE001 - as compile_graph: the tracer's many error classes
        raise _not_compiled(card, exc) from exc
    return CompiledGraph(work / _GRAPH, key, record, built=True)


def _build(module: Any, card: Any, identity: dict[str, Any], key: str, feeds: dict[str, Any],
           validate: Callable[[Any], dict[str, Any]], work: Path, *, log: Callable[[str], None]) -> dict[str, Any]:
    import onnx

    from zoo.atomic import atomic_write_json
    from zoo.frozen.graph import input_names, output_names
    from zoo.onnxgraph.onnxfile import trace
    from zoo.onnxgraph.static_dims import fold_static_dims

    started = time.perf_counter()
    inputs, outputs = input_names(card.modality), output_names(identity["features"])
    log(f"compiling {card.name} to ONNX for the frozen pass (once; cached under {work.parent})")
    raw = work / "traced.onnx"
    trace(module, feeds, inputs, outputs, raw, modality=card.modality)
    graph = onnx.load(str(raw))
    fold_static_dims(graph)
    path = work / _GRAPH
    onnx.save_model(graph, str(path))  # weights inline: a cut backbone over 2 GiB fails here, remembered
    raw.unlink()
    onnx.checker.check_model(str(path))
    validation = validate(open_session(path, threads=1))
    if not validation["passed"]:
        raise EngineError(
            f"model {card.name!r}: onnxruntime's outputs differ from PyTorch's (max abs diff "
            f"{validation['max_abs_diff']:.3g}, max rel diff {validation['max_rel_diff']:.3g}, beyond atol "
            f"{validation['atol']:g} / rtol {validation['rtol']:g})")
    record = {"identity": identity, "key": key, "sha256": sha256_file(path)[0], "bytes": path.stat().st_size,
              "validation": validation, "inputs": list(inputs), "outputs": list(outputs),
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "seconds": round(time.perf_counter() - started, 2)}
    atomic_write_json(work / _RECORD, record)
    return record


def _remember(path: Path, identity: dict[str, Any], reason: str) -> None:
    from zoo.atomic import atomic_write_json

    if path.is_file():
        return  # remembered already (a remembered failure raised again)
    try:
        atomic_write_json(path, {"identity": identity, "reason": reason,
                                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    except OSError:
        pass  # an unwritable cache: the failure is reported, just not remembered


def _remembered(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        reason, at = data.get("reason", "?"), data.get("at", "?")
    except (OSError, ValueError, AttributeError):
        reason, at = "unreadable record", "?"
    return f"{reason} (remembered since {at}; delete {path} to try again)"
