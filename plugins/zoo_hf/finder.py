"""The `hf` finder: a card for any Hugging Face model by id (``hf:ORG/NAME``), derived from its files.

At the first pull (or ``zoo show``) of a repository that no registry has, the finder resolves the
default branch to a commit, downloads only the small files that describe the model (config.json,
sentence-transformers' modules.json and pooling config, the tokenizer's and the image
processor's configs, the README when the Hub gives no card data) and derives the card:

- ``config.json``: the architecture (``model_type``) gives the modality and the base encoder's
  transformers class (``BertModel``, never a task head); the hidden size gives the embedding's
  dimension; the architecture built from the config with no weights (``torch.device("meta")``)
  gives the exact parameter count and the stages: the embeddings, then each encoder layer;
- text: pooling from ``1_Pooling/config.json`` (mean when there is none), the tokenizer's kind from
  its files, ``max_length`` from the positions the model has and the length it was trained for;
- images: the input from ``preprocessor_config.json`` (size, crop, resampling, mean and std);
- image-text models (CLIP, SigLIP; LAION's open_clip repositories that ship transformers' files
  too): the image tower as above, its embedding the joint-space ``image_embeds``; the text tower
  (tokenizer, ``max_length``, stages, the architecture's pooling and projection) and the joint
  space (its size from the architecture run on shapes alone, the scoring of the architecture;
  the logit scale and bias are left to the weights, which hold them);
- the Hub's card data (or the README's front matter): license and pipeline tag.

The card pins the resolved commit; the core checks it like any registry file and saves it under
``$ZOO_HOME/registry.d``. Only the ``find`` call imports huggingface_hub, torch and transformers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import ModelCard, OfflineError, PullError, RegistryError
from zoo_hf.hub import check_repo_id, first_line, progress_class, translate

if TYPE_CHECKING:  # pragma: no cover
    from zoo import Cache

__all__ = ["HubFinder", "FAMILIES", "card_table", "to_toml"]


@dataclass(frozen=True)
class Towers:
    """An image-text architecture's text tower and joint space, as transformers builds it."""

    pooling: str  # how the text tower makes one vector of its tokens
    projection: str  # the module that maps that vector into the joint space
    scoring: str  # softmax over labels (CLIP) or a sigmoid per label (SigLIP)
    padding: str = "longest"  # "max_length": trained on texts padded to it, every position attended


@dataclass(frozen=True)
class Family:
    """What zoo knows of one architecture (``model_type``) beyond its config."""

    label: str
    modality: str
    tokenizer: str | None = None  # text: the tokenizer's kind when its files do not tell
    padding_offset: bool = False  # text: positions start after the padding index (RoBERTa's), pad_token_id + 1 are lost
    node: str = "last_hidden_state"  # the embedding's node
    pooling: str | None = None  # images: "cls" takes the class token of last_hidden_state
    towers: Towers | None = None  # image-text models: their second (text) tower


#: The architectures a card is derived for; each checked with a tiny random model (tests/test_hf_finder.py).
FAMILIES: Mapping[str, Family] = {
    "bert": Family("BERT", "text", "wordpiece"),
    "roberta": Family("RoBERTa", "text", "bpe", padding_offset=True),
    "xlm-roberta": Family("XLM-RoBERTa", "text", "sentencepiece", padding_offset=True),
    "camembert": Family("CamemBERT", "text", "sentencepiece", padding_offset=True),
    "distilbert": Family("DistilBERT", "text", "wordpiece"),
    "mpnet": Family("MPNet", "text", "wordpiece", padding_offset=True),
    "electra": Family("ELECTRA", "text", "wordpiece"),
    # ViT's and DeiT's pooler is an extra dense + tanh (often untrained): the embedding is the class token
    "vit": Family("ViT", "image", pooling="cls"),
    "deit": Family("DeiT", "image", pooling="cls"),
    # their own pooled output: DINOv2's layer-normed class token, ConvNeXt's and Swin's normed average
    "dinov2": Family("DINOv2", "image", node="pooler_output"),
    "convnext": Family("ConvNeXt", "image", node="pooler_output"),
    "swin": Family("Swin", "image", node="pooler_output"),
    # image-text: the embedding is the image tower's output in the joint space (transformers'
    # get_image_features); CLIP pools the end-of-text token, SigLIP the last position of a text
    # padded to its max length, with a sigmoid per label (transformers' docs for both)
    "clip": Family("CLIP", "image", "bpe", node="image_embeds", towers=Towers("eos", "text_projection", "softmax")),
    "siglip": Family("SigLIP", "image", "sentencepiece", node="image_embeds",
                     towers=Towers("last", "text_model.head", "sigmoid", padding="max_length")),
}

