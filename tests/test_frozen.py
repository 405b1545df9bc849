"""The frozen-forward engine: onnxruntime validated against PyTorch on the two real offline models,
its cache (hash-checked, locked, remembered failures), the fallback, and the thread budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import EngineError
from zoo.frozen.compiled import engine_folder
from zoo.frozen import frozen_pass, spread
from zoo.pulling import pull, resolve_card
from zoo.threads import available_cores, thread_budget, torch_threads

from conftest import run_zoo, write, write_digit_folder

IMAGE, TEXT = "efficientnet_lite0", "all-minilm-l6-v2-offline"

MIXED_TEXTS = [
    "Hi.",
    "The central bank raised interest rates for the third time this year, citing stubborn inflation in "
    "services and a labour market that has stayed tighter than most economists expected.",
    "Bake at 200 degrees.",
    "Tokyo",
    "The striker scored twice in the final minutes of the championship match, to the delight of the fans who "
    "had travelled across the country, many of them overnight, to watch their team lift the trophy again.",
    "Rain tomorrow.",
    "A small model zoo for transfer learning.",
]


def _digit_images(count: int) -> list[np.ndarray]:
    from sklearn.datasets import load_digits

    images = load_digits().images
    return [(images[i] * 255 / 16).astype(np.uint8) for i in np.linspace(0, len(images) - 1, count).astype(int)]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_image_engine_equals_pytorch_on_real_digits():
    card = resolve_card(IMAGE)
    fetched = pull(card, quiet=True)
    backbone = zoo.load(card)
    images = _digit_images(40)
    fast = frozen_pass(backbone, fetched, engine="onnxruntime", check=spread(images, 6))
    eager = frozen_pass(backbone, fetched, engine="torch", channels_last=False)
    got, expected = fast.embed(images, batch_size=16).numpy(), eager.embed(images, batch_size=16).numpy()
    assert got.shape == (40, 1280)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)
    assert _cosines(got, expected).min() >= 0.9999
    record = fast.record()
    assert record["engine"] == "onnxruntime" and record["validation"]["passed"]
    assert record["validation"]["max_abs_diff"] < 1e-4 and record["validation"]["batches"] == [1, 5]
    assert record["workers"] + record["threads"] <= available_cores()
    folder = engine_folder(card) / record["engine_key"]
    stored = json.loads((folder / "engine.json").read_text())
    assert stored["sha256"] == record["engine_sha256"] and (folder / "graph.onnx").is_file()
    # channels_last eager (the torch engine's default for images) gives the same embeddings too
    np.testing.assert_allclose(frozen_pass(backbone, engine="torch").embed(images[:8]).numpy(), expected[:8],
                               atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_text_engine_equals_pytorch_on_mixed_lengths_in_the_callers_order():
    card = resolve_card(TEXT)
    fetched = pull(card, quiet=True)
    backbone = zoo.load(card)
    fast = frozen_pass(backbone, fetched, engine="onnxruntime", check=MIXED_TEXTS[:4])
    got = fast.embed(MIXED_TEXTS, batch_size=3).numpy()
    one_by_one = np.concatenate([backbone.embed([t]).numpy() for t in MIXED_TEXTS])  # no padding at all
    assert _cosines(got, one_by_one).min() >= 0.9999
    np.testing.assert_allclose(got, one_by_one, atol=1e-4, rtol=1e-3)
    # grouped by length: the longest texts first, in batches that pad only to their own longest
    assert fast._order(MIXED_TEXTS)[:2] == [4, 1]
    assert fast.record()["engine"] == "onnxruntime"


@pytest.mark.slow
def test_intermediate_features_come_pooled_from_the_same_pass():
    card = resolve_card(IMAGE)
    fetched = pull(card, quiet=True)
    backbone = zoo.load(card, features=[card.embedding.node, "blocks.6"])
    images = _digit_images(6)
    fast = frozen_pass(backbone, fetched, engine="onnxruntime", features=["blocks.6"], check=images)
    eager = frozen_pass(backbone, fetched, engine="torch", features=["blocks.6"])
    got, expected = fast.outputs(images), eager.outputs(images)
    assert set(got) == {"embedding", "blocks.6"} and got["blocks.6"].shape == (6, card.features["blocks.6"])
    for name in got:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(got["embedding"], zoo.load(card).embed(images).numpy(), atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_a_damaged_engine_file_is_rebuilt_not_loaded():
    card = resolve_card(IMAGE)
    fetched = pull(card, quiet=True)
    backbone = zoo.load(card)
    images = _digit_images(6)
    first = frozen_pass(backbone, fetched, engine="onnxruntime", check=images)
    graph = first.compiled.path
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, size and name unchanged
    graph.write_bytes(bytes(data))
    messages: list[str] = []
    again = frozen_pass(backbone, fetched, engine="auto", check=images, log=messages.append)
    assert again.engine == "onnxruntime" and again.compiled.built
    assert any("damaged" in m and "rebuilding" in m for m in messages)
    assert again.compiled.record["sha256"] == first.compiled.record["sha256"]  # the same graph, rebuilt
    np.testing.assert_allclose(again.embed(images).numpy(), first.embed(images).numpy(), atol=1e-5)


def _replace_graph(victim: Path, donor: Path) -> None:
    """Put another valid graph at ``victim`` and make its engine.json agree (its sha256 and size):
    what the hash check alone cannot tell from the real one."""
    from zoo.download import sha256_file

    victim.write_bytes(donor.read_bytes())
    record_path = victim.parent / "engine.json"
    record = json.loads(record_path.read_text())
    record["sha256"], record["bytes"] = sha256_file(victim)[0], victim.stat().st_size
    record_path.write_text(json.dumps(record))


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["load", "pass", "pass with the caller's items"])
def test_a_replaced_graph_with_a_matching_hash_is_never_used(entry, tmp_path):
    """Another valid graph of the same shapes (the network with other weights) put in place of the
    cached one, its recorded sha256 edited to match: every entry point checks the graph against
    PyTorch before its first use in a process, and rebuilds it."""
    card = resolve_card(IMAGE)
    fetched = pull(card, quiet=True)
    images = _digit_images(4)
    real = frozen_pass(zoo.load(card), fetched, engine="onnxruntime").compiled
    other = zoo.load(card)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(1.05)  # the same architecture, outputs a few percent off
    from zoo.frozen.graph import frozen_graph
    from zoo.onnxgraph.onnxfile import trace

    donor = tmp_path / "donor.onnx"
    trace(frozen_graph(other.eval()), {"pixel_values": np.zeros((1, 3, 224, 224), np.float32)}, ("pixel_values",),
          ("embedding",), donor, modality="image")
    _replace_graph(real.path, donor)
    import zoo.frozen.choice as choice

    choice._CHECKED.clear()  # a new process, as far as the check is concerned
    messages: list[str] = []
    if entry == "load":
        got = zoo.load(card, engine="onnxruntime").embed(images).numpy()
    else:
        check = images if entry.endswith("items") else None
        used = frozen_pass(zoo.load(card), fetched, engine="onnxruntime", check=check, log=messages.append)
        got = used.embed(images).numpy()
    expected = frozen_pass(zoo.load(card), fetched, engine="torch", channels_last=False).embed(images).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)  # the rebuilt graph, not the replaced one
    assert real.path.read_bytes() != donor.read_bytes()
    if entry != "load":
        assert used.compiled.built and any("other outputs than PyTorch" in m and "rebuilding" in m for m in messages)


@pytest.mark.slow
def test_the_first_use_check_costs_milliseconds():
    """Checking a cached graph on generated inputs before its first use in a process."""
    import time

    import zoo.frozen.choice as choice

    card = resolve_card(IMAGE)
    fetched = pull(card, quiet=True)
    backbone = zoo.load(card)
    frozen_pass(backbone, fetched, engine="onnxruntime")  # built (and checked) once
    choice._CHECKED.clear()
    started = time.perf_counter()
    checked = frozen_pass(backbone, fetched, engine="onnxruntime")
    seconds = time.perf_counter() - started
    assert not checked.compiled.built and checked.validation["passed"] and seconds < 5  # measured: bench/


@pytest.mark.slow
def test_a_killed_build_leaves_nothing_that_is_used():
    card = resolve_card(IMAGE)
    fetched = pull(card, quiet=True)
    backbone = zoo.load(card)
    images = _digit_images(6)
    key = frozen_pass(backbone, fetched, engine="onnxruntime", check=images).compiled.key
    folder = engine_folder(card)
    (folder / key / "engine.json").unlink()  # as if killed before the record landed: the folder is not an engine
    leftover = folder / f".{key}.killed"  # the temp folder a killed build leaves
    leftover.mkdir()
    (leftover / "graph.onnx").write_bytes(b"half a graph")
    messages: list[str] = []
    rebuilt = frozen_pass(backbone, fetched, engine="onnxruntime", check=images, log=messages.append)
    assert rebuilt.compiled.built and not leftover.exists()
    assert any("rebuilding" in m for m in messages)


@pytest.mark.slow
def test_a_build_killed_for_real_leaves_no_engine_that_is_used(zoo_env, tmp_path):
    import signal
    import time

    script = write(tmp_path / "build.py", f"""
        import zoo
        from zoo.frozen import frozen_pass
        from zoo.pulling import pull, resolve_card
        card = resolve_card({TEXT!r})
        frozen_pass(zoo.load(card), pull(card, quiet=True), engine="onnxruntime", log=lambda t: print(t, flush=True))
        print("finished", flush=True)
    """)
    card = resolve_card(TEXT)
    pull(card, quiet=True)
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "ZOO_HOME": str(zoo_env)})
    line = child.stdout.readline()
    assert line.startswith("compiling"), line
    time.sleep(0.3)  # inside tracing (MiniLM takes seconds to trace and check)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    folder = engine_folder(card)
    finals = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert all((p / "engine.json").is_file() for p in finals)  # a final folder only ever appears complete
    messages: list[str] = []
    frozen = frozen_pass(zoo.load(card), pull(card, quiet=True), engine="onnxruntime", check=MIXED_TEXTS,
                         log=messages.append)
    assert frozen.engine == "onnxruntime" and frozen.validation["passed"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".") and p.is_dir()]  # the killed build's temp is gone


@pytest.mark.slow
def test_two_processes_needing_one_engine_build_it_once(zoo_env, tmp_path):
    script = write(tmp_path / "build.py", f"""
        import zoo
        from zoo.frozen import frozen_pass
        from zoo.pulling import pull, resolve_card
        card = resolve_card({IMAGE!r})
        frozen = frozen_pass(zoo.load(card), pull(card, quiet=True), engine="onnxruntime", log=print)
        print("engine", frozen.engine, frozen.compiled.key, frozen.compiled.built)
    """)
    env = {**os.environ, "ZOO_HOME": str(zoo_env)}
    pull(resolve_card(IMAGE), quiet=True)  # the weights first: this test is about the engine
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    lines = [line for out, _ in outputs for line in out.splitlines()]
    assert sum("compiling" in line for line in lines) == 1
    finals = [line.split() for line in lines if line.startswith("engine ")]
    assert {f[2] for f in finals} == {finals[0][2]} and sorted(f[3] for f in finals) == ["False", "True"]
    key_folders = [p for p in engine_folder(resolve_card(IMAGE)).iterdir() if p.is_dir()]
    assert [p.name for p in key_folders] == [finals[0][2]]  # no temp folder left behind


SPECTRAL_PLUGIN = '''
import torch
from torch import nn
from zoo import Field, hookimpl


class Spectral(nn.Module):
    """A real network whose FFT the TorchScript ONNX exporter cannot write (aten::fft_rfft2)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return {"spectrum": torch.fft.rfft2(self.conv(x)).abs().mean(dim=(2, 3))}


