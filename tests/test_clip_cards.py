"""The card format's second tower (an image-text model's ``text`` and ``joint`` tables), and the
image-text cards: derived from the real repositories' file layouts, and written by hand.

The real ids' config.json, preprocessor_config.json and tokenizer_config.json below are copies of
the Hub's files as stored by the `search` tool's documentation corpus (the repositories
themselves, or their mirrors named "Duplicate from ..."; the weights cannot be downloaded here):
the finder derives each card from them with the architecture built on the meta device, and the
hand-written cards in registry.toml must be what it derives. No network, no weights.
"""

from __future__ import annotations

import pytest
from conftest import card_toml, write

import zoo
from zoo.card import JointSpace, TextTower, tower_card
from zoo.catalog import load_registry
from zoo.errors import RegistryError
from zoo.plugins import PluginHost
from zoo.registries import card_from_table, parse_registry_text

MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
CLIP_PRE = {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
            "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": MEAN, "image_std": STD, "resample": 3,
            "size": 224}  # openai/clip-vit-base-patch32 (and -patch16, -large-patch14, LAION's): 316 bytes
CLIP_TOKENIZER = {"model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}
CLIP_FILES = ["config.json", "merges.txt", "model.safetensors", "preprocessor_config.json", "pytorch_model.bin",
              "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"]


def _clip(**vision) -> dict:
    """openai/clip-vit-base-patch32's config.json as transformers 4.36 writes its non-default keys."""
    return {"architectures": ["CLIPModel"], "initializer_factor": 1.0, "logit_scale_init_value": 2.6592,
            "model_type": "clip", "projection_dim": 512,
            "text_config": {"bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "model_type": "clip_text_model"},
            "vision_config": {"dropout": 0.0, "model_type": "clip_vision_model", **vision}}


#: id -> (config.json, preprocessor_config.json, tokenizer_config.json, files) as the Hub has them
REAL = {
    "openai/clip-vit-base-patch32": (_clip(), CLIP_PRE, CLIP_TOKENIZER, CLIP_FILES),
    "openai/clip-vit-base-patch16": (_clip(patch_size=16), CLIP_PRE, CLIP_TOKENIZER, CLIP_FILES),
    "openai/clip-vit-large-patch14": (
        {"architectures": ["CLIPModel"], "initializer_factor": 1.0, "logit_scale_init_value": 2.6592,
         "model_type": "clip", "projection_dim": 768,
         "text_config": {"dropout": 0.0, "hidden_size": 768, "intermediate_size": 3072, "model_type": "clip_text_model",
                         "num_attention_heads": 12, "projection_dim": 768},
         "vision_config": {"dropout": 0.0, "hidden_size": 1024, "intermediate_size": 4096,
                           "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24,
                           "patch_size": 14, "projection_dim": 768}}, CLIP_PRE, CLIP_TOKENIZER, CLIP_FILES),
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": (
        {"architectures": ["CLIPModel"], "initializer_factor": 1.0, "logit_scale_init_value": 2.6592,
         "model_type": "clip", "projection_dim": 512,
         "text_config": {"dropout": 0.0, "hidden_act": "gelu", "model_type": "clip_text_model"},
         "vision_config": {"dropout": 0.0, "hidden_act": "gelu", "model_type": "clip_vision_model"}},
        CLIP_PRE, CLIP_TOKENIZER, CLIP_FILES + ["open_clip_config.json", "open_clip_pytorch_model.bin"]),
    "google/siglip-base-patch16-224": (
        {"architectures": ["SiglipModel"], "initializer_factor": 1.0, "model_type": "siglip",
         "text_config": {"model_type": "siglip_text_model"}, "vision_config": {"model_type": "siglip_vision_model"}},
        {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
         "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5],
         "processor_class": "SiglipProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
         "size": {"height": 224, "width": 224}},
        {"eos_token": "</s>", "model_max_length": 64, "pad_token": "</s>", "tokenizer_class": "SiglipTokenizer"},
        ["config.json", "model.safetensors", "preprocessor_config.json", "special_tokens_map.json", "spiece.model",
         "tokenizer_config.json"]),
}
#: what is known of each, to check the derivation by (parameter counts: the papers' and model cards' figures)
EXPECTED = {
    "openai/clip-vit-base-patch32": dict(params=151_277_313, dim=512, layers=12, text_layers=12, max_length=77),
    "openai/clip-vit-base-patch16": dict(params=149_620_737, dim=512, layers=12, text_layers=12, max_length=77),
    "openai/clip-vit-large-patch14": dict(params=427_616_513, dim=768, layers=24, text_layers=12, max_length=77),
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": dict(params=151_277_313, dim=512, layers=12, text_layers=12,
                                                  max_length=77),
    "google/siglip-base-patch16-224": dict(params=203_155_970, dim=768, layers=12, text_layers=12, max_length=64),
}