#: Small files that describe a model; each is downloaded when the repository lists it.
DESCRIBING = ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer_config.json",
              "preprocessor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model",
                   "sentencepiece.model", "source.spm", "bpe.codes")
_VOCABULARIES = {"vocab.txt": "wordpiece", "merges.txt": "bpe", "sentencepiece.bpe.model": "sentencepiece",
                 "spiece.model": "sentencepiece", "sentencepiece.model": "sentencepiece"}
#: Hugging Face license ids -> SPDX spelling (the registry's); others are kept as the Hub writes them.
_SPDX = {"apache-2.0": "Apache-2.0", "mit": "MIT", "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause",
         "cc0-1.0": "CC0-1.0", "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
         "cc-by-nc-4.0": "CC-BY-NC-4.0", "cc-by-nc-sa-4.0": "CC-BY-NC-SA-4.0", "cc-by-nc-nd-4.0": "CC-BY-NC-ND-4.0",
         "gpl-3.0": "GPL-3.0", "lgpl-3.0": "LGPL-3.0", "agpl-3.0": "AGPL-3.0", "mpl-2.0": "MPL-2.0",
         "unlicense": "Unlicense", "openrail": "OpenRAIL", "llama2": "Llama2", "unknown": "NOASSERTION"}
#: PIL's resampling numbers (what processors save) -> the card's interpolations (the closest one).
_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", 4: "bilinear", 5: "bilinear"}
_LAYER_LISTS = ("layer", "layers", "stages")


def _supported() -> str:
    return ", ".join(f"{f.label} ({t})" for t, f in FAMILIES.items())


class HubFinder:
    """``hf:ORG/NAME``: a card derived from a Hub repository's files, pinned to its current commit."""

    prefix = "hf"

    def check(self, ref: str) -> None:
        """Refuse a ``ref`` that cannot be a Hub repository id, before zoo reads or writes anything."""
        from zoo import shown_name

        check_repo_id(ref, shown_name(f"hf:{ref}"))

    def serves(self, card: ModelCard, ref: str) -> bool:
        """A registry card named ``ref`` is this repository's when its source is that hf repo."""
        return card.source.type == "hf" and str(card.source.get("repo", "")).lower() == ref.lower()

    def find(self, ref: str, cache: Cache) -> str:
        """The registry TOML of one card for the repository ``ref`` (its default branch, resolved)."""
        from huggingface_hub import constants

        if cache.offline or constants.HF_HUB_OFFLINE:
            switch = "ZOO_OFFLINE=1 / --offline" if cache.offline else "HF_HUB_OFFLINE=1"
            raise OfflineError(f"'hf:{ref}' was never pulled and offline mode is on ({switch}). Connect once: "
                               f"`zoo pull hf:{ref}` with network access derives and saves its card")
        repo = _Repo.fetch(ref, quiet=cache.quiet)
        return to_toml(repo.name, card_table(repo))


# --------------------------------------------------------------------------- the Hub


