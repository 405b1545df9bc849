"""zoo predict and the torch-free runtime: no torch import, embeddings, inputs of every kind, bad
model files and wrong inputs as clear errors, execution provider choice.

The models are bare backbones (embedding out): resnet18 with random weights and the offline
MiniLM; the fine-tuned round trips live in test_export.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_TORCH, run_zoo

import zoo
from zoo import catalog, plugins
from zoo.errors import InputError
from zoo.runtime import choose_providers, expand_images, open_model

QUIET = {"log": lambda _: None}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An image and a text embedding model, exported once (in their own ZOO_HOME)."""
    folder = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(tmp_path_factory.mktemp("predict_home")))
        previous = plugins.reset_host(None)
        catalog.clear_cache()
        try:
            image = zoo.export("resnet18", folder / "r18.onnx", pretrained=False, samples=3, **QUIET).path
            text = zoo.export("all-minilm-l6-v2-offline", folder / "minilm.onnx", samples=3, **QUIET).path
        finally:
            plugins.reset_host(previous)
            catalog.clear_cache()
    return {"image": image, "text": text}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    for name in ("a/one.png", "a/two.jpg", "b/three.png"):
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / name)
    (root / "a" / "notes.txt").write_text("not an image", encoding="utf-8")
    return root


@pytest.mark.slow
def test_predict_never_imports_torch(models, pictures):
    """The runtime and the CLI's predict command work in a process that has no torch at all."""
    script = NO_TORCH + f"""
from zoo.cli import main
for args in (["predict", {str(models['image'])!r}, {str(pictures / 'a')!r}, "--json"],
             ["predict", {str(models['text'])!r}, "hello world", "--json"]):
    try:
        main(args)
    except SystemExit as exit:
        assert exit.code in (0, None), exit.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "transformers", "timm", "onnx"))
print("HEAVY", heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    assert done.stdout.count('"embeddings"') == 2


@pytest.mark.slow
def test_embeddings_match_the_library_and_save_as_npy(models, pictures, tmp_path):
    files = expand_images([pictures])
    assert [f.name for f in files] == ["one.png", "two.jpg", "three.png"]  # folders: recursive, images only
    model = open_model(models["image"])
    direct = model.embed(files)
    out = tmp_path / "e.npy"
    done = run_zoo("predict", str(models["image"]), str(pictures / "a" / "*.png"), str(pictures / "b"),
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    saved = np.load(out)
    np.testing.assert_allclose(saved, direct[[0, 2]], rtol=1e-5, atol=1e-6)
    assert "(512 dims)" in done.stdout and f"saved 2x512 embeddings to {out}" in done.stdout


@pytest.mark.slow
def test_text_embeddings_from_arguments_and_a_file(models, tmp_path):
    lines = tmp_path / "texts.txt"
    lines.write_text("first line\n\n  \nsecond line\n", encoding="utf-8")
    done = run_zoo("predict", str(models["text"]), "an argument", "--file", str(lines), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [e["input"] for e in data["embeddings"]] == ["an argument", "first line", "second line"]
    assert len(data["embeddings"][0]["embedding"]) == 384 and data["providers"] == ["CPUExecutionProvider"]
    alone = zoo.predict(models["text"], ["second line"]).embeddings[0]
    np.testing.assert_allclose(data["embeddings"][2]["embedding"], alone, atol=1e-5)  # padding does not leak


@pytest.mark.parametrize("content, expected", [
    (b"", "not an ONNX model file"),
    (b"this is plain text, not a model\n" * 4, "not an ONNX model file"),
    (b"\x08\x07" + bytes(range(256)) * 8, "onnxruntime cannot load it"),
    ("truncated", "onnxruntime cannot load it"),
    ("no-metadata", "no zoo metadata"),
], ids=["empty", "text", "garbage", "truncated", "foreign-onnx"])
@pytest.mark.slow
def test_bad_model_files_are_clear_errors(models, tmp_path, content, expected):
    path = tmp_path / "bad.onnx"
    if content == "truncated":
        whole = models["image"].read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif content == "no-metadata":
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=expected):
        zoo.predict(path, ["x.png"])
    done = run_zoo("predict", str(path), "x.png")
    assert done.returncode == 1 and "Traceback" not in done.stderr and expected in done.stderr


@pytest.mark.slow
def test_wrong_inputs_are_clear_errors(models, pictures, tmp_path):
    cases = [
        ((models["image"], "a cat on a mat"), "no such image file, folder or pattern"),
        ((models["image"], str(pictures / "a" / "notes.txt")), "not a readable image"),
        ((models["image"], str(tmp_path)), "no image files in this folder"),
        ((models["image"], str(tmp_path / "*.jpg")), "the pattern matches no files"),
        ((models["text"], "--file", str(tmp_path / "missing.txt")), "no such text file"),
        ((models["text"],), "no inputs given"),
        ((tmp_path / "absent.onnx", "x"), "no such model file"),
    ]
    for args, expected in cases:
        done = run_zoo("predict", *map(str, args))
        assert done.returncode != 0 and "Traceback" not in done.stderr, (args, done.stderr)
        assert expected in done.stderr, (args, done.stderr)
    with pytest.raises(InputError, match="takes texts, not a ndarray"):
        zoo.predict(models["text"], [np.zeros((8, 8, 3), np.uint8)])


def test_providers_prefer_the_gpu_only_when_one_is_present(monkeypatch):
    import onnxruntime

    from zoo import runtime

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runtime, "_gpu_present", lambda: True)
    assert choose_providers() == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(runtime, "_gpu_present", lambda: False)
    assert choose_providers() == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(InputError, match=r"'cuda' is not available .* install the gpu extra"):
        choose_providers("cuda")
    assert choose_providers("CPU") == ["CPUExecutionProvider"]


@pytest.mark.slow
def test_cli_provider_choice(models):
    done = run_zoo("predict", str(models["text"]), "hi", "--provider", "tensorrt")
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():  # pragma: no cover - GPU machines
        assert done.returncode == 0
    else:
        assert done.returncode == 1 and "execution provider 'tensorrt' is not available" in done.stderr
    done = run_zoo("predict", str(models["text"]), "hi", "--provider", "cpu", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["providers"] == ["CPUExecutionProvider"]


@pytest.mark.parametrize("command", ["export", "predict", "bench"])
def test_help_never_imports_heavy_libraries(command):
    code = ("import sys, zoo.cli\n"
            f"try:\n    zoo.cli.main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'transformers') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "HEAVY []"


# --------------------------------------------------------------------------- damaged artefacts

def _edited(model: Path, out: Path, **props: str | None) -> Path:
    """A copy of ``model`` (and its tokenizer) whose zoo metadata keys are replaced (None: removed)."""
    import shutil

    import onnx

    graph = onnx.load(str(model))
    kept = {p.key: p.value for p in graph.metadata_props}
    for key, value in props.items():
        kept.pop(f"zoo.{key}", None) if value is None else kept.__setitem__(f"zoo.{key}", value)
    del graph.metadata_props[:]
    for key, value in kept.items():
        graph.metadata_props.add(key=key, value=value)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph, str(out))
    for tokenizer in model.parent.glob(model.stem + ".tokenizer.json"):
        shutil.copy(tokenizer, out.parent / tokenizer.name)
    return out


def _preprocessing(model: Path, **changes: object) -> str:
    from zoo.onnxgraph.onnxfile import read_info

    return json.dumps({**read_info(model).preprocessing, **changes})


@pytest.mark.parametrize("which, props, expected", [
    ("image", {"labels": "[not json"}, "zoo.labels: not JSON"),
    ("image", {"labels": '{"a": 1}'}, "zoo.labels: expected a list of strings"),
    ("image", {"kind": "detector"}, "zoo.kind: unknown kind 'detector'"),
    ("image", {"format": "two"}, "zoo.format: 'two' is not a layout number"),
    ("image", {"inputs": "[]"}, "zoo.inputs: expected distinct input names"),
    ("image", {"output": "logits"}, "metadata names the output 'logits' but the graph gives ['embedding']"),
    ("image", {"modality": "smell"}, "zoo.modality: unknown modality 'smell'"),
    ("image", {"kind": "classifier"}, "zoo.labels: a classifier without labels"),
    ("image", {"preprocessing": "std=[0.2, 0.0, 0.2]"}, "'std' must be 3 positive numbers"),
    ("image", {"preprocessing": "size=[-1, 224]"}, "'size' must be [height, width], positive integers"),
    ("image", {"preprocessing": "size=[224, 224, 3]"}, "'size' must be [height, width]"),
    ("image", {"preprocessing": "size=None"}, "'size' must be [height, width]"),
    ("image", {"preprocessing": "mean=[NaN, 0.4, 0.4]"}, "'mean' must be 1 or 3 finite numbers"),
    ("image", {"preprocessing": "interpolation='lanczos'"}, "'interpolation' must be one of nearest, bilinear"),
    ("image", {"preprocessing": "resize=0"}, "'resize' must be a positive integer"),
    ("image", {"preprocessing": "crop_mode='zoom'"}, "'crop_mode' must be one of center, squash"),
    ("image", {"preprocessing": '"just a string"'}, "zoo.preprocessing: expected a table"),
    ("text", {"preprocessing": "tokenizer='../../etc/passwd'"}, "'tokenizer' must be the tokenizer's file name"),
    ("text", {"preprocessing": "tokenizer_sha256='abc'"}, "'tokenizer_sha256' must be a sha256"),
    ("text", {"preprocessing": "max_length=0"}, "'max_length' must be a positive integer"),
    ("text", {"preprocessing": "max_length='128'"}, "'max_length' must be a positive integer"),
    ("text", {"preprocessing": "tokenizer=None"}, "'tokenizer' must be the tokenizer's file name"),
    ("text", {"source": '{"thresholds": [0.5]}', "kind": "classifier", "labels": '["a", "b"]'},
     "one threshold in [0, 1] per label (2)"),
    ("text", {"labels": '["a", "a"]', "kind": "classifier"}, "zoo.labels: labels repeat"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 10 else None)
@pytest.mark.slow
def test_damaged_metadata_is_refused_when_read(models, tmp_path, which, props, expected):
    model = models[which]
    fields = {}
    for key, value in props.items():
        if key == "preprocessing" and "=" in value:  # one field changed: name=python literal (None removes it)
            name, literal = value.split("=", 1)
            fields[key] = _preprocessing(model, **{name: eval(literal, {"NaN": float("nan")})})
            fields[key] = fields[key].replace(f'"{name}": null, ', "").replace(f', "{name}": null', "")
        else:
            fields[key] = value
    path = _edited(model, tmp_path / "edited" / model.name, **fields)
    with pytest.raises(InputError, match=re.escape(expected)) as caught:
        zoo.predict(path, ["x.png"] if which == "image" else ["some text"])
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_damaged_metadata_is_one_line_in_the_cli(models, tmp_path):
    path = _edited(models["image"], tmp_path / "m.onnx", preprocessing=_preprocessing(models["image"], std=[0, 1, 1]))
    done = run_zoo("predict", str(path), "x.png")
    assert done.returncode == 1 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert str(path) in done.stderr and "'std' must be 3 positive numbers" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("count", [511, 513])
def test_labels_that_do_not_match_the_graph_are_refused(models, tmp_path, count):
    """An embedding graph of 512 outputs read as a classifier: its labels must number 512."""
    labels = json.dumps([f"class {i}" for i in range(count)])
    path = _edited(models["image"], tmp_path / "m.onnx", kind="classifier", labels=labels)
    message = f"its metadata lists {count} labels but the graph scores 512 classes"
    with pytest.raises(InputError, match=message):
        zoo.predict(path, [np.zeros((40, 40, 3), np.uint8)])
    done = run_zoo("predict", str(path), "x.png")
    assert done.returncode == 1 and "Traceback" not in done.stderr and message in done.stderr
    right = _edited(models["image"], tmp_path / "ok.onnx", kind="classifier",
                    labels=json.dumps([f"class {i}" for i in range(512)]))
    assert zoo.predict(right, [np.zeros((40, 40, 3), np.uint8)], top_k=2).predictions[0].label.startswith("class ")


def test_labels_are_checked_against_a_dynamic_output_on_the_first_answer(tmp_path):
    """A graph whose class count is not fixed in its declaration: checked on the scores it returns."""
    import onnx
    from onnx import TensorProto, helper

    from zoo.modelinfo import ModelInfo

    graph = helper.make_graph([helper.make_node("Flatten", ["pixel_values"], ["probabilities"])], "g",
                              [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 2, 2])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", "classes"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    info = ModelInfo(kind="classifier", modality="image", inputs=("pixel_values",), output="probabilities",
                     labels=("a", "b", "c"), preprocessing={"size": [2, 2], "resize": 2, "mean": [0.5] * 3,
                                                            "std": [0.5] * 3, "interpolation": "bilinear"})
    for key, value in info.to_props().items():
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InputError, match="lists 3 labels but the graph scores 12 classes"):
        zoo.predict(path, [np.zeros((2, 2, 3), np.uint8)])


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_damaged_external_weights_are_one_line(models, tmp_path, damage):
    import onnx

    path = tmp_path / "m.onnx"
    onnx.save_model(onnx.load(str(models["image"])), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.onnx.data")
    data = tmp_path / "m.onnx.data"
    if damage == "missing":
        data.unlink()
    else:
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    with pytest.raises(InputError, match=r"onnxruntime cannot load it .*export it again"):
        zoo.predict(path, ["x.png"])
    done = run_zoo("predict", str(path), "x.png")
    assert done.returncode == 1 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
