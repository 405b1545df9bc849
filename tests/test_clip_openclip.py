"""LAION's open_clip repositories through zoo, against open_clip itself.

LAION publishes its OpenCLIP models on the Hub with both layouts in one repository: open_clip's
(``open_clip_config.json`` and ``open_clip_model.safetensors``, what ``hf-hub:ORG/NAME`` loads)
and transformers' (``config.json``, ``model.safetensors``, the CLIP tokenizer and image
processor files), which zoo's ``hf:`` path reads. Here a tiny random open_clip model (width 32,
2 layers, 32x32 pictures, the real 49,408-token CLIP vocabulary) is written the same way: its
open_clip files with open_clip's own writer, its transformers files by converting the weights
(the key mapping below); open_clip loads the repository from the local Hub server by its
``hf-hub:`` name, zoo by ``hf:``, and both give the same vectors from the same pictures and
sentences, preprocessing and tokenization included.
"""

from __future__ import annotations

import numpy as np
import pytest
import hubserver
from clipkit import files_of, shared_home, write_photos  # noqa: F401

import zoo
from zoo.card import tower_card

open_clip = pytest.importorskip("open_clip", reason="pip install open_clip_torch")

module_hub = hubserver.module_hub
LAION = "acme/tiny-laion"
WIDTH, LAYERS, HEADS, EMBED, SIDE, PATCH = 32, 2, 2, 24, 32, 8
TEXTS = ["a photo of a cat", "a red car at night", "a diagram of the solar system, drawn in pencil"]


def _to_transformers(state: dict) -> dict:
    """open_clip's CLIP weights under transformers' CLIPModel names (its attention's one in_proj
    split into q, k, v; its projections, stored as (width, embed), transposed)."""
    out = {"logit_scale": state["logit_scale"],
           "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
           "text_model.final_layer_norm.weight": state["ln_final.weight"],
           "text_model.final_layer_norm.bias": state["ln_final.bias"],
           "text_projection.weight": state["text_projection"].T.contiguous(),
           "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
           "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
           "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
           "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
           "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
           "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
           "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
           "visual_projection.weight": state["visual.proj"].T.contiguous()}
    blocks = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
              "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for theirs, ours in (("transformer", "text_model"), ("visual.transformer", "vision_model")):
        for i in range(LAYERS):
            block, layer = f"{theirs}.resblocks.{i}", f"{ours}.encoder.layers.{i}"
            for name, new in blocks.items():
                for kind in ("weight", "bias"):
                    out[f"{layer}.{new}.{kind}"] = state[f"{block}.{name}.{kind}"]
            for kind in ("weight", "bias"):
                for part, tensor in zip("qkv", state[f"{block}.attn.in_proj_{kind}"].chunk(3)):
                    out[f"{layer}.self_attn.{part}_proj.{kind}"] = tensor.contiguous()
    return out