@dataclass(frozen=True)
class _Repo:
    """What the derivation reads: the repo's id and commit, its file names, its card data, and the
    describing files (parsed)."""

    name: str  # the repo id as the Hub spells it
    commit: str
    files: frozenset[str]
    license: str | None
    pipeline_tag: str | None
    json: Mapping[str, Any]  # file name -> parsed JSON, for the DESCRIBING files it has (and the pooling config)

    @property
    def where(self) -> str:
        return f"hf:{self.name}"

    @classmethod
    def fetch(cls, ref: str, *, quiet: bool) -> _Repo:
        from huggingface_hub import HfApi, hf_hub_download


        from zoo import shown_name

        where = f"hf:{ref}"
        check_repo_id(ref, shown_name(where))
        with _hub_errors(where, ref, "main"):
            info = HfApi().model_info(ref)
        name, commit = info.id or ref, info.sha
        if not commit:
            raise PullError(f"{where}: the Hub did not say which commit its default branch is at; pull again later")
        files = frozenset(s.rfilename for s in info.siblings or ())
        if "config.json" not in files:
            raise RegistryError(f"{where}: the repository has no config.json, so it is not a transformers model "
                                f"zoo can derive a card for ({len(files)} files). Write its card by hand in a "
                                f"registry file")

        def download(filename: str) -> Path:
            with _hub_errors(where, name, commit):
                return Path(hf_hub_download(name, filename, revision=commit, tqdm_class=progress_class(quiet)))

        parsed: dict[str, Any] = {}
        for filename in DESCRIBING:
            if filename in files:
                parsed[filename] = _read_json(download(filename), where, filename)
        pooling = _pooling_file(parsed.get("modules.json"))
        if pooling in files:
            parsed[pooling] = _read_json(download(pooling), where, pooling)
        card_data = info.card_data.to_dict() if info.card_data is not None else None
        if card_data is None and "README.md" in files:
            from huggingface_hub.repocard import metadata_load

            readme = download("README.md")
            try:
                card_data = metadata_load(readme) or {}
            except Exception:  # front matter that is not YAML: the card data is unknown, not an error
                card_data = {}
        card_data = card_data or {}
        return cls(name=name, commit=commit, files=files, license=_license(card_data),
                   pipeline_tag=info.pipeline_tag or card_data.get("pipeline_tag"), json=parsed)


@contextmanager
def _hub_errors(where: str, repo: str, revision: str) -> Iterator[None]:
    """Turn the huggingface_hub errors a user can cause into one line saying what to do."""

    try:
        yield
    except Exception as exc:
        error = translate(exc, f"{where} (Hugging Face repo {repo!r})", name=where, repo=repo, revision=revision,
                          offline=None, repo_hint=f"Check the id in {where} (ORG/NAME as the Hub spells it)",
                          revision_hint="Pull again: the repository changed while zoo read it")
        if error is None:
            raise  # not a user error: a bug keeps its traceback
        raise error from None


