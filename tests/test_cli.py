"""The CLI: click's runner for the details, real `zoo` subprocesses for the whole path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import MINIMAL_CARD, card_toml, run_zoo, write

from zoo.cli import cli

HEAVY = ("torch", "torchvision", "transformers", "timm", "onnx", "onnxruntime")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_list_shows_a_table_in_a_stable_order():
    result = invoke("list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "modality", "task", "family", "source", "params", "gflops", "acc@1", "dim",
                                "license"]
    names = [ln.split()[0] for ln in lines[2:]]
    assert names == sorted(names)
    assert {"resnet50", "efficientnet_lite0", "google-bert/bert-base-uncased"} <= set(names)
    row = next(ln for ln in lines if ln.startswith("resnet50 "))
    assert row.split()[:6] == ["resnet50", "image", "image-classification", "resnet", "torchvision", "25.6M"]
    assert row.split()[7:] == ["80.9", "2048", "BSD-3-Clause"]
    assert invoke("list").stdout == result.stdout
    assert result.stderr.strip() == f"{len(names)} of {len(names)} models"


def test_list_filters_and_json():
    data = json.loads(invoke("list", "--modality", "text", "--max-params", "70M", "--json").output)
    names = [m["name"] for m in data]
    assert "distilbert/distilbert-base-uncased" in names
    assert "google-bert/bert-base-uncased" not in names  # 109M
    assert all(m["modality"] == "text" and m["params"] <= 70_000_000 for m in data)
    assert data[0]["embedding"]["dim"] > 0 and "stages" in data[0]

    offline = json.loads(invoke("list", "--tag", "offline", "--json").output)
    assert {m["source"]["type"] for m in offline} == {"package"}
    by_source = json.loads(invoke("list", "--source", "torchvision", "--sort", "acc@1", "--json").output)
    ranked = ["imagenet-1k/acc@1" in m["metrics"] for m in by_source]
    assert ranked == sorted(ranked, reverse=True)  # cards without the number (the COCO detectors) come last
    accuracies = [m["metrics"]["imagenet-1k/acc@1"] for m in by_source if "imagenet-1k/acc@1" in m["metrics"]]
    assert accuracies == sorted(accuracies, reverse=True) and len(accuracies) >= 100  # every classification weight
    resnets = [m["name"] for m in json.loads(invoke("list", "resnet[0-9]*", "--json").stdout)]
    assert {"resnet18", "resnet50", "resnet50.imagenet1k_v1"} <= set(resnets) and resnets == sorted(resnets)
    plugin_models = json.loads(invoke("list", "--plugin", "zoo_timm", "--json").output)
    assert plugin_models and all(m["origin"]["name"] == "zoo_timm" for m in plugin_models)


def test_list_sort_by_params():
    data = json.loads(invoke("list", "--sort", "params", "--json").output)
    params = [m["params"] for m in data]
    assert params == sorted(params)


def test_show_prints_the_whole_card():
    result = invoke("show", "resnet50")
    assert result.exit_code == 0
    text = result.output
    for expected in ("ResNet50_Weights.IMAGENET1K_V2", "embedding    flatten -> 2048-d", "head         fc",
                     "conv1 -> layer1 -> layer2 -> layer3 -> layer4", "imagenet-1k/acc@1",
                     "Resize(232, shorter side) -> CenterCrop(224x224) -> [0, 1] -> Normalize(mean, std); bilinear",
                     "numbers from "):
        assert expected in text, expected
    data = json.loads(invoke("show", "sentence-transformers/all-MiniLM-L6-v2", "--json").output)
    assert data["embedding"] == {"node": "last_hidden_state", "dim": 384, "pooling": "mean"}
    assert data["source"]["type"] == "hf"


def test_unknown_model_suggests_and_exits_nonzero():
    result = CliRunner().invoke(cli, ["show", "resnet5"])
    assert result.exit_code == 1
    assert "no model named 'resnet5'" in result.output and "Did you mean: resnet50" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_registry_option_and_bad_registry_files(tmp_path):
    path = write(tmp_path / "mine.toml", card_toml("my-net"))
    assert "my-net" in invoke("--registry", str(path), "list").output
    write(path, card_toml("my-net", extra="wrong = 1"))
    result = CliRunner().invoke(cli, ["--registry", str(path), "list"])
    assert result.exit_code == 1
    assert "mine.toml: model 'my-net', key 'wrong': unknown key" in result.output


def test_plugins_command():
    result = invoke("plugins")
    assert result.exit_code == 0
    for name in ("zoo_files", "zoo_hf", "zoo_timm", "zoo_torchvision"):
        assert name in result.output
    data = {p["name"]: p for p in json.loads(invoke("plugins", "--json").output)}
    assert data["zoo_hf"]["hooks"] == ["register_adapters", "register_finders", "register_sources"]
    assert data["zoo_hf"]["origin"] == "built-in" and data["zoo_hf"]["status"] == "ok"
    assert data["zoo.data.formats"]["hooks"] == ["register_dataset_formats"]


def test_real_subprocess_user_error_has_no_traceback():
    result = run_zoo("show", "bert-base-uncased")
    assert result.returncode == 1
    assert "Did you mean: google-bert/bert-base-uncased" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_zoo("--version").stdout.startswith("zoo, version ")


@pytest.mark.parametrize("args", [["list"], ["show", "resnet50"], ["plugins"], ["--help"], ["list", "--help"],
                                  ["finetune", "--help"], ["export", "--help"], ["predict", "--help"],
                                  ["bench", "--help"]])
def test_listing_never_imports_heavy_libraries(args):
    code = (
        "import sys, zoo.cli\n"
        f"try:\n    zoo.cli.main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


@pytest.mark.slow
def test_every_command_s_output_ends_with_a_newline(tmp_path):
    """stdout and stderr of each command end with a newline, whatever the card holds (the last line
    of `zoo show` is a card's free text), so a shell prompt never lands after the output."""
    (tmp_path / "w.bin").write_bytes(b"weights")
    body = MINIMAL_CARD.replace('source = { type = "url", url = "http://127.0.0.1:1/tiny.pt" }',
                                'source = { type = "local", path = "w.bin" }')
    body += 'notes = "no full stop and trailing spaces   "\n'
    reg = str(write(tmp_path / "r.toml", card_toml("mine", body)))
    commands = [["show", "mine"], ["show", "resnet18"], ["show", "mine", "--json"], ["list", "resnet1*"],
                ["list", "--json", "mine"], ["plugins"], ["plugins", "--json"], ["--help"], ["--version"],
                ["pull", "mine"], ["pull", "mine", "--json"], ["cache", "list"], ["cache", "verify"],
                ["cache", "rm", "mine"], ["show", "nope"], ["pull", "hf:../x"]]
    for args in commands:
        result = run_zoo("--registry", reg, *args)
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            assert not text or text.endswith("\n"), (args, name, text[-80:])
        assert result.stdout or result.stderr, args
