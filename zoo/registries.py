"""The registry: parse and validate model tables, merge their sources, query and suggest.

Stdlib only (tomllib): listing models never imports torch. Entries come from, in merge order,
the built-in ``registry.toml``, plugins, and user files. A later origin may not silently take
over a name: plugins and the built-in file never override each other, and a user file replaces
an entry only when the entry says ``replace = true``.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from zoo.card import (
    CROP_MODES,
    INTERPOLATIONS,
    MODALITIES,
    PADDINGS,
    POOLINGS,
    SCORINGS,
    TEXT_POOLINGS,
    TOKENIZER_KINDS,
    TOWER_NODES,
    ComponentRef,
    CutPoint,
    FileSpec,
    InputSpec,
    JointSpace,
    ModelCard,
    Origin,
    TextTower,
    frozen_map,
)
from zoo.errors import RegistryError, UnknownModelError
from zoo.schema import Location, TableReader

__all__ = [
    "Registry",
    "builtin_registry_path",
    "parse_registry_text",
    "parse_registry_file",
    "parse_models",
    "read_catalogue",
    "render_catalogue",
    "write_catalogue",
    "card_from_table",
    "merge_cards",
    "parse_size",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@+-]*$")
_HEX = re.compile(r"^[0-9a-f]+$")


def builtin_registry_path() -> Path:
    """The registry.toml that ships with zoo.

    A wheel packs it as ``zoo/registry.toml``; a source checkout (editable install) keeps it at the
    top of the repository, one folder above the package.
    """
    here = Path(__file__).resolve().parent  # not importlib.resources: 15 ms of every `zoo list`
    packed = here / "registry.toml"
    return packed if packed.is_file() else here.parent / "registry.toml"


# --------------------------------------------------------------------------- parsing


def parse_registry_file(path: Path, origin: Origin) -> list[ModelCard]:
    """Read one registry file; every problem names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(
            f"{path}: registry file not found. Check the path given with --registry or ZOO_REGISTRY"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read registry file: {exc}") from None
    return parse_registry_text(text, origin, label=str(path))


def parse_registry_text(text: str, origin: Origin, label: str | None = None) -> list[ModelCard]:
    """Parse TOML text holding ``[models.NAME]`` tables."""
    label = label or str(origin)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{label}: invalid TOML: {exc}. Fix the syntax at that line") from None
    for key in data:
        if key != "models":
            raise Location(label).error(
                key, "unknown top-level key", "Entries go under [models.NAME] tables"
            )
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise Location(label).error("models", "expected tables of the form [models.NAME]")
    return parse_models(models, origin, label)


def parse_models(models: Mapping[str, Any], origin: Origin, label: str | None = None) -> list[ModelCard]:
    """Parse a mapping of model name -> table (the ``models`` table of a registry file)."""
    label = label or str(origin)
    return [parse_card(name, table, origin, Location(label, name)) for name, table in models.items()]


def parse_card(name: str, table: Any, origin: Origin, location: Location) -> ModelCard:
    """Validate one model table and build its card. Plugin-owned fields inside ``source`` and
    ``adapter`` are kept as they are; the plugins' declared fields are checked by the catalog."""
    if not _NAME.match(name):
        raise location.error(
            None, "invalid model name", "Use letters, digits and . _ / @ + - (no spaces)"
        )
    r = TableReader(table, location)
    description = r.take("description", str, required=True)
    modality = r.take("modality", str, required=True)
    if modality not in MODALITIES:
        raise location.error("modality", f"unknown modality {modality!r}", f"Use one of: {', '.join(MODALITIES)}")
    task = r.take("task", str, required=True)
    license_ = r.take("license", str, required=True)
    params = r.take("params", int, required=True)
    if params <= 0:
        raise location.error("params", f"must be a positive parameter count, got {params}")

    source = _component(r, "source")
    adapter = _component(r, "adapter")
    files = _files(r)
    input_spec = _input(r, modality)
    embedding = _cut_point(r, modality)

    head = r.take("head", str)
    stages = tuple(r.take("stages", list[str], required=True))
    if not stages:
        raise location.error("stages", "needs at least one stage", "List the backbone's stages from input to output")
    repeated = sorted({s for s in stages if stages.count(s) > 1})
    if repeated:
        raise location.error("stages", f"stage names repeat: {', '.join(repeated)}", "Each stage must appear once")
    if head is not None and head in stages:
        raise location.error("head", f"the head {head!r} is also listed as a stage", "The head is replaced, not unfrozen")
    features, strides = _features(r, location)
    text, joint = _towers(r, modality, embedding, stages)
    metrics = r.take("metrics", dict[str, float], default={})
    for key in metrics:
        dataset, _, metric = key.partition("/")
        if not dataset or not metric:
            raise location.error(
                f"metrics.{key}", "metric keys name the dataset and the metric",
                'Write them as "dataset/metric", e.g. "imagenet-1k/acc@1"',
            )
    tags = tuple(r.take("tags", list[str], default=[]))
    homepage = r.take("homepage", str)
    paper = r.take("paper", str)
    notes = r.take("notes", str)
    family = r.take("family", str)
    gflops = r.take("gflops", float)
    weights_mb = r.take("weights_mb", float)
    for key, value in (("gflops", gflops), ("weights_mb", weights_mb)):
        if value is not None and value <= 0:
            raise location.error(key, f"must be positive, got {value}")
    provenance = r.take("provenance", str)
    replace = r.take("replace", bool, default=False)
    if replace and origin.kind != "user":
        raise location.error(
            "replace", f"only user registry files may replace entries, not {origin}",
            "Give the entry another name",
        )
    r.finish()
    return ModelCard(
        name=name, description=description, modality=modality, task=task, license=license_,
        params=params, source=source, adapter=adapter, files=files, input=input_spec,
        embedding=embedding, head=head, stages=stages, features=frozen_map(features), strides=frozen_map(strides),
        text=text, joint=joint,
        metrics=frozen_map({k: float(v) for k, v in metrics.items()}), tags=tags,
        homepage=homepage, paper=paper, notes=notes, family=family,
        gflops=None if gflops is None else float(gflops), weights_mb=None if weights_mb is None else float(weights_mb),
        provenance=provenance, replace=replace, origin=origin,
    )


def _features(r: TableReader, location: Location) -> tuple[dict[str, int], dict[str, int]]:
    """``features``: each intermediate feature's channels, ``{ NAME = C }``, or with its stride in
    input pixels, ``{ NAME = { channels = C, stride = S } }`` (as timm's feature_info gives
    ``num_chs`` and ``reduction``); the two spellings may mix."""
    table = r.take("features", dict[str, int | dict[str, Any]], default={})
    features: dict[str, int] = {}
    strides: dict[str, int] = {}
    for node, spec in table.items():
        if isinstance(spec, dict):
            inner = TableReader(spec, location, f"features.{node}")
            dim = inner.take("channels", int, required=True)
            stride = inner.take("stride", int)
            inner.finish()
            if stride is not None:
                if stride <= 0:
                    raise location.error(f"features.{node}.stride", f"must be a positive number of pixels, got {stride}")
                strides[node] = stride
        else:
            dim = spec
        if dim <= 0:
            raise location.error(f"features.{node}", f"must be a positive channel count, got {dim}")
        features[node] = dim
    return features, strides


def _towers(r: TableReader, modality: str, embedding: CutPoint, stages: tuple[str, ...]
            ) -> tuple[TextTower | None, JointSpace | None]:
    """An image-text model's ``text`` tower and ``joint`` space (both or neither). The card's own
    modality, input, embedding and stages are the image tower's; its embedding is the image
    tower's output in the joint space, so a label's text and an image can be compared."""
    loc = r.location
    t, j = r.table("text"), r.table("joint")
    if t is None and j is None:
        return None, None
    if t is None or j is None:
        have, missing = ("text", "joint") if j is None else ("joint", "text")
        raise loc.error(missing, f"an image-text model's card has `{have}` but no `{missing}` table",
                        "Give both: text = { tokenizer, max_length, pooling, stages, ... } and "
                        "joint = { dim, scoring, ... }")
    if modality != "image":
        raise loc.error("text", f"a second tower goes with an image model (its first tower), not a {modality} one",
                        'Set modality = "image" and describe the text tower in `text`')
    dim = j.take("dim", int, required=True)
    if dim <= 0 or dim != embedding.dim:
        raise loc.error(j.key("dim"), f"the joint space has {dim} dimensions but the image embedding {embedding.dim}",
                        "The card's embedding is the image tower's output in the joint space: give both the same dim")
    if embedding.node != TOWER_NODES["image"]:
        raise loc.error("embedding.node", f"an image-text model's embedding is its image tower's output in the joint "
                                          f"space, {TOWER_NODES['image']!r}, not {embedding.node!r}")
    scoring = _choice(j, "scoring", SCORINGS, required=True)
    scale = j.take("logit_scale", float)
    if scale is not None and scale <= 0:
        raise loc.error(j.key("logit_scale"), f"must be positive (the multiplier of the cosine), got {scale}")
    bias = j.take("logit_bias", float)
    if bias is not None and scoring != "sigmoid":
        raise loc.error(j.key("logit_bias"), "a logit bias goes with sigmoid scoring (SigLIP's)",
                        'Set scoring = "sigmoid", or leave out logit_bias')
    j.finish()
    tokenizer = _choice(t, "tokenizer", TOKENIZER_KINDS, required=True)
    max_length = t.take("max_length", int, required=True)
    if max_length <= 0:
        raise loc.error(t.key("max_length"), "must be positive")
    pooling = _choice(t, "pooling", TEXT_POOLINGS, required=True)
    padding = _choice(t, "padding", PADDINGS) or "longest"
    projection = t.take("projection", str)
    text_stages = tuple(t.take("stages", list[str], required=True))
    repeated = sorted({s for s in text_stages if text_stages.count(s) > 1 or s in stages})
    if not text_stages or repeated:
        problem = f"stage names repeat: {', '.join(repeated)}" if repeated else "needs at least one stage"
        raise loc.error(t.key("stages"), problem, "List the text tower's stages from input to output, each once and "
                                                  "none of the image tower's")
    t.finish()
    return (TextTower(tokenizer=tokenizer, max_length=max_length, pooling=pooling, stages=text_stages,
                      projection=projection, padding=padding),
            JointSpace(dim=dim, scoring=scoring, logit_scale=None if scale is None else float(scale),
                       logit_bias=None if bias is None else float(bias)))


def _choice(t: TableReader, key: str, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
    value = t.take(key, str, required=required)
    if value is not None and value not in allowed:
        raise t.location.error(t.key(key), f"unknown {key} {value!r}", f"Use one of: {', '.join(allowed)}")
    return value


def _component(r: TableReader, key: str) -> ComponentRef:
    table = r.table(key, required=True)
    assert table is not None
    kind = table.take("type", str, required=True)
    return ComponentRef(type=kind, options=frozen_map(table.rest()))


def _files(r: TableReader) -> tuple[FileSpec, ...]:
    specs = []
    for i, item in enumerate(r.take("files", list[dict], default=[])):
        f = TableReader(item, r.location, f"files[{i}]")
        name = f.take("name", str, required=True)
        sha256 = f.take("sha256", str)
        if sha256 is not None and not (len(sha256) == 64 and _HEX.match(sha256)):
            raise r.location.error(f.key("sha256"), "expected 64 lowercase hex digits")
        prefix = f.take("sha256_prefix", str)
        if prefix is not None and not (len(prefix) >= 6 and _HEX.match(prefix)):
            raise r.location.error(f.key("sha256_prefix"), "expected at least 6 lowercase hex digits")
        if sha256 and prefix and not sha256.startswith(prefix):
            raise r.location.error(f.key("sha256_prefix"), "does not match the full sha256")
        size = f.take("size", int)
        if size is not None and size < 0:
            raise r.location.error(f.key("size"), "must not be negative")
        f.finish()
        specs.append(FileSpec(name=name, sha256=sha256, sha256_prefix=prefix, size=size))
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise r.location.error("files", f"file names repeat: {', '.join(repeated)}")
    return tuple(specs)


def _input(r: TableReader, modality: str) -> InputSpec:
    t = r.table("input", required=True)
    assert t is not None
    loc = r.location
    if modality == "image":
        size = t.take("size", list[int], required=True)
        if len(size) != 2 or min(size) <= 0:
            raise loc.error(t.key("size"), f"expected [height, width] of positive integers, got {size}")
        resize = t.take("resize", int)
        if resize is not None and resize < min(size):
            raise loc.error(t.key("resize"), f"resize {resize} is smaller than the crop {size}")
        mean = t.take("mean", list[float], required=True)
        std = t.take("std", list[float], required=True)
        if len(mean) != len(std) or not mean:
            raise loc.error(t.key("std"), f"mean has {len(mean)} values and std {len(std)}; they must match")
        if any(s <= 0 for s in std):
            raise loc.error(t.key("std"), "standard deviations must be positive")
        interpolation = t.take("interpolation", str, default="bilinear")
        if interpolation not in INTERPOLATIONS:
            raise loc.error(t.key("interpolation"), f"unknown interpolation {interpolation!r}",
                            f"Use one of: {', '.join(INTERPOLATIONS)}")
        crop_mode = t.take("crop_mode", str)
        if crop_mode is not None and crop_mode not in CROP_MODES:
            raise loc.error(t.key("crop_mode"), f"unknown crop mode {crop_mode!r}", f"Use one of: {', '.join(CROP_MODES)}")
        t.finish()
        return InputSpec(size=(size[0], size[1]), resize=resize, mean=tuple(map(float, mean)),
                         std=tuple(map(float, std)), interpolation=interpolation,
                         crop_mode=None if crop_mode == "center" else crop_mode)
    if modality == "text":
        max_length = t.take("max_length", int, required=True)
        if max_length <= 0:
            raise loc.error(t.key("max_length"), "must be positive")
        tokenizer = t.take("tokenizer", str, required=True)
        if tokenizer not in TOKENIZER_KINDS:
            raise loc.error(t.key("tokenizer"), f"unknown tokenizer kind {tokenizer!r}",
                            f"Use one of: {', '.join(TOKENIZER_KINDS)}")
        t.finish()
        return InputSpec(max_length=max_length, tokenizer=tokenizer)
    sample_rate = t.take("sample_rate", int, required=True)
    if sample_rate <= 0:
        raise loc.error(t.key("sample_rate"), "must be positive")
    max_length = t.take("max_length", int)
    t.finish()
    return InputSpec(sample_rate=sample_rate, max_length=max_length)


def _cut_point(r: TableReader, modality: str) -> CutPoint:
    t = r.table("embedding", required=True)
    assert t is not None
    node = t.take("node", str, required=True)
    if "dim" not in (t.rest()):
        raise r.location.error(t.key("dim"), "the cut point has no dim",
                               "Add `dim = N`, the size of the embedding at that node")
    dim = t.take("dim", int, required=True)
    if dim <= 0:
        raise r.location.error(t.key("dim"), f"must be positive, got {dim}")
    pooling = t.take("pooling", str, required=modality == "text")
    if pooling is not None and pooling not in POOLINGS:
        raise r.location.error(t.key("pooling"), f"unknown pooling {pooling!r}", f"Use one of: {', '.join(POOLINGS)}")
    t.finish()
    return CutPoint(node=node, dim=dim, pooling=pooling)


# --------------------------------------------------------------------------- catalogues

_NOTHING: Mapping[str, Any] = frozen_map()
_NO_MAP = frozen_map()  # one shared empty, read-only table for the many cards without features or metrics


def _fast_features(table: Any) -> dict[str, Any]:
    """A generated catalogue's ``features`` (channels, or ``{channels, stride}``) as the card's
    ``features`` and ``strides``."""
    if not table:
        return {"features": _NO_MAP, "strides": _NO_MAP}
    channels = {name: spec["channels"] if isinstance(spec, dict) else spec for name, spec in table.items()}
    strides = {name: spec["stride"] for name, spec in table.items() if isinstance(spec, dict) and "stride" in spec}
    return {"features": frozen_map(channels), "strides": frozen_map(strides) if strides else _NO_MAP}

#: The format a generated catalogue declares (``{"catalogue": 1, "models": {...}}``).
CATALOGUE_FORMAT = 1


def read_catalogue(path: Path, origin: Origin) -> dict[str, Any]:
    """The model tables of a generated catalogue: a JSON file written by a script from a library's
    own metadata (``python -m zoo_timm.generate``), holding thousands of entries.

    Listing them must stay fast, so a catalogue's cards are built by :func:`card_from_table`
    without the field-by-field checks, and :class:`Registry` checks a card's table with
    :func:`parse_card` the first time the card is used (pulled, loaded, shown). The tests check
    every shipped entry, and that both builders give equal cards."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RegistryError(f"{path}: cannot read the model catalogue: {exc}") from None
    if not isinstance(data, dict) or data.get("catalogue") != CATALOGUE_FORMAT or not isinstance(data.get("models"), dict):
        raise RegistryError(f"{path}: not a zoo model catalogue of format {CATALOGUE_FORMAT} "
                            f'(expected {{"catalogue": {CATALOGUE_FORMAT}, "models": {{...}}}}); generate it again')
    return data["models"]


def render_catalogue(models: Mapping[str, Any], skipped: Mapping[str, str], *, generated_by: str,
                     library: str) -> str:
    """A catalogue as the generators ship it: JSON that :func:`read_catalogue` reads, with the
    header first and one card (or skipped name and reason) per line, sorted by name, so that a
    regenerated file diffs card by card."""
    def block(items: Mapping[str, Any]) -> str:
        lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in sorted(items.items())]
        return "{\n" + ",\n".join(lines) + "\n }" if lines else "{}"

    head = {"catalogue": CATALOGUE_FORMAT, "generated_by": generated_by, "library": library}
    parts = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()]
    parts += [f' "models": {block(models)}', f' "skipped": {block(skipped)}']
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_catalogue(path: Path, text: str) -> None:
    """Write a rendered catalogue atomically (readers never see half of one), readable by all:
    it is package data."""
    from zoo.atomic import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"), mode=0o644)


def card_from_table(name: str, table: Mapping[str, Any], origin: Origin) -> ModelCard:
    """A card built straight from a table that :func:`parse_card` accepts, without checking it
    (a catalogue's entries, see :func:`read_catalogue`): about five times faster. A table that is
    not what it should be raises ``RegistryError`` here only when it cannot be built at all."""
    try:
        source, adapter = dict(table["source"]), dict(table["adapter"])
        spec = table.get("input") or _NOTHING
        cut = table["embedding"]
        size = spec.get("size")
        return ModelCard(
            name=name, description=table["description"], modality=table["modality"], task=table["task"],
            license=table["license"], params=table["params"],
            source=ComponentRef(type=source.pop("type"), options=frozen_map(source)),
            adapter=ComponentRef(type=adapter.pop("type"), options=frozen_map(adapter)),
            files=tuple(FileSpec(name=f["name"], sha256=f.get("sha256"), sha256_prefix=f.get("sha256_prefix"),
                                 size=f.get("size")) for f in table.get("files", ())),
            input=InputSpec(
                size=(size[0], size[1]) if size else None, resize=spec.get("resize"),
                mean=tuple(map(float, spec["mean"])) if "mean" in spec else None,
                std=tuple(map(float, spec["std"])) if "std" in spec else None,
                interpolation=spec.get("interpolation", "bilinear" if table["modality"] == "image" else None),
                crop_mode=None if spec.get("crop_mode") == "center" else spec.get("crop_mode"),
                max_length=spec.get("max_length"), tokenizer=spec.get("tokenizer"),
                sample_rate=spec.get("sample_rate")),
            embedding=CutPoint(node=cut["node"], dim=cut["dim"], pooling=cut.get("pooling")),
            head=table.get("head"), stages=tuple(table["stages"]),
            **_fast_features(table.get("features")),
            metrics=frozen_map({k: float(v) for k, v in table["metrics"].items()}) if "metrics" in table else _NO_MAP,
            tags=tuple(table.get("tags", ())), homepage=table.get("homepage"), paper=table.get("paper"),
            notes=table.get("notes"), family=table.get("family"),
            gflops=None if table.get("gflops") is None else float(table["gflops"]),
            weights_mb=None if table.get("weights_mb") is None else float(table["weights_mb"]),
            provenance=table.get("provenance"), origin=origin, **_fast_towers(table),
        )
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise RegistryError(f"{origin}: model {name!r}: malformed catalogue entry ({type(exc).__name__}: {exc}); "
                            f"generate the catalogue again") from None


def _fast_towers(table: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`card_from_table`'s ``text`` and ``joint``, as :func:`_towers` builds them."""
    if "text" not in table:
        return {}
    text, joint = dict(table["text"]), dict(table["joint"])
    text["stages"] = tuple(text["stages"])
    text.setdefault("padding", "longest")
    for key in ("logit_scale", "logit_bias"):
        if joint.get(key) is not None:
            joint[key] = float(joint[key])
    return {"text": TextTower(**text), "joint": JointSpace(**joint)}


# --------------------------------------------------------------------------- merging


def merge_cards(cards: Iterable[ModelCard]) -> dict[str, ModelCard]:
    """Merge cards in order. A name defined twice is an error naming both origins, unless the later
    entry comes from a user file and says ``replace = true``."""
    merged: dict[str, ModelCard] = {}
    for card in cards:
        existing = merged.get(card.name)
        if existing is not None and not card.replace:
            if card.origin.kind == "user":
                hint = (f"To override it, add `replace = true` to [models.{_toml_key(card.name)}] "
                        f"in {card.origin.path or card.origin.name}; otherwise rename your entry")
            else:
                hint = ("Uninstall one of them, or disable one with "
                        "ZOO_DISABLE_PLUGINS=<plugin name>")
            raise RegistryError(
                f"model {card.name!r} is defined twice: by {existing.origin} and by {card.origin}. {hint}"
            )
        merged[card.name] = card
    return merged


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


# --------------------------------------------------------------------------- querying

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMbBgG]?)\s*$")
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def parse_size(text: str) -> int:
    """'30M' -> 30_000_000; accepts K, M, B (or G) suffixes and plain integers."""
    match = _SIZE.match(str(text))
    if not match:
        raise RegistryError(f"cannot read parameter count {text!r}: write it like 30M, 1.5B or 25000000")
    return int(float(match.group(1)) * _SCALE[match.group(2).lower()])


class Registry(Mapping[str, ModelCard]):
    """An immutable set of cards with the queries `zoo list` and `zoo show` need.

    ``unavailable`` maps a model name to why it cannot be pulled or built right now (for example,
    the plugin that provides its source type is disabled); such models are still listed.
    """

    def __init__(self, cards: Mapping[str, ModelCard], unavailable: Mapping[str, str] | None = None,
                 unchecked: Mapping[str, Callable[[str], ModelCard]] | None = None) -> None:
        self._cards = dict(sorted(cards.items()))
        self.unavailable: Mapping[str, str] = frozen_map(unavailable or {})
        # catalogue cards not checked yet: name -> the check, which returns the checked card
        self._unchecked = dict(unchecked or {})

    def __getitem__(self, name: str) -> ModelCard:
        return self._cards[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def card(self, name: str) -> ModelCard:
        """The card called ``name``, checked field by field (a catalogue's card is checked here, the
        first time it is used); an unknown name raises with close matches."""
        if name not in self._cards:
            raise UnknownModelError(name, self.suggest(name))
        check = self._unchecked.pop(name, None)
        if check is not None:
            self._cards[name] = check(name)
        return self._cards[name]

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Close matches for a mistyped name: edit distance on full names and their last part."""
        names = list(self._cards)
        found = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
        short = {n_.rsplit("/", 1)[-1]: n_ for n_ in names}
        for match in difflib.get_close_matches(name.rsplit("/", 1)[-1], list(short), n=n, cutoff=0.6):
            if short[match] not in found:
                found.append(short[match])
        if not found:
            found = [n_ for n_ in names if name.lower() in n_.lower()]
        return found[:n]

    def select(
        self,
        pattern: str | None = None,
        *,
        modality: str | None = None,
        task: str | None = None,
        source: str | None = None,
        tag: str | None = None,
        plugin: str | None = None,
        family: str | None = None,
        license: str | None = None,
        search: str | None = None,
        max_params: int | str | None = None,
        max_gflops: float | None = None,
        min_acc: float | None = None,
        sort: str = "name",
    ) -> list[ModelCard]:
        """Cards matching every given filter, in a stable order.

        ``pattern`` with shell wildcards matches names (fnmatch); without them it matches a
        substring of the name or description, case-insensitively. ``search`` keeps cards whose
        name, description, family or tags hold every one of its words. ``family`` and ``license``
        compare case-insensitively. ``min_acc`` is ImageNet-1k top-1 (percent) and
        ``max_gflops`` the cost of one forward pass: a card without the number is left out.
        ``sort`` is ``name``, ``params`` or ``gflops`` (ascending) or a metric ("acc@1" or
        "imagenet-1k/acc@1", best first); cards without the number come last.
        """
        limit = parse_size(max_params) if isinstance(max_params, str) else max_params
        words = search.lower().split() if search else []
        family_, license_ = (family or "").lower(), (license or "").lower()

        def acc(card: ModelCard) -> float | None:
            return card.metric("imagenet-1k/acc@1")

        chosen = [
            c for c in self._cards.values()
            if _matches(c, pattern)
            and (modality is None or c.modality == modality)
            and (task is None or c.task == task)
            and (source is None or c.source.type == source)
            and (tag is None or tag in c.tags)
            and (plugin is None or c.origin.label == plugin or c.origin.name == plugin)
            and (not family_ or (c.family or "").lower() == family_)
            and (not license_ or c.license.lower() == license_)
            and (limit is None or c.params <= limit)
            and (max_gflops is None or (c.gflops is not None and c.gflops <= max_gflops))
            and (min_acc is None or ((acc(c) or -1.0) >= min_acc))
            and (not words or _has_words(c, words))
        ]
        if sort == "name":
            return chosen
        if sort == "params":
            return sorted(chosen, key=lambda c: (c.params, c.name))
        if sort == "gflops":
            return sorted(chosen, key=lambda c: (c.gflops is None, c.gflops or 0.0, c.name))
        if not any(c.metric(sort) is not None for c in self._cards.values()):
            known = sorted({k for c in self._cards.values() for k in c.metrics})
            raise RegistryError(
                f"cannot sort by {sort!r}: no model has that metric. "
                f"Sort by name, params, gflops or one of: {', '.join(known) or '(no metrics known)'}"
            )
        return sorted(chosen, key=lambda c: (c.metric(sort) is None, -(c.metric(sort) or 0.0), c.name))

    def values_of(self, field: str) -> list[str]:
        """The distinct values of ``family``, ``license``, ``task`` or ``modality``: what a filter
        that matched nothing could have been."""
        return sorted({str(getattr(c, field)) for c in self._cards.values() if getattr(c, field)})


def _has_words(card: ModelCard, words: list[str]) -> bool:
    text = " ".join((card.name, card.description, card.family or "", *card.tags)).lower()
    return all(word in text for word in words)


def _matches(card: ModelCard, pattern: str | None) -> bool:
    if not pattern:
        return True
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(card.name.lower(), pattern.lower())
    needle = pattern.lower()
    return needle in card.name.lower() or needle in card.description.lower()