class SpectralAdapter:
    name = "spectral"
    fields = {"arch": Field(str)}

    def build(self, card, fetched):
        model = Spectral()
        model.load_state_dict(torch.load(fetched.path(fetched.files[0].name), weights_only=True))
        return model

    def extractor(self, card, model, nodes):
        return model

    def tokenizer(self, card, fetched):
        return None


@hookimpl
def register_adapters(register):
    register(SpectralAdapter())
'''


def _spectral_model(tmp_path: Path) -> Path:
    import hashlib
    import importlib

    sys.path.insert(0, str(tmp_path))
    write(tmp_path / "zoo_spectral.py", SPECTRAL_PLUGIN)
    module = importlib.import_module("zoo_spectral")
    torch.manual_seed(0)
    weights = tmp_path / "weights" / "spectral.pt"
    weights.parent.mkdir()
    torch.save(module.Spectral().state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    zoo.plugins.get_host().register(module)
    return write(tmp_path / "models.toml", f"""
        [models.spectral]
        description = "A network with an FFT, which ONNX export does not support"
        modality = "image"
        task = "image-classification"
        license = "MIT"
        params = 112
        source = {{ type = "local", path = "{weights}" }}
        files = [{{ name = "spectral.pt", sha256 = "{digest}" }}]
        adapter = {{ type = "spectral", arch = "spectral" }}
        input = {{ size = [16, 16], mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5] }}
        embedding = {{ node = "spectrum", dim = 4 }}
        stages = ["conv"]
    """)


@pytest.mark.slow
def test_a_model_that_cannot_be_compiled_falls_back_once_and_is_remembered(tmp_path):
    registry = _spectral_model(tmp_path)
    try:
        card = resolve_card("spectral", [registry])
        fetched = pull(card, quiet=True)
        backbone = zoo.load(card)
        images = _digit_images(5)
        messages: list[str] = []
        first = frozen_pass(backbone, fetched, engine="auto", check=images, log=messages.append)
        assert first.engine == "torch" and "aten::fft_rfft2" in first.note
        assert len([m for m in messages if m.startswith("frozen pass: PyTorch eager")]) == 1
        assert first.embed(images).shape == (5, 4)
        failed = list(engine_folder(card).glob("*.failed.json"))
        assert len(failed) == 1 and "fft_rfft2" in json.loads(failed[0].read_text())["reason"]
        messages.clear()
        second = frozen_pass(backbone, fetched, engine="auto", check=images, log=messages.append)
        assert second.engine == "torch" and "remembered since" in second.note
        assert not any("compiling" in m for m in messages)  # not retried
        with pytest.raises(EngineError, match="fft_rfft2"):  # asked for explicitly: tried again, and said
            frozen_pass(backbone, fetched, engine="onnxruntime", check=images)
    finally:
        zoo.plugins.get_host().unregister("zoo_spectral")
        sys.path.remove(str(tmp_path))
        sys.modules.pop("zoo_spectral", None)


@pytest.mark.slow
def test_an_unwritable_engine_cache_compiles_for_the_run_without_blaming_the_model(zoo_env):
    (zoo_env / "engines").write_text("not a folder")  # the cache cannot hold an engine
    card = resolve_card(IMAGE)
    messages: list[str] = []
    frozen = frozen_pass(zoo.load(card), pull(card, quiet=True), engine="auto", log=messages.append)
    # the run keeps onnxruntime's speed: the graph lives in a temporary folder until the process ends
    assert frozen.engine == "onnxruntime" and frozen.validation["passed"]
    assert not str(frozen.compiled.path).startswith(str(zoo_env))
    notes = [m for m in messages if "cannot be written" in m]
    assert len(notes) == 1 and "temporary folder" in notes[0] and str(zoo_env / "engines") in notes[0]
    (zoo_env / "engines").unlink()
    again = frozen_pass(zoo.load(card), pull(card, quiet=True), engine="auto")  # nothing was remembered
    assert again.engine == "onnxruntime" and str(again.compiled.path).startswith(str(zoo_env / "engines"))


@pytest.mark.slow
def test_a_pass_leaves_the_callers_module_as_it_was():
    card = resolve_card(IMAGE)
    backbone = zoo.load(card).train()
    weights = [p for p in backbone.parameters() if p.dim() == 4]
    for engine in ("torch", "onnxruntime"):
        frozen_pass(backbone, pull(card, quiet=True), engine=engine).embed(_digit_images(3))
        assert backbone.training and all(p.is_contiguous() for p in weights)


@pytest.mark.slow
def test_an_input_the_graph_was_not_built_for_is_an_error():
    card = resolve_card(IMAGE)
    backbone = zoo.load(card)
    fast = frozen_pass(backbone, pull(card, quiet=True), engine="onnxruntime")
    with pytest.raises(EngineError, match=r"takes pixel_values of shape \['batch', 3, 224, 224\], got \[1, 3, 100, 100\]"):
        fast._run(torch.zeros(1, 3, 100, 100))


@pytest.mark.slow
def test_load_with_an_engine_uses_it_until_the_weights_change():
    card = resolve_card(IMAGE)
    backbone = zoo.load(card, engine="onnxruntime")
    images = _digit_images(4)
    assert backbone.engine == "onnxruntime"
    fast = backbone.embed(images)
    reference = frozen_pass(backbone, engine="torch", channels_last=False).embed(images)
    np.testing.assert_allclose(fast.numpy(), reference.numpy(), atol=1e-4, rtol=1e-3)
    with torch.no_grad():
        next(backbone.parameters()).mul_(1.5)  # an in-place change, as an optimizer step makes
    assert backbone.engine == "torch"
    changed = backbone.embed(images)
    assert not np.allclose(changed.numpy(), fast.numpy(), atol=1e-3)
    with pytest.raises(zoo.errors.LoadError, match="engine= applies to the embedding"):
        zoo.load(card, engine="auto", head="pretrained")


@pytest.mark.slow
def test_without_onnxruntime_the_main_job_runs_on_pytorch_and_says_why(tmp_path):
    data = write_digit_folder(tmp_path / "digits", dark_ink=False)
    blocked = textwrap.dedent("""
        import sys
        sys.modules["onnxruntime"] = None  # as on a plain `pip install zoo`: importing it fails
        from zoo.cli import main
        main()
    """)
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", blocked, "finetune", IMAGE, "--data", str(data), "--out", str(out),
                             "--epochs", "5"], capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "onnxruntime is not installed" in line]
    assert len(lines) == 1 and lines[0].startswith("frozen pass: PyTorch eager")
    engines = json.loads((out / "choices.json").read_text())["frozen_pass"]
    # small data is cross-validated on all labelled examples (one set), a split run has train and val
    assert {r["engine"] for r in engines.values()} == {"torch"} and (set(engines) >= {"train", "val"}
                                                                     or set(engines) == {"labelled"})


@pytest.mark.slow
def test_the_run_records_its_engine_and_the_cache_is_shared_across_engines(tmp_path):
    data = write_digit_folder(tmp_path / "digits", dark_ink=False)
    first = zoo.finetune(IMAGE, str(data), out=tmp_path / "a", head_epochs=5, val_split=0.25, progress=False,
                         log=lambda _: None)
    recorded = first.choices["frozen_pass"]
    assert recorded["train"]["engine"] == "onnxruntime" and recorded["train"]["cache"] == "computed"
    assert recorded["train"]["validation"]["passed"] and recorded["train"]["validation"]["max_abs_diff"] < 1e-4
    second = zoo.finetune(IMAGE, str(data), out=tmp_path / "b", head_epochs=5, val_split=0.25, engine="torch",
                          progress=False, log=lambda _: None)
    again = second.choices["frozen_pass"]
    assert again["train"]["cache"] == "hit" and again["train"]["engine"] == "onnxruntime"  # made by, not used now
    assert second.metrics["val"]["accuracy"] == first.metrics["val"]["accuracy"]


def test_the_thread_budget_never_exceeds_the_cores():
    for cores in (1, 2, 3, 4, 8, 16):
        for workers in (None, 0, 1, 3):
            budget = thread_budget(workers, cores=cores)
            assert budget.threads >= 1
            if workers is None or workers < cores:
                assert budget.workers + budget.threads <= cores
    assert thread_budget(cores=2) == thread_budget(0, cores=2) and thread_budget(cores=8).workers == 2
    assert thread_budget(None, decoding=False, cores=4).workers == 0
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_the_budget_follows_the_process_affinity_mask():
    """Widened to every core of the machine, then narrowed to one: the budget follows the mask
    (the test's own process may be pinned already: pytest-xdist workers each keep to a core)."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        pytest.skip("needs Linux affinity and at least 2 cores")
    code = ("import os\n"
            "try:\n    os.sched_setaffinity(0, range(os.cpu_count()))\nexcept OSError:\n    pass\n"
            "from zoo.threads import available_cores, thread_budget\n"
            "wide = (len(os.sched_getaffinity(0)), available_cores())\n"
            "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
            "print(*wide, available_cores(), thread_budget().workers + thread_budget().threads)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    mask, wide, narrow, budget = (int(n) for n in result.stdout.split())
    assert wide == mask and (narrow, budget) == (1, 1), result.stderr


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA GPU here: the autocast and onnxruntime-gpu paths are checked by "
                           "bench/frozen_forward_cuda.py on a machine with one")
@pytest.mark.slow
def test_cuda_autocast_pass_stays_close_to_fp32():
    card = resolve_card(IMAGE)
    backbone = zoo.load(card, device="cuda")
    images = _digit_images(8)
    fast = frozen_pass(backbone, pull(card, quiet=True), engine="auto", device="cuda", check=images)
    assert fast.engine == "torch" and fast.validation["cosine_min"] >= 0.999
    reference = frozen_pass(zoo.load(card), engine="torch").embed(images).numpy()
    assert _cosines(fast.embed(images).numpy(), reference).min() >= 0.999


@pytest.mark.slow
def test_cli_engine_option(tmp_path):
    data = write_digit_folder(tmp_path / "digits", dark_ink=True)
    result = run_zoo("embed", IMAGE, str(data), "--db", str(tmp_path / "db"), "--engine", "torch", "--json",
                     timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["engine"]["engine"] == "torch"
    bad = run_zoo("finetune", IMAGE, "--data", str(data), "--engine", "tensorrt")
    assert bad.returncode == 2 and "tensorrt" in bad.stderr

