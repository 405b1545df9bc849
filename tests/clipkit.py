"""Tiny image-text repositories for the CLIP/SigLIP tests, saved by transformers itself.

Each is a real architecture with random weights (hidden 32, 2 layers, 32x32 pictures) and the
files the Hub holds for it (config.json, model.safetensors, preprocessor_config.json, tokenizer
files), published on the local Hub server (tests/hubserver.py) and read through the real `hf:`
path. A module-scoped ZOO_HOME keeps what zoo derives, pulls and compiles for a whole module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["CLIP", "SIGLIP", "VIT", "TINY", "clip_tokenizer", "clip_repo", "siglip_repo", "vit_repo", "files_of",
           "write_photos", "shared_home"]

CLIP, SIGLIP, VIT = "acme/tiny-clip", "acme/tiny-siglip", "acme/tiny-vit"
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
WORDS = "a an the of photo picture cat dog red car at night sunny day bird tree".split()


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def clip_tokenizer(max_length: int = 32):
    """CLIP's own tokenizer class (byte-level BPE) over a vocabulary of single bytes, as merges
    would leave them: real CLIP tokenization, a tiny vocabulary."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def _saved(folder: Path, model, tokenizer, processor) -> dict[str, bytes]:
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    model.save_pretrained(folder)
    return files_of(folder)


def clip_repo(folder: Path) -> dict[str, bytes]:
    """A CLIPModel whose text tower pools the end-of-text token, its logit scale at CLIP's 100."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = clip_tokenizer()
    torch.manual_seed(0)
    config = CLIPConfig(text_config=dict(**TINY, vocab_size=len(tokenizer), max_position_embeddings=32,
                                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                         pad_token_id=tokenizer.pad_token_id),
                        vision_config=dict(**TINY, image_size=32, patch_size=8), projection_dim=24)
    model = CLIPModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(4.6052)  # ln 100, where CLIP's training clamps it
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _saved(folder, model, tokenizer, processor)


def siglip_repo(folder: Path) -> dict[str, bytes]:
    """A SiglipModel (sigmoid scores with a logit bias, texts padded to max_length); its tokenizer
    is a word-level fast tokenizer ending each text with </s> (google's SigLIP repositories ship
    a SentencePiece model, which needs the sentencepiece package)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="</s>",
                                        unk_token="<unk>", model_max_length=16)
    torch.manual_seed(1)
    config = SiglipConfig(text_config=dict(**TINY, vocab_size=len(vocab), max_position_embeddings=16),
                          vision_config=dict(**TINY, image_size=32, patch_size=8))
    model = SiglipModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-5.0)
    return _saved(folder, model, tokenizer, SiglipImageProcessor(size={"height": 32, "width": 32}))


def vit_repo(folder: Path) -> dict[str, bytes]:
    """An image encoder without a text tower."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(2)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    ViTModel(ViTConfig(**TINY, image_size=32, patch_size=8)).save_pretrained(folder)
    return files_of(folder)


def write_photos(folder: Path, count: int = 6) -> Path:
    """Pictures of random blobs, each of another size than the model's input (resized, cropped)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
        Image.fromarray(small).resize((50 + 3 * i, 40 + i), Image.Resampling.BICUBIC).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def shared_home(zoo_env, tmp_path_factory, request, monkeypatch) -> Path:
    """One ZOO_HOME for the module (derived cards, pulls, compiled engines), set after zoo_env's
    fresh plugin host and registry cache."""
    from zoo import catalog

    home = getattr(request.module, "_SHARED_HOME", None)
    if home is None:
        home = tmp_path_factory.mktemp("zoo_home_shared")
        request.module._SHARED_HOME = home
    monkeypatch.setenv("ZOO_HOME", str(home))
    catalog.clear_cache()
    return home
