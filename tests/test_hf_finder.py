"""`hf:ORG/NAME`: a card derived from a Hub repository's files, against the local Hub server.

Each repository is a tiny random model of a real architecture (hidden 32, 2 layers, a vocabulary
of under 100 tokens) saved by transformers itself, with a real tokenizer or image processor
config; huggingface_hub's real client does the HTTP (tests/hubserver.py). The derived card is
checked field by field, saved under $ZOO_HOME/registry.d, listed offline with the server stopped,
loaded and embedded; one ViT is exported to ONNX.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import hubserver
from conftest import card_toml, run_zoo, write

import zoo
from zoo import catalog
from zoo.errors import LoadError, OfflineError, PluginError, PullError, RegistryError

WORDS = ("the a of to and in is was for on with as at by an be this that it from sentence another one photo "
         "text model").split()
LETTERS = "abcdefghijklmnopqrstuvwxyz"
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
TEXTS = ["a sentence for the model", "another one"]

hub = hubserver.hub  # the running Hub server fixture, huggingface_hub pointed at it


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _wordpiece(cls, specials):
    return cls(vocab={w: i for i, w in enumerate([*specials, *WORDS, *LETTERS, *(f"##{c}" for c in LETTERS)])})


def _tokenizer(model_type: str):
    from transformers import BertTokenizer, DistilBertTokenizer, MPNetTokenizer, XLMRobertaTokenizer

    if model_type == "xlm-roberta":
        pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *((f"\u2581{w}", -1.0) for w in WORDS),
                  *((c, -2.0) for c in LETTERS), ("\u2581", -3.0), ("<mask>", 0.0)]
        return XLMRobertaTokenizer(vocab=pieces)
    if model_type == "mpnet":
        return _wordpiece(MPNetTokenizer, ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"])
    cls = DistilBertTokenizer if model_type == "distilbert" else BertTokenizer
    return _wordpiece(cls, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])


def _model_files(folder: Path, model_type: str, *, pickle: bool = False, **config) -> dict[str, bytes]:
    import torch
    from transformers import AutoModel
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    torch.manual_seed(0)
    network = AutoModel.from_config(CONFIG_MAPPING[model_type](**config))
    network.save_pretrained(folder)
    if pickle:  # a repository with pytorch_model.bin only
        (folder / "model.safetensors").unlink()
        torch.save(network.state_dict(), folder / "pytorch_model.bin")
    return _files(folder)


def _text_repo(folder: Path, model_type: str, **config) -> dict[str, bytes]:
    tokenizer = _tokenizer(model_type)
    tokenizer.save_pretrained(folder)
    return _model_files(folder, model_type, vocab_size=len(tokenizer), **config)


def _image_repo(folder: Path, model_type: str, processor, **config) -> dict[str, bytes]:
    processor.save_pretrained(folder)
    return _model_files(folder, model_type, image_size=32, patch_size=8, **TINY, **config)


def _json(data) -> bytes:
    return json.dumps(data).encode()


POOLING_CLS = {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False,
               "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}
MODULES = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
           {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
           {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """Every repository's files, made once: name -> {file: bytes}."""
    from transformers import BitImageProcessor, ViTImageProcessor

    root = tmp_path_factory.mktemp("repos")
    made = {
        # a BGE-style sentence-transformers model: CLS pooling, trained for 48 tokens
        "bert": {**_text_repo(root / "bert", "bert", max_position_embeddings=64, **TINY),
                 "modules.json": _json(MODULES), "1_Pooling/config.json": _json(POOLING_CLS),
                 "sentence_bert_config.json": _json({"max_seq_length": 48, "do_lower_case": False})},
        # positions after the padding index (66 - 2); the license only in the README's front matter
        "xlm-roberta": {**_text_repo(root / "xlmr", "xlm-roberta", max_position_embeddings=66, pad_token_id=1, **TINY),
                        "README.md": b"---\nlicense: mit\nlanguage: [en, fr]\n---\n# tiny xlm-r\n"},
        "distilbert": _text_repo(root / "distilbert", "distilbert", pickle=True, dim=32, n_layers=2, n_heads=2,
                                 hidden_dim=37, max_position_embeddings=64),
        "mpnet": _text_repo(root / "mpnet", "mpnet", max_position_embeddings=66, **TINY),
        "vit": _image_repo(root / "vit", "vit", ViTImageProcessor(size={"height": 32, "width": 32})),
        "dinov2": _image_repo(root / "dinov2", "dinov2", BitImageProcessor(
            size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}, do_center_crop=True)),
    }
    return made