def _read_json(path: Path, where: str, filename: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RegistryError(f"{where}: its {filename} is not readable JSON ({first_line(exc)}); zoo cannot derive "
                            f"a card from it. Write its card by hand in a registry file") from None


def _pooling_file(modules: Any) -> str:
    """The sentence-transformers Pooling module's config: named by modules.json, else ``1_Pooling``."""
    for module in modules if isinstance(modules, list) else ():
        if isinstance(module, dict) and str(module.get("type", "")).endswith("Pooling") and module.get("path"):
            return f"{str(module['path']).strip('/')}/config.json"
    return "1_Pooling/config.json"


def _license(card_data: Mapping[str, Any]) -> str | None:
    value = card_data.get("license")
    if isinstance(value, list):
        value = value[0] if value else None
    if not value:
        return None
    if value == "other":
        return str(card_data.get("license_name") or "other")
    return _SPDX.get(str(value).lower(), str(value))


# --------------------------------------------------------------------------- the card


def card_table(repo: _Repo) -> dict[str, Any]:
    """The registry table of ``repo``'s card (see the module's docstring for where each field comes from)."""
    config = repo.json["config.json"]
    if not isinstance(config, dict):
        raise RegistryError(f"{repo.where}: its config.json is not a JSON object; write its card by hand")
    model_type = str(config.get("model_type") or "")
    architectures = ", ".join(config.get("architectures") or []) or "no architectures"
    remote = isinstance(config.get("auto_map"), dict) and bool(config["auto_map"])
    family = FAMILIES.get(model_type)
    if family is None:
        code = " with its own code (auto_map)" if remote else ""
        raise RegistryError(f"{repo.where}: its config.json is a {architectures} (model_type {model_type or 'missing'!r})"
                            f"{code}, which zoo cannot derive a card for; supported: {_supported()}. Write its card "
                            f"by hand in a registry file, or choose an encoder of a supported architecture")
    built = _build(repo, model_type, config, family)
    weights = _weights(repo)
    allow = ["config.json", *weights]
    if family.modality == "text" or family.towers is not None:
        if not any(f in repo.files for f in ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                                              "spiece.model", "sentencepiece.model")):
            what = "text model" if family.towers is None else "image-text model"
            raise RegistryError(f"{repo.where}: a {family.label} {what} without tokenizer files (tokenizer.json, "
                                f"vocab.txt, a SentencePiece model...), so zoo cannot tokenize its input. Use a "
                                f"repository that ships its tokenizer")
        allow += [f for f in TOKENIZER_FILES if f in repo.files]
    if family.modality == "text":
        input_spec, pooling, notes = _text_input(repo, family, built.config)
        embedding: dict[str, Any] = {"node": "last_hidden_state", "dim": built.dim, "pooling": pooling}
    else:
        if "preprocessor_config.json" not in repo.json:
            raise RegistryError(f"{repo.where}: a {family.label} image model without preprocessor_config.json, so zoo "
                                f"does not know its input size and normalization. Write its card by hand in a "
                                f"registry file")
        allow.append("preprocessor_config.json")
        input_spec, notes = _image_input(repo.json["preprocessor_config.json"], repo.where)
        embedding = {"node": family.node, "dim": built.dim}
        if family.towers is not None:
            notes.append(f"The embedding is {built.cls_name}.get_image_features: the image tower's output in the "
                         f"{built.dim}-d space it shares with the text tower.")
        if family.pooling:
            embedding["pooling"] = family.pooling
            notes.append(f"The embedding is the class token of {family.node} (after the final layer norm); "
                         f"{built.cls_name}'s pooler is not used.")
    adapter: dict[str, Any] = {"type": "transformers", "arch": built.cls_name}
    if remote:
        allow.append("*.py")
        if "AutoModel" in config["auto_map"]:
            adapter["arch"] = "AutoModel"
        adapter["trust_remote_code"] = True
        notes.append(f"The repository ships its own code (auto_map: {', '.join(config['auto_map'])}); loading it "
                     f"needs ZOO_TRUST_REMOTE_CODE=1. params and stages are those of transformers' {built.cls_name} "
                     f"for model_type {model_type!r}, built from the config without running that code: check them.")
    layers = len(built.stages) - 1
    counted = ("both towers, their projections and the logit scale" if family.towers is not None else
               "a pooler included where it has one; it is not a stage")
    notes.insert(0, f"Derived by zoo from {repo.name}'s config.json at commit {repo.commit}: {built.cls_name}, "
                    f"{layers} layers, {built.dim}-d. params counted on the architecture built from the config "
                    f"({counted}).")
    if repo.license is None:
        notes.append("The repository's card declares no license: check before use or redistribution.")
    kind = f"{family.modality} encoder" if family.towers is None else "image-text model"
    table: dict[str, Any] = {
        "description": f"{repo.name}: {family.label} {kind} ({built.cls_name}, {layers} layers, "
                       f"{built.dim}-d) from the Hugging Face Hub, card derived from its files",
        "modality": family.modality,
        "task": repo.pipeline_tag or ("feature-extraction" if family.modality == "text" else
                                      "zero-shot-image-classification" if family.towers is not None else
                                      "image-feature-extraction"),
        "license": repo.license or "NOASSERTION",
        "params": built.params,
        "family": model_type,
        "homepage": _homepage(repo.name),
        "tags": ["derived", model_type, *(["sentence-transformers"] if "modules.json" in repo.files else []),
                 *(["image-text"] if family.towers is not None else [])],
        "provenance": f"derived by zoo from hf:{repo.name} at {repo.commit}",
        "notes": " ".join(notes),
        "source": {"type": "hf", "repo": repo.name, "revision": repo.commit, "allow": allow},
        "adapter": adapter,
        "input": input_spec,
        "embedding": embedding,
        "stages": list(built.stages),
    }
    if family.towers is not None:
        table.update(_second_tower(repo, family, built, notes))
        table["notes"] = " ".join(notes)
    return table