def _derived(name: str) -> dict:
    from zoo_hf.finder import _Repo, card_table

    config, processor, tokenizer, files = REAL[name]
    repo = _Repo(name, "0" * 40, frozenset(files), None, None,
                 {"config.json": config, "preprocessor_config.json": processor, "tokenizer_config.json": tokenizer})
    return card_table(repo)


@pytest.mark.parametrize("name", sorted(REAL))
def test_the_real_ids_layouts_derive_the_hand_written_cards(name):
    table, expected = _derived(name), EXPECTED[name]
    siglip = name.startswith("google/")
    assert table["params"] == expected["params"]
    assert table["embedding"] == {"node": "image_embeds", "dim": expected["dim"]}
    assert table["joint"] == {"dim": expected["dim"], "scoring": "sigmoid" if siglip else "softmax"}
    assert len(table["stages"]) == len(table["text"]["stages"]) - expected["text_layers"] + expected["layers"]
    assert table["text"]["max_length"] == expected["max_length"]
    assert table["input"]["size"] == [224, 224] and table["input"]["interpolation"] == "bicubic"
    assert table["input"].get("crop_mode") == ("squash" if siglip else None)  # SigLIP resizes both sides
    assert table["source"]["allow"][1] == "model.safetensors" and "pytorch_model.bin" not in table["source"]["allow"]
    # the registry's hand-written card is the derived one, with a name, a license, a paper and notes
    card = zoo.get_card(name)
    derived = parse_registry_text(card_toml(name, "", _toml_body(table)), card.origin)[0]
    for field in ("params", "modality", "embedding", "stages", "input", "text", "family"):
        assert getattr(card, field) == getattr(derived, field), field
    assert (card.joint.dim, card.joint.scoring) == (derived.joint.dim, derived.joint.scoring)
    assert set(card.source.get("allow")) == set(derived.source.get("allow"))
    assert card.adapter == derived.adapter and "image-text" in card.tags and card.paper


def _toml_body(table: dict) -> str:
    from zoo_hf.finder import to_toml

    return to_toml("x", table).split("\n", 2)[2]


def test_the_catalogue_marks_image_text_models_and_shows_their_towers():
    registry = load_registry(host=PluginHost(), user_files=False)
    image_text = sorted(c.name for c in registry.values() if c.text is not None)
    assert image_text == sorted(REAL)
    assert all("image-text" in registry[n].tags and registry[n].towers == ("image", "text") for n in image_text)
    # every other card is as it was: no second tower, and nothing new in its JSON
    others = [c for c in registry.values() if c.text is None]
    assert all(c.joint is None and c.towers == (c.modality,) for c in others)
    assert not any({"text", "joint", "tower"} & set(c.to_dict()) for c in others)


# --------------------------------------------------------------------------- the format


TWO_TOWERS = """
    description = "tiny image-text"
    modality = "image"
    task = "zero-shot-image-classification"
    license = "MIT"
    params = 1000
    source = { type = "hf", repo = "acme/x" }
    adapter = { type = "transformers", arch = "CLIPModel" }
    input = { size = [32, 32], mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5] }
    embedding = { node = "image_embeds", dim = 24 }
    stages = ["vision_model.embeddings", "vision_model.encoder.layers.0"]
"""
TEXT = 'text = { tokenizer = "bpe", max_length = 16, pooling = "eos", projection = "text_projection", ' \
       'stages = ["text_model.embeddings", "text_model.encoder.layers.0"] }'
JOINT = 'joint = { dim = 24, scoring = "softmax" }'