#: family -> (repo id, card data and pipeline tag the Hub gives, expected fields of the card)
CASES = {
    "bert": ("acme/tiny-bge", {"license": "apache-2.0"}, "sentence-similarity",
             dict(modality="text", arch="BertModel", pooling="cls", max_length=48, tokenizer="wordpiece",
                  license="Apache-2.0", task="sentence-similarity", weights="model.safetensors",
                  stages=("embeddings", "encoder.layer.0", "encoder.layer.1"))),
    "xlm-roberta": ("acme/tiny-xlmr", None, None,
                    dict(modality="text", arch="XLMRobertaModel", pooling="mean", max_length=64,
                         tokenizer="sentencepiece", license="MIT", task="feature-extraction",
                         weights="model.safetensors", stages=("embeddings", "encoder.layer.0", "encoder.layer.1"))),
    "distilbert": ("acme/tiny-distilbert", {"license": "other", "license_name": "acme-license"}, "fill-mask",
                   dict(modality="text", arch="DistilBertModel", pooling="mean", max_length=64,
                        tokenizer="wordpiece", license="acme-license", task="fill-mask", weights="pytorch_model.bin",
                        stages=("embeddings", "transformer.layer.0", "transformer.layer.1"))),
    "mpnet": ("acme/tiny-mpnet", None, None,
              dict(modality="text", arch="MPNetModel", pooling="mean", max_length=64, tokenizer="wordpiece",
                   license="NOASSERTION", task="feature-extraction", weights="model.safetensors",
                   stages=("embeddings", "encoder.layer.0", "encoder.layer.1"))),
    "vit": ("acme/tiny-vit", {"license": "apache-2.0"}, "image-feature-extraction",
            dict(modality="image", arch="ViTModel", node="last_hidden_state", pooling="cls", license="Apache-2.0",
                 task="image-feature-extraction", weights="model.safetensors",
                 input=dict(size=(32, 32), resize=32, crop_mode="squash", interpolation="bilinear",
                            mean=(0.5, 0.5, 0.5)),
                 stages=("embeddings", "layers.0", "layers.1"))),
    "dinov2": ("acme/tiny-dinov2", {"license": "apache-2.0"}, "image-feature-extraction",
               dict(modality="image", arch="Dinov2Model", node="pooler_output", pooling=None, license="Apache-2.0",
                    task="image-feature-extraction", weights="model.safetensors",
                    input=dict(size=(32, 32), resize=36, crop_mode=None, interpolation="bicubic"),
                    stages=("embeddings", "encoder.layer.0", "encoder.layer.1"))),
}


def _serve(hub, repos, family: str) -> tuple[str, str]:
    repo, card_data, pipeline, _ = CASES[family]
    return repo, hub.add_repo(repo, repos[family], card_data=card_data, pipeline_tag=pipeline)


def _registry_d(zoo_env: Path) -> list[str]:
    folder = zoo_env / "registry.d"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _images(n: int = 2):
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8) for i in range(n)]


def _params(files: dict[str, bytes]) -> int:
    from safetensors.torch import load

    if "model.safetensors" in files:
        tensors = load(files["model.safetensors"])
    else:
        import io

        import torch

        tensors = torch.load(io.BytesIO(files["pytorch_model.bin"]), weights_only=True)
    return sum(t.numel() for name, t in tensors.items() if not name.endswith("position_ids"))