def _second_tower(repo: _Repo, family: Family, built: _Built, notes: list[str]) -> dict[str, Any]:
    """An image-text model's ``text`` and ``joint`` tables (see :class:`zoo.card.TextTower`)."""
    towers = family.towers
    assert towers is not None
    max_length, said = _max_length(repo, built.config.text_config, family)
    kind = _tokenizer_kind(repo, family)
    notes.append(f"Text tower: {len(built.text_stages) - 1} layers, {kind} tokenizer, max_length {max_length} ({said}), "
                 f"{towers.pooling} pooling and {towers.projection} as {built.cls_name} has them"
                 + (", texts padded to max_length as the model was trained" if towers.padding == "max_length" else "")
                 + f"; {towers.scoring} scoring with the logit scale"
                 + (" and bias" if towers.scoring == "sigmoid" else "") + " the weights hold.")
    text: dict[str, Any] = {"tokenizer": kind, "max_length": max_length, "pooling": towers.pooling,
                            "projection": towers.projection}
    if towers.padding != "longest":
        text["padding"] = towers.padding
    text["stages"] = list(built.text_stages)
    return {"text": text, "joint": {"dim": built.dim, "scoring": towers.scoring}}


def _homepage(name: str) -> str:
    from huggingface_hub import constants

    return f"{constants.ENDPOINT.rstrip('/')}/{name}"


def _weights(repo: _Repo) -> list[str]:
    """The PyTorch weights the adapter loads: safetensors when the repo has them, else the pickle."""
    for single, index, shards in (("model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors"),
                                  ("pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin")):
        if single in repo.files:
            return [single]
        if index in repo.files:
            return [index, shards]
    raise RegistryError(f"{repo.where}: the repository has no PyTorch weights (model.safetensors or "
                        f"pytorch_model.bin; TensorFlow, Flax or ONNX files only?). Choose a repository with them")


@dataclass(frozen=True)
class _Built:
    cls_name: str
    config: Any
    params: int
    dim: int
    stages: tuple[str, ...]
    text_stages: tuple[str, ...] = ()  # an image-text model's text tower


def _build(repo: _Repo, model_type: str, config: dict[str, Any], family: Family | None = None) -> _Built:
    """The base encoder built from the config with no weights (``torch.device("meta")``): its class,
    exact parameter count, embedding size and stages (the embeddings, then each layer of the
    encoder; an image-text model's for each tower, and the joint size from its towers run on
    meta tensors, which carry shapes only)."""
    import torch
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES
    from transformers.utils import logging as hf_logging

    cls_name = MODEL_MAPPING_NAMES.get(model_type)
    cls = getattr(transformers, cls_name, None) if isinstance(cls_name, str) else None
    if cls is None or model_type not in CONFIG_MAPPING:
        raise RegistryError(f"{repo.where}: transformers {transformers.__version__} has no base model for model_type "
                            f"{model_type!r}; upgrade transformers, or write its card by hand")
    plain = {k: v for k, v in config.items() if k not in ("auto_map", "architectures")}  # never the repo's code
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        built_config = CONFIG_MAPPING[model_type].from_dict(plain)
        with torch.device("meta"):
            network = cls(built_config)
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        raise RegistryError(f"{repo.where}: its config.json does not build a {cls_name} ({type(exc).__name__}: "
                            f"{first_line(exc)}); write its card by hand") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    params = sum(p.numel() for p in network.parameters())
    if (family or FAMILIES[model_type]).towers is not None:
        return _built_towers(repo, cls_name, built_config, network, params)
    sizes = getattr(built_config, "hidden_sizes", None)
    dim = int(sizes[-1]) if sizes else int(built_config.hidden_size)
    layers = _layer_list(network)
    if layers is None or not hasattr(network, "embeddings"):
        raise RegistryError(f"{repo.where}: zoo finds no embeddings and layer list in transformers' {cls_name}; "
                            f"write its card by hand (stages)")
    path, count = layers
    return _Built(cls_name, built_config, params, dim, ("embeddings", *(f"{path}.{i}" for i in range(count))))