def _laion_repo(folder):
    """Both layouts of one tiny open_clip model, as LAION's repositories hold them."""
    import safetensors.torch
    import torch
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg
    from open_clip.push_to_hf_hub import save_config_for_hf
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    torch.manual_seed(3)
    config = {"embed_dim": EMBED,
              "vision_cfg": {"image_size": SIDE, "layers": LAYERS, "width": WIDTH, "head_width": WIDTH // HEADS,
                             "patch_size": PATCH},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": WIDTH, "heads": HEADS, "layers": LAYERS}}
    model = open_clip.CLIP(embed_dim=EMBED, vision_cfg=CLIPVisionCfg(**config["vision_cfg"]),
                           text_cfg=CLIPTextCfg(**config["text_cfg"]))
    with torch.no_grad():
        model.logit_scale.fill_(4.6)
    # what open_clip's factory sets on a model it creates: the preprocessing its config records
    model.visual.image_mean, model.visual.image_std = OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    model.visual.preprocess_cfg = {"interpolation": "bicubic", "resize_mode": "shortest"}
    folder.mkdir(parents=True)
    save_config_for_hf(model, folder / "open_clip_config.json", model_config=config)
    safetensors.torch.save_file(model.state_dict(), folder / "open_clip_model.safetensors")
    # transformers' files: the same weights, the same BPE (open_clip's vocabulary under CLIP's token names)
    simple = SimpleTokenizer()
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {names.get(token, token): i for token, i in simple.encoder.items()}
    merges = [pair for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda item: item[1])]
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    tokenizer.save_pretrained(folder)
    tower = dict(hidden_size=WIDTH, intermediate_size=4 * WIDTH, num_attention_heads=HEADS, num_hidden_layers=LAYERS,
                 hidden_act="gelu")
    hf = CLIPModel(CLIPConfig(text_config=dict(**tower, vocab_size=49408, max_position_embeddings=77,
                                               bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
                              vision_config=dict(**tower, image_size=SIDE, patch_size=PATCH), projection_dim=EMBED))
    hf.load_state_dict(_to_transformers(model.state_dict()), strict=True)
    hf.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE},
                       image_mean=list(model.visual.image_mean), image_std=list(model.visual.image_std)
                       ).save_pretrained(folder)
    return files_of(folder)


@pytest.fixture(scope="module")
def laion(module_hub, tmp_path_factory):
    module_hub.add_repo(LAION, _laion_repo(tmp_path_factory.mktemp("laion") / "repo"), card_data={"license": "mit"})
    return LAION


@pytest.mark.slow
def test_a_laion_repository_gives_open_clips_own_vectors_through_zoo(laion, shared_home, tmp_path):
    import torch
    from PIL import Image

    theirs, preprocess = open_clip.create_model_from_pretrained(f"hf-hub:{laion}")
    tokenize = open_clip.get_tokenizer(f"hf-hub:{laion}")
    theirs.eval()
    card = zoo.get_card(f"hf:{laion}")
    assert card.text.pooling == "eos" and card.joint.dim == EMBED and card.text.max_length == 77
    images = sorted(write_photos(tmp_path / "photos").glob("*.png"))
    with torch.no_grad():
        image_vectors = theirs.encode_image(torch.stack([preprocess(Image.open(p)) for p in images])).numpy()
        text_vectors = theirs.encode_text(tokenize(TEXTS)).numpy()
    vision, text = zoo.load(card, engine="torch"), zoo.load(tower_card(card, "text"), engine="torch")
    ours_images, ours_texts = vision.embed(images).numpy(), text.embed(TEXTS).numpy()
    for ours, reference in ((ours_images, image_vectors), (ours_texts, text_vectors)):
        cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
        assert 1 - cosine.min() < 1e-5
    # the same tokens: open_clip pads with 0 to its context length, transformers with the end token
    ids = text.preprocess(TEXTS)["input_ids"].numpy()
    reference_ids = tokenize(TEXTS).numpy()
    for row, reference in zip(ids, reference_ids):
        used = int((reference != 0).sum())
        assert list(row[:used]) == list(reference[:used])
    # zero-shot: open_clip's scores (logit_scale * cosine, softmax over the labels)
    classifier = zoo.zero_shot(f"hf:{laion}", ["cat", "car", "diagram"], templates=["a photo of a {}."], engine="torch")
    with torch.no_grad():
        prompts = theirs.encode_text(tokenize([f"a photo of a {c}." for c in classifier.classes]))
        expected = (theirs.logit_scale.exp() * torch.nn.functional.normalize(torch.from_numpy(image_vectors), dim=-1)
                    @ torch.nn.functional.normalize(prompts, dim=-1).T).softmax(-1).numpy()
    np.testing.assert_allclose(classifier.probabilities(ours_images), expected, atol=1e-5)
    # zoo pulls transformers' layout only: open_clip's copy of the weights is not downloaded twice
    assert not any(name.startswith("open_clip") for name in card.source.get("allow"))