# -- every family: derive, save, pull, list offline, load, embed ----------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("family", list(CASES))
def test_a_card_is_derived_saved_pulled_and_listed_offline(family, repos, hub, zoo_env, monkeypatch):
    repo, sha = _serve(hub, repos, family)
    expected = CASES[family][3]
    fetched = zoo.pull(f"hf:{repo}", quiet=True)
    assert fetched.model == repo and fetched.resolved == sha

    saved = zoo_env / "registry.d" / f"hf--{repo.replace('/', '--')}.toml"
    assert _registry_d(zoo_env) == [saved.name]
    table = tomllib.loads(saved.read_text(encoding="utf-8"))["models"][repo]
    card = zoo.get_card(f"hf:{repo}")
    assert card.name == repo and card.origin.kind == "user" and card.origin.path == saved
    assert (card.modality, card.license, card.task, card.family) == (expected["modality"], expected["license"],
                                                                    expected["task"], family)
    assert card.source.type == "hf" and card.source.get("repo") == repo and card.source.get("revision") == sha
    assert card.provenance == f"derived by zoo from hf:{repo} at {sha}" and "\n" not in card.description
    assert card.adapter.type == "transformers" and dict(card.adapter.options) == {"arch": expected["arch"]}
    assert expected["weights"] in card.source.get("allow") and "config.json" in card.source.get("allow")
    assert {f.name for f in fetched.files} == set(card.source.get("allow"))  # every allowed file is in the repo
    assert card.embedding.dim == 32 and card.stages == expected["stages"] and card.head is None
    assert table["params"] == card.params >= _params(repos[family])  # + the pooler, where weights lack it
    if card.modality == "text":
        assert card.embedding.node == "last_hidden_state" and card.embedding.pooling == expected["pooling"]
        assert (card.input.max_length, card.input.tokenizer) == (expected["max_length"], expected["tokenizer"])
        assert "tokenizer.json" in card.source.get("allow")
    else:
        assert (card.embedding.node, card.embedding.pooling) == (expected["node"], expected["pooling"])
        assert "preprocessor_config.json" in card.source.get("allow")
        for key, value in expected["input"].items():
            assert getattr(card.input, key) == value, key

    backbone = zoo.load(f"hf:{repo}")
    stages = backbone.stages()
    assert [name for name, _ in stages] == list(card.stages)  # every stage is a submodule
    assert sum(len(params) for _, params in stages) == len(list(backbone.body.parameters()))
    vectors = backbone.embed(TEXTS if card.modality == "text" else _images())
    assert tuple(vectors.shape) == (2, 32)

    # offline, with the server gone: listed from registry.d, and it loads from the HF cache
    hub.stop()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    catalog.clear_cache()
    assert zoo.registry()[repo].source.get("revision") == sha
    assert zoo.get_card(f"hf:{repo}").origin.path == saved
    again = zoo.load(f"hf:{repo}").embed(TEXTS if card.modality == "text" else _images())
    assert (again - vectors).abs().max() < 1e-5


def test_the_derived_card_matches_the_repo_and_a_second_pull_asks_nothing(repos, hub, zoo_env):
    repo, sha = _serve(hub, repos, "bert")
    zoo.pull(f"hf:{repo}", quiet=True)
    marker = f"/{repo}/resolve/{sha}/"
    downloaded = sorted(p.split(marker, 1)[1] for p in hub.paths() if p.startswith("GET ") and marker in p)
    # the describing files (to derive the card), then the ones the card allows (the pull): nothing else
    assert downloaded == sorted(["config.json", "modules.json", "sentence_bert_config.json", "tokenizer_config.json",
                                 "1_Pooling/config.json", "model.safetensors", "tokenizer.json"])
    card = zoo.get_card(f"hf:{repo}")
    assert "normalizes its embeddings" in card.notes and "Pooling cls from 1_Pooling/config.json" in card.notes
    hub.clear()
    assert zoo.pull(f"hf:{repo}", quiet=True).resolved == sha
    assert hub.count == 0  # the card is in registry.d and the pull record matches it