def _built_towers(repo: _Repo, cls_name: str, config: Any, network: Any, params: int) -> _Built:
    import torch

    def stages(root: str) -> tuple[str, ...]:
        tower = getattr(network, root, None)
        layers = _layer_list(tower) if tower is not None else None
        if layers is None or not hasattr(tower, "embeddings"):
            raise RegistryError(f"{repo.where}: zoo finds no {root} with embeddings and a layer list in transformers' "
                                f"{cls_name}; write its card by hand (stages, text.stages)")
        return (f"{root}.embeddings", *(f"{root}.{layers[0]}.{i}" for i in range(layers[1])))

    image_stages, text_stages = stages("vision_model"), stages("text_model")
    side = int(getattr(config.vision_config, "image_size", 224))
    try:
        with torch.no_grad():
            image = network.get_image_features(pixel_values=torch.empty(1, 3, side, side, device="meta"))
            text = network.get_text_features(input_ids=torch.zeros(1, 4, dtype=torch.long, device="meta"))
        dims = {int(image.pooler_output.shape[-1]), int(text.pooler_output.shape[-1])}
    except (RuntimeError, TypeError, ValueError, AttributeError, NotImplementedError) as exc:
        raise RegistryError(f"{repo.where}: zoo cannot run {cls_name}'s towers on shapes to find their joint size "
                            f"({type(exc).__name__}: {first_line(exc)}); write its card by hand") from None
    if len(dims) != 1:
        raise RegistryError(f"{repo.where}: {cls_name}'s towers give {' and '.join(map(str, sorted(dims)))}-d vectors, "
                            f"not one joint space; zoo cannot compare them")
    return _Built(cls_name, config, params, dims.pop(), image_stages, text_stages)


def _layer_list(network: Any) -> tuple[str, int] | None:
    """The encoder's list of layers: the shallowest ModuleList called layer, layers or stages."""
    import torch.nn as nn

    found = [(name, len(module)) for name, module in network.named_modules()
             if isinstance(module, nn.ModuleList) and len(module) and name.rsplit(".", 1)[-1] in _LAYER_LISTS]
    return min(found, key=lambda item: item[0].count(".")) if found else None


def _text_input(repo: _Repo, family: Family, config: Any) -> tuple[dict[str, Any], str, list[str]]:
    """``input`` (max_length, tokenizer kind), the pooling, and notes."""
    notes: list[str] = []
    max_length, said = _max_length(repo, config, family)
    notes.append(f"max_length {max_length}: {said}.")
    kind = _tokenizer_kind(repo, family)
    pooling_file = _pooling_file(repo.json.get("modules.json"))
    pooling_config = repo.json.get(pooling_file)
    if isinstance(pooling_config, dict):
        modes = [m for m in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens",
                             "lasttoken") if pooling_config.get(f"pooling_mode_{m}")]
        pooling = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max"}.get(modes[0] if modes else "", "mean")
        if len(modes) != 1 or modes[0] not in ("cls_token", "mean_tokens", "max_tokens"):
            notes.append(f"{pooling_file} asks for {' + '.join(modes) or 'no pooling'}; zoo pools with {pooling}.")
        else:
            notes.append(f"Pooling {pooling} from {pooling_file}.")
    else:
        pooling = "mean"
        notes.append("No sentence-transformers pooling config: mean over the tokens.")
    modules = repo.json.get("modules.json")
    if isinstance(modules, list) and any(str(m.get("type", "")).endswith("Normalize") for m in modules
                                         if isinstance(m, dict)):
        notes.append("sentence-transformers normalizes its embeddings (modules.json): the card's embedding is "
                     "before that step.")
    return {"max_length": max_length, "tokenizer": kind}, pooling, notes


def _max_length(repo: _Repo, config: Any, family: Family) -> tuple[int, str]:
    """The longest input: the smaller of the positions the (text) model has and the length it was
    trained for (sentence-transformers' max_seq_length, else the tokenizer's model_max_length);
    and how it was chosen."""
    positions = int(getattr(config, "max_position_embeddings", 512) or 512)
    if family.padding_offset:
        positions -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    trained = (repo.json.get("sentence_bert_config.json") or {}).get("max_seq_length")
    tokenizer_limit = (repo.json.get("tokenizer_config.json") or {}).get("model_max_length")
    if isinstance(trained, int) and trained > 0:
        limit, said = trained, f"max_seq_length {trained} (sentence_bert_config.json)"
    elif isinstance(tokenizer_limit, (int, float)) and 0 < tokenizer_limit < 1e6:
        limit, said = int(tokenizer_limit), f"the tokenizer's model_max_length {int(tokenizer_limit)}"
    else:
        limit, said = 512, "512"
    return max(1, min(positions, limit)), f"the smaller of the {positions} positions the model has and {said}"