def _parse(tmp_path, body: str = TWO_TOWERS, extra: str = f"{TEXT}\n{JOINT}"):
    path = write(tmp_path / "r.toml", card_toml("acme/x", body, extra))
    return parse_registry_text(path.read_text(), zoo.Origin("user", str(path), path), label=str(path))[0]


def test_a_card_with_a_second_tower_parses_and_its_text_view_is_a_text_models_card(tmp_path):
    card = _parse(tmp_path)
    assert card.text == TextTower("bpe", 16, "eos", ("text_model.embeddings", "text_model.encoder.layers.0"),
                                  "text_projection", "longest")
    assert card.joint == JointSpace(24, "softmax") and card.towers == ("image", "text")
    text = tower_card(card, "text")
    assert (text.modality, text.tower, text.name, text.source) == ("text", "text", card.name, card.source)
    assert (text.input.max_length, text.input.tokenizer) == (16, "bpe")
    assert (text.embedding.node, text.embedding.dim, text.embedding.pooling) == ("text_embeds", 24, "pooler")
    assert text.stages == card.text.stages and tower_card(card, "image") is card
    with pytest.raises(ValueError, match="no audio tower"):
        tower_card(card, "audio")
    # the catalogue's fast build makes the same card
    table = {k: v for k, v in card.to_dict().items() if k not in ("name", "origin", "replace")}
    assert card_from_table("acme/x", table, card.origin) == card
    assert card.to_dict()["joint"] == {"dim": 24, "scoring": "softmax"}


@pytest.mark.parametrize("extra, key, message", [
    (TEXT, "joint", "has `text` but no `joint`"),
    (JOINT, "text", "has `joint` but no `text`"),
    (f'{TEXT}\njoint = {{ dim = 32, scoring = "softmax" }}', "joint.dim", "32 dimensions but the image embedding 24"),
    (f'{TEXT}\njoint = {{ dim = 24, scoring = "cosine" }}', "joint.scoring", "unknown scoring 'cosine'"),
    (f'{TEXT}\njoint = {{ dim = 24, scoring = "softmax", logit_bias = -10.0 }}', "joint.logit_bias",
     "goes with sigmoid scoring"),
    (f'{TEXT}\njoint = {{ dim = 24, scoring = "softmax", logit_scale = 0 }}', "joint.logit_scale", "must be positive"),
    (f'{TEXT}\njoint = {{ dim = 24, scoring = "softmax", temperature = 1 }}', "joint.temperature", "unknown key"),
    (TEXT.replace('"eos"', '"first"') + f"\n{JOINT}", "text.pooling", "unknown pooling 'first'"),
    (TEXT.replace('pooling = "eos"', 'pooling = "eos", padding = "right"') + f"\n{JOINT}", "text.padding",
     "unknown padding 'right'"),
    (TEXT.replace("max_length = 16, ", "") + f"\n{JOINT}", "text.max_length", "required field is missing"),
    (TEXT.replace('"text_model.encoder.layers.0"', '"vision_model.embeddings"') + f"\n{JOINT}", "text.stages",
     "stage names repeat: vision_model.embeddings"),
    (TEXT.replace('"bpe"', '"words"') + f"\n{JOINT}", "text.tokenizer", "unknown tokenizer 'words'"),
])
def test_a_bad_second_tower_is_one_line_naming_the_file_model_and_key(tmp_path, extra, key, message):
    with pytest.raises(RegistryError) as caught:
        _parse(tmp_path, extra=extra)
    text = str(caught.value)
    assert "\n" not in text and str(tmp_path / "r.toml") in text and "'acme/x'" in text
    assert f"key {key!r}" in text and message in text


def test_a_second_tower_needs_an_image_card_cut_in_the_joint_space(tmp_path):
    text_card = TWO_TOWERS.replace('modality = "image"', 'modality = "text"').replace(
        'input = { size = [32, 32], mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5] }',
        'input = { max_length = 8, tokenizer = "bpe" }').replace('dim = 24 }', 'dim = 24, pooling = "mean" }')
    with pytest.raises(RegistryError, match="a second tower goes with an image model"):
        _parse(tmp_path, text_card)
    with pytest.raises(RegistryError, match="key 'embedding.node'.*'image_embeds', not 'pooler_output'"):
        _parse(tmp_path, TWO_TOWERS.replace('"image_embeds"', '"pooler_output"'))