def test_a_registry_card_for_the_repo_is_used_as_it_is(hub, zoo_env):
    card = zoo.get_card("hf:google-bert/bert-base-uncased")
    assert card.origin.kind == "builtin" and card.name == "google-bert/bert-base-uncased"
    assert zoo.get_card("hf:Google-BERT/bert-base-uncased") == card  # the Hub's ids ignore case
    assert hub.count == 0 and _registry_d(zoo_env) == []


def test_a_registry_card_of_that_name_from_elsewhere_is_not_taken_over(hub, zoo_env):
    write(zoo_env / "registry.d" / "mine.toml", card_toml("acme/taken"))  # a url source, not the hf repo
    with pytest.raises(PullError, match=r"'hf:acme/taken'.*'acme/taken'.*another model.*zoo show acme/taken"):
        zoo.get_card("hf:acme/taken")
    assert _registry_d(zoo_env) == ["mine.toml"] and hub.count == 0


@pytest.mark.parametrize("model_type, config", [
    ("roberta", {"pad_token_id": 1, "max_position_embeddings": 66}), ("camembert", {"pad_token_id": 1}),
    ("electra", {"embedding_size": 16}), ("deit", {"image_size": 32, "patch_size": 8}),
    ("convnext", {"hidden_sizes": [8, 32], "depths": [1, 1], "num_stages": 2}),
    ("swin", {"image_size": 32, "patch_size": 4, "embed_dim": 8, "depths": [1, 1], "num_heads": [1, 2],
              "window_size": 4}),
])
def test_every_family_s_stages_and_embedding_match_the_network(model_type, config):
    """The families without a served repository above: the derived stages are hidden_states in order and
    the embedding node has the derived size (a real forward pass of a tiny random model)."""
    import torch
    from transformers import AutoModel
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from zoo_hf.finder import FAMILIES, _build, _Repo

    family = FAMILIES[model_type]
    base = {} if "hidden_sizes" in config or "embed_dim" in config else {**TINY, "vocab_size": 50}
    full = {"model_type": model_type, **base, **config}
    built = _build(_Repo("acme/x", "0" * 40, frozenset(), None, None, {}), model_type, full)
    network = AutoModel.from_config(CONFIG_MAPPING[model_type](**{k: v for k, v in full.items() if k != "model_type"}))
    assert built.params == sum(p.numel() for p in network.parameters())
    for stage in built.stages:
        network.get_submodule(stage)
    inputs = ({"pixel_values": torch.randn(2, 3, 32, 32)} if family.modality == "image"
              else {"input_ids": torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]])})
    out = network.eval()(**inputs, output_hidden_states=True)
    assert len(out.hidden_states) == len(built.stages) == 3
    node = getattr(out, family.node)
    assert node.shape[-1] == built.dim and node.dim() == (3 if family.pooling or family.modality == "text" else 2)


IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 3}