def _tokenizer_kind(repo: _Repo, family: Family) -> str:
    return next((k for f, k in _VOCABULARIES.items() if f in repo.files), None) or family.tokenizer or "wordpiece"


def _square(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, dict) and "height" in value and "width" in value:
        return int(value["height"]), int(value["width"])
    return None


def _image_input(pre: Any, where: str) -> tuple[dict[str, Any], list[str]]:
    """``input`` from an image processor's config, and notes where zoo's preprocessing approximates it.

    zoo resizes the shorter side to ``resize`` and center-crops ``size`` (``crop_mode = "squash"``:
    both sides scaled, the aspect ratio lost, as processors that resize to exactly HxW do)."""
    if not isinstance(pre, dict):
        raise RegistryError(f"{where}: its preprocessor_config.json is not a JSON object; write its card by hand")
    notes: list[str] = []
    kind = str(pre.get("image_processor_type") or pre.get("feature_extractor_type") or "")
    size, crop = pre.get("size"), pre.get("crop_size")
    do_crop = bool(pre.get("do_center_crop", False)) and crop is not None
    shortest = size.get("shortest_edge") if isinstance(size, dict) else None
    if isinstance(size, int) and ("crop_pct" in pre or any(k in kind for k in ("CLIP", "Bit", "ConvNext"))):
        shortest = size  # these processors read an int size as the shorter side
    crop_mode = "center"
    if shortest is not None:
        shortest = int(shortest)
        if "crop_pct" in pre or "ConvNext" in kind:  # ConvNeXt's: below 384, shortest / crop_pct, then a crop
            if shortest < 384:
                resize, out = int(shortest / float(pre.get("crop_pct") or 224 / 256)), (shortest, shortest)
            else:  # from 384 up, both sides to shortest
                crop_mode, resize, out = "squash", shortest, (shortest, shortest)
        elif do_crop and _square(crop) is not None:
            resize, out = shortest, _square(crop)
        else:
            resize, out = shortest, (shortest, shortest)
            notes.append(f"The processor keeps the aspect ratio without a crop; zoo center-crops {shortest}x{shortest}.")
    elif _square(size) is not None:
        height, width = _square(size)  # type: ignore[misc]
        crop_mode = "squash"
        if do_crop and _square(crop) is not None:
            out = _square(crop)
            if height * out[1] != width * out[0]:
                notes.append(f"The processor resizes to {height}x{width} and crops {out[0]}x{out[1]}; zoo keeps the "
                             f"crop's aspect ratio when it resizes.")
        else:
            out = (height, width)
        resize = min(height, width)
    else:
        raise RegistryError(f"{where}: zoo does not understand its preprocessor_config.json size {size!r}; write "
                            f"its card by hand (input.size, input.resize)")
    assert out is not None
    resize = max(resize, min(out))
    normalize = pre.get("do_normalize", True)
    mean = [float(v) for v in pre.get("image_mean") or (0.5, 0.5, 0.5)] if normalize else [0.0, 0.0, 0.0]
    std = [float(v) for v in pre.get("image_std") or (0.5, 0.5, 0.5)] if normalize else [1.0, 1.0, 1.0]
    factor = pre.get("rescale_factor", 1 / 255)
    if pre.get("do_rescale", True) and isinstance(factor, (int, float)) and abs(factor - 1 / 255) > 1e-9:
        notes.append(f"The processor rescales by {factor}, zoo by 1/255: check the input.")
    spec: dict[str, Any] = {"size": [int(out[0]), int(out[1])], "resize": int(resize), "mean": mean, "std": std,
                            "interpolation": _RESAMPLE.get(int(pre.get("resample", 2) or 0), "bilinear")}
    if crop_mode == "squash":
        spec["crop_mode"] = "squash"
    return spec, notes


# --------------------------------------------------------------------------- TOML


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(name: str, table: Mapping[str, Any]) -> str:
    """One ``[models."NAME"]`` table as registry TOML, one key a line (inline tables and arrays)."""
    lines = ["# A card derived by zoo from the repository's files. Delete this file to derive it again.",
             f"[models.{_key(name)}]"]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    return json.dumps(text).replace("\x7f", "\\u007f")  # JSON's escapes are TOML's; DEL is a TOML control char


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write a {type(value).__name__} as TOML")
