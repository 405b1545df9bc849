"""The `transformers` adapter: a transformers model class (text or image) and its tokenizer from the pulled folder.

An image-text model (CLIPModel, SiglipModel: a card with a ``text`` tower) is one network of two
towers; each of its cards (the image card, and its text view, ``zoo.card.tower_card``) gets a
module that holds that tower's parts only and computes what transformers' own
``get_image_features`` / ``get_text_features`` compute.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager

from zoo import Fetched, Field, LoadError, ModelCard


def _user_trusts_remote_code() -> bool:
    return os.environ.get("ZOO_TRUST_REMOTE_CODE", "").strip().lower() in ("1", "true", "yes")


class TransformersAdapter:
    """``transformers`` model class + tokenizer loaded from the pulled folder.

    Repository code never runs unless both the card (``trust_remote_code = true``) and the user
    (``ZOO_TRUST_REMOTE_CODE=1``) opt in.
    """

    name = "transformers"
    fields = {
        "arch": Field(str, required=True, help="transformers model class, e.g. BertModel"),
        "trust_remote_code": Field(bool, help="the card's consent to run the repo's code; the user must opt in too"),
    }

    def _trust(self, card: ModelCard) -> bool:
        wanted = bool(card.adapter.get("trust_remote_code", False))
        if wanted and not _user_trusts_remote_code():
            raise LoadError(f"model {card.name!r} runs code from its repository; review it, then set "
                            f"ZOO_TRUST_REMOTE_CODE=1 to allow it")
        return wanted

    def build(self, card: ModelCard, fetched: Fetched | None):
        import transformers

        arch = card.adapter.get("arch")
        cls = getattr(transformers, arch, None)
        if cls is None:
            raise LoadError(f"model {card.name!r}: transformers {transformers.__version__} has no class "
                            f"{arch!r}; fix the card's adapter.arch")
        if fetched is None:
            raise LoadError(f"model {card.name!r}: a transformers architecture is described by its config.json; "
                            f"pull the model first (`zoo pull {card.name}`)")
        trust = self._trust(card)
        try:
            with _quiet_transformers():
                network = cls.from_pretrained(str(fetched.root), local_files_only=True, trust_remote_code=trust)
        except (OSError, ValueError) as exc:
            raise LoadError(f"model {card.name!r}: transformers cannot load {fetched.root}: {exc}") from None
        if card.text is not None:
            from zoo_hf.towers import check_scores

            check_scores(network, card)
        return network.eval()

    def extractor(self, card: ModelCard, model, nodes: Sequence[str]):
        if card.text is not None:
            from zoo_hf.towers import tower_states

            return tower_states(model, card, nodes)
        return _hidden_states(model, card, nodes)

    def tokenizer(self, card: ModelCard, fetched: Fetched):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(fetched.root), local_files_only=True,
                                                      trust_remote_code=self._trust(card))
        except (OSError, ValueError, ImportError) as exc:  # ImportError: a backend it needs (sentencepiece)
            raise LoadError(f"model {card.name!r}: no usable tokenizer in {fetched.root}: {_first_line(exc)}") from None
        if card.text is not None and card.text.padding == "max_length":
            from zoo_hf.towers import PaddedToMaxLength

            return PaddedToMaxLength(tokenizer, card.text.max_length)
        return tokenizer


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@contextmanager
def _quiet_transformers():
    """transformers draws a progress bar per load; zoo loads are quick and say nothing."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _hidden_states(model, card: ModelCard, nodes: Sequence[str]):
    """A module returning ``{node: tensor}``: ``last_hidden_state``, ``pooler_output``, or a stage's output.

    Text models take ``input_ids`` and ``attention_mask``; image models a pixel batch (NCHW). The
    card's stages are the embeddings and then each encoder layer: stage ``i`` is ``hidden_states[i]``."""
    import torch.nn as nn

    positions = {name: i for i, name in enumerate(card.stages)}
    unknown = [n for n in nodes if n not in positions and n not in ("last_hidden_state", "pooler_output")]
    if unknown:
        raise LoadError(f"model {card.name!r}: unknown nodes {', '.join(unknown)}; use last_hidden_state, "
                        f"pooler_output or a stage: {', '.join(card.stages)}")

    class HiddenStates(nn.Module):
        stage_prefix = "model."

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.nodes = tuple(nodes)
            self.hidden = any(n in positions for n in self.nodes)

        def outputs(self, out) -> dict:
            return {node: out.hidden_states[positions[node]] if node in positions else getattr(out, node)
                    for node in self.nodes}

    class TextStates(HiddenStates):
        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return self.outputs(self.model(input_ids=input_ids, attention_mask=attention_mask,
                                           output_hidden_states=self.hidden, **extra))

    class ImageStates(HiddenStates):
        def forward(self, pixel_values):
            return self.outputs(self.model(pixel_values=pixel_values, output_hidden_states=self.hidden))

    if card.modality not in ("text", "image"):
        raise LoadError(f"model {card.name!r}: the transformers adapter takes text and image models, not "
                        f"{card.modality}")
    return (TextStates if card.modality == "text" else ImageStates)()