@pytest.mark.parametrize("processor, expected", [
    ({"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224}, "crop_pct": 0.875},
     {"size": [224, 224], "resize": 256}),  # shorter side to 224 / crop_pct, then the crop
    ({"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 384}, "crop_pct": None},
     {"size": [384, 384], "resize": 384, "crop_mode": "squash"}),
    ({"image_processor_type": "DeiTImageProcessor", "size": {"height": 256, "width": 256}, "do_center_crop": True,
      "crop_size": {"height": 224, "width": 224}}, {"size": [224, 224], "resize": 256, "crop_mode": "squash"}),
    ({"image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224}, "resample": 2},
     {"size": [224, 224], "resize": 224, "crop_mode": "squash", "interpolation": "bilinear"}),  # also Swin's
    ({"feature_extractor_type": "CLIPFeatureExtractor", "size": 224, "crop_size": 224, "do_center_crop": True},
     {"size": [224, 224], "resize": 224}),  # an old int size: the shorter side for CLIP-style processors
])
def test_image_processor_configs_become_the_card_s_input(processor, expected):
    from zoo_hf.finder import _image_input

    spec, _ = _image_input({**IMAGENET, **processor}, "hf:acme/x")
    assert {k: spec.get(k) for k in expected} == expected
    assert spec["mean"] == IMAGENET["image_mean"] and spec.get("interpolation") in ("bicubic", "bilinear")
    assert "crop_mode" in expected or "crop_mode" not in spec


# -- the CLI, in subprocesses -------------------------------------------------------------------------------

def test_zoo_show_after_the_pull_offline(repos, hub, zoo_env):
    repo, sha = _serve(hub, repos, "vit")
    zoo.pull(f"hf:{repo}", quiet=True)  # the CLI's pull is this call (and test_an_unknown_repo runs it)
    hub.stop()
    shown = run_zoo("--offline", "show", f"hf:{repo}")
    assert shown.returncode == 0, shown.stderr
    assert repo in shown.stdout and "ViTModel" in shown.stdout and sha in shown.stdout
    assert str(zoo_env / "registry.d" / "hf--acme--tiny-vit.toml") in shown.stdout  # its origin
    listed = run_zoo("--offline", "list", "--json", "tiny-vit")
    assert [m["name"] for m in json.loads(listed.stdout)] == [repo]


def test_showing_a_derived_card_imports_neither_torch_nor_transformers(repos, hub, zoo_env):
    repo, _ = _serve(hub, repos, "mpnet")
    zoo.get_card(f"hf:{repo}")  # derived here (that imports them)
    code = ("import sys, zoo\n"
            f"card = zoo.get_card('hf:{repo}')\n"
            "print(card.name, sorted(m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "ZOO_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [repo, "[]"]


# -- export --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_derived_vit_exports_to_a_validated_onnx_file(repos, hub, tmp_path):
    repo, _ = _serve(hub, repos, "vit")
    result = zoo.export(f"hf:{repo}", tmp_path / "vit.onnx", pretrained=True, samples=2, log=lambda _: None)
    assert result.path.is_file() and result.info.model == repo
    assert result.info.validation["samples"] == 2 and result.info.validation["max_abs_diff"] < 1e-3


# -- bad input: one line each, nothing under registry.d ---------------------------------------------------

def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_an_unknown_repo(hub, zoo_env):
    with pytest.raises(PullError) as caught:
        zoo.pull("hf:acme/no-such-model", quiet=True)
    message = _one_line(caught.value)
    assert "hf:acme/no-such-model" in message and "does not exist" in message and "HF_TOKEN" in message
    assert _registry_d(zoo_env) == []
    result = run_zoo("pull", "hf:acme/no-such-model")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [ln for ln in result.stderr.splitlines() if ln.strip()] == [f"Error: {message}"]


def test_an_unsupported_architecture(hub, zoo_env):
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 32, "n_layer": 2, "n_head": 2}
    hub.add_repo("acme/tiny-gpt2", {"config.json": _json(config), "model.safetensors": b"\x00" * 16})
    with pytest.raises(RegistryError) as caught:
        zoo.pull("hf:acme/tiny-gpt2", quiet=True)
    message = _one_line(caught.value)
    assert "hf:acme/tiny-gpt2" in message and "GPT2LMHeadModel" in message and "'gpt2'" in message
    assert "supported: BERT (bert)" in message and "DINOv2 (dinov2)" in message
    assert _registry_d(zoo_env) == []


def test_a_gated_repo_without_a_token(repos, hub, zoo_env, monkeypatch):
    hub.add_repo("acme/gated-bert", repos["bert"], token="hf_test_secret")
    with pytest.raises(PullError) as caught:
        zoo.pull("hf:acme/gated-bert", quiet=True)
    message = _one_line(caught.value)
    assert "hf:acme/gated-bert" in message and "gated" in message and "HF_TOKEN" in message
    assert _registry_d(zoo_env) == []
    monkeypatch.setenv("HF_TOKEN", "hf_test_secret")
    assert zoo.get_card("hf:acme/gated-bert").source.get("repo") == "acme/gated-bert"


def test_offline_and_never_derived(hub, zoo_env, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as caught:
        zoo.pull("hf:acme/tiny-bge")
    message = _one_line(caught.value)
    assert "'hf:acme/tiny-bge' was never pulled" in message and "zoo pull hf:acme/tiny-bge" in message
    with pytest.raises(OfflineError):
        zoo.get_card("hf:acme/tiny-bge")
    assert hub.count == 0 and _registry_d(zoo_env) == []


def test_a_prefix_no_plugin_owns(zoo_env):
    with pytest.raises(LoadError, match=r"no loaded plugin finds models named nope:\.\.\. \(prefixes: hf:\)"):
        zoo.get_card("nope:acme/x")


def test_a_repo_that_is_not_a_transformers_model(hub, zoo_env):
    hub.add_repo("acme/weights-only", {"model.safetensors": b"\x00" * 16})
    with pytest.raises(RegistryError, match=r"hf:acme/weights-only.*no config\.json"):
        zoo.get_card("hf:acme/weights-only")
    assert _registry_d(zoo_env) == []


# -- remote code still needs consent ------------------------------------------------------------------

@pytest.mark.slow
def test_a_config_with_auto_map_asks_for_consent(repos, hub, zoo_env, monkeypatch):
    config = json.loads(repos["bert"]["config.json"])
    config["auto_map"] = {"AutoConfig": "configuration_acme.AcmeConfig", "AutoModel": "modeling_acme.AcmeModel"}
    files = {**repos["bert"], "config.json": _json(config), "modeling_acme.py": b"raise SystemExit('never run')\n"}
    hub.add_repo("acme/remote-bert", files)
    card = zoo.get_card("hf:acme/remote-bert")
    assert dict(card.adapter.options) == {"arch": "AutoModel", "trust_remote_code": True}
    assert "*.py" in card.source.get("allow") and "ZOO_TRUST_REMOTE_CODE=1" in card.notes
    assert card.params > 0 and card.stages[-1] == "encoder.layer.1"  # derived without running the repo's code
    monkeypatch.delenv("ZOO_TRUST_REMOTE_CODE", raising=False)
    with pytest.raises(LoadError, match=r"runs code from its repository.*ZOO_TRUST_REMOTE_CODE=1"):
        zoo.load("hf:acme/remote-bert")


# -- the hook ------------------------------------------------------------------------------------------

def test_finders_are_a_hook_of_their_own():
    import types

    from zoo import hookimpl
    from zoo.plugins import PluginHost, PluginWarning

    host = PluginHost()
    assert host.finders()["hf"].plugin == "zoo_hf"
    assert "register_finders" in {p.name: p for p in host.plugins()}["zoo_hf"].hooks

    class Again:
        prefix = "hf"

        def find(self, ref, cache):
            return ""

    module = types.ModuleType("hf_again")
    module.register_finders = hookimpl(lambda register: register(Again()))
    host.register(module)
    with pytest.raises(PluginError, match=r"finder prefix 'hf' is registered twice: by plugin '(zoo_hf|hf_again)' and by plugin '(zoo_hf|hf_again)'"):
        host.finders()
    host.unregister("hf_again")

    class NoFind:
        prefix = "nofind"

    broken = types.ModuleType("nofind")
    broken.register_finders = hookimpl(lambda register: register(NoFind()))
    host.register(broken)
    with pytest.warns(PluginWarning, match=r"nofind.*needs a method `find\(ref, cache\) -> str`"):
        assert set(host.finders()) == {"hf"}


def test_a_finder_that_gives_a_bad_card_leaves_nothing(zoo_env, monkeypatch):
    import types

    from zoo import hookimpl
    from zoo.plugins import get_host

    class Sloppy:
        prefix = "sloppy"

        def find(self, ref, cache):
            return f'[models."{ref}"]\ndescription = "no other field"\n'

    module = types.ModuleType("sloppy")
    module.register_finders = hookimpl(lambda register: register(Sloppy()))
    get_host().register(module)
    try:
        with pytest.raises(PluginError, match=r"plugin 'sloppy' derived a card for sloppy:acme/x that zoo cannot use"):
            zoo.get_card("sloppy:acme/x")
    finally:
        get_host().unregister("sloppy")
    assert _registry_d(zoo_env) == []
