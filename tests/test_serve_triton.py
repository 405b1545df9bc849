"""The Triton model repository `zoo export --triton DIR` writes: config.pbtxt parsed by Triton's own
ModelConfig schema (from tritonclient), the graph's inputs and outputs as the graph names them,
dynamic batching, labels for Triton's classification extension, the tokenizer beside a text
graph where zoo's runtime finds it, and a README that states the preprocessing."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from conftest import run_zoo
from servekit import model_path

from zoo.export.triton import Tensor, config_pbtxt, write_triton
from zoo.onnxgraph.onnxfile import read_info
from zoo.runtime import open_model


def _model_config(text: str):
    """config.pbtxt parsed against Triton's ModelConfig message (tritonclient ships its schema)."""
    tritonclient = pytest.importorskip("tritonclient")
    from google.protobuf import text_format

    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    schema = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schema)
    return text_format.Parse(text, schema.ModelConfig())


def test_image_classifier_repository(tmp_path_factory, tmp_path):
    model = model_path(tmp_path_factory, "digits")
    info = read_info(model)
    written = write_triton(model, tmp_path / "repo", max_batch=16)
    folder = tmp_path / "repo" / "digits"
    assert written.folder == folder and written.max_batch_size == 16
    config = _model_config((folder / "config.pbtxt").read_text())
    assert (config.name, config.platform, config.backend, config.max_batch_size) == \
        ("digits", "onnxruntime_onnx", "onnxruntime", 16)
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [("pixel_values", 11, [3, 224, 224])]
    assert [(o.name, list(o.dims), o.label_filename) for o in config.output] == \
        [("probabilities", [len(info.labels)], "labels.txt")]
    assert config.dynamic_batching.max_queue_delay_microseconds == 5000
    assert (folder / "labels.txt").read_text().splitlines() == list(info.labels)
    assert (folder / "1" / "model.onnx").read_bytes() == model.read_bytes()
    assert json.loads((folder / "zoo.json").read_text()) == json.loads(json.dumps(info.to_dict()))
    readme = (folder / "README.md").read_text()
    p = info.preprocessing
    for fact in (f"shorter side to {p['resize']} px", f"{p['interpolation']}", f"{p['size'][0]}x{p['size'][1]}",
                 str(list(p["mean"])), str(list(p["std"])), "classification: K", "POST /v2/models/digits/infer"):
        assert fact in readme, fact


def test_text_repository_keeps_the_tokenizer_beside_the_graph(tmp_path_factory, tmp_path):
    model = model_path(tmp_path_factory, "topics")
    written = write_triton(model, tmp_path / "repo", name="topics", version="3")
    config = _model_config((written.folder / "config.pbtxt").read_text())
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == \
        [("input_ids", 9, [-1]), ("attention_mask", 9, [-1])]
    graph = open_model(written.folder / "3" / "model.onnx")  # zoo's runtime finds the tokenizer beside it
    feeds = graph.encode(["a short text"])
    assert set(feeds) == {"input_ids", "attention_mask"}
    tokenizer = read_info(model).preprocessing["tokenizer"]
    assert (written.folder / "3" / tokenizer).is_file()
    assert f"Tokenize with `3/{tokenizer}`" in (written.folder / "README.md").read_text()


def test_a_graph_with_a_fixed_batch_gets_no_batching():
    fixed = [Tensor("pixel_values", "TYPE_FP32", (1, 3, 32, 32))]
    text, size = config_pbtxt("m", fixed, [Tensor("embedding", "TYPE_FP32", (1, 8))], max_batch=32, delay_us=100,
                              labels=False)
    config = _model_config(text)
    assert size == config.max_batch_size == 0 and list(config.input[0].dims) == [1, 3, 32, 32]
    assert not config.HasField("dynamic_batching")


def test_bad_names_are_refused(tmp_path_factory, tmp_path):
    from zoo.errors import ExportError

    model = model_path(tmp_path_factory, "digits")
    with pytest.raises(ExportError, match="whole number"):
        write_triton(model, tmp_path, version="v1")
    with pytest.raises(ExportError, match="letters, digits"):
        write_triton(model, tmp_path, name="a b")


@pytest.mark.slow  # ~15 s: a real `zoo export` subprocess (torch, tracing, validation)
def test_zoo_export_triton_option(tmp_path_factory, tmp_path):
    folder = tmp_path / "digits-fewshot"
    source = model_path(tmp_path_factory, "digits").parent
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model*", ".done"))
    home = tmp_path_factory.getbasetemp() / "serve-models" / "home"
    done = run_zoo("export", str(folder), "--triton", str(tmp_path / "repo"), "--json", "--samples", "2",
                   env={"ZOO_HOME": str(home)}, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["triton"]["folder"] == str(tmp_path / "repo" / "digits-fewshot")
    graph = tmp_path / "repo" / "digits-fewshot" / "1" / "model.onnx"
    assert graph.read_bytes() == (folder / "model.onnx").read_bytes()
    assert _model_config((tmp_path / "repo" / "digits-fewshot" / "config.pbtxt").read_text()).max_batch_size == 32
