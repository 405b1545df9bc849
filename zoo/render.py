"""Plain-text rendering for the CLI: aligned tables and a card as readable lines. No heavy imports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo.card import ModelCard
from zoo.redaction import redact

__all__ = ["table", "format_params", "format_bytes", "card_lines", "card_data"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a header rule."""
    columns = list(zip(*rows)) if rows else [() for _ in headers]  # thousands of rows: by column, once
    widths = [max(len(h), max(map(len, column), default=0)) for h, column in zip(headers, columns)]
    line = "  ".join(f"{{:<{w}}}" for w in widths).format  # one format per row, not a ljust per cell
    lines = [line(*headers).rstrip(), "  ".join("-" * w for w in widths)]
    lines += [line(*row).rstrip() for row in rows]
    return "\n".join(lines)


def format_params(count: int) -> str:
    """25557032 -> '25.6M'."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.1f}{suffix}"
    return str(count)


def format_bytes(count: int) -> str:
    """97781392 -> '93.3 MiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def card_data(card: ModelCard) -> dict[str, Any]:
    """The card as JSON-ready data to show (``card.to_dict()``), every credential in its source's
    and adapter's values (a ``url`` with ``user:password@``) redacted."""
    data = card.to_dict()
    for key in ("source", "adapter"):
        data[key] = {k: redact(v) if isinstance(v, str) else v for k, v in data[key].items()}
    return data


def card_lines(card: ModelCard, unavailable: str | None = None) -> list[str]:
    """The whole card, grouped as a user reads it."""
    lines = [card.name, "=" * len(card.name), card.description, ""]

    def row(label: str, value: object) -> None:
        if value not in (None, "", (), {}):
            lines.append(f"{label:<13}{value}")

    row("modality", card.modality)
    row("task", card.task)
    row("family", card.family)
    row("params", f"{card.params:,} ({format_params(card.params)})")
    row("gflops", f"{card.gflops:g}" if card.gflops is not None else None)
    row("weights", f"{card.weights_mb:g} MB" if card.weights_mb is not None else None)
    row("license", card.license)
    row("tags", ", ".join(card.tags))
    row("homepage", card.homepage)
    row("paper", card.paper)
    row("origin", str(card.origin))
    if unavailable:
        row("UNAVAILABLE", unavailable)
    lines.append("")
    row("source", _component(card.source.type, card.source.options))
    for spec in card.files:
        digest = spec.sha256 or (f"{spec.sha256_prefix}… (prefix)" if spec.sha256_prefix else "unknown until pulled")
        size = f", {spec.size:,} bytes" if spec.size is not None else ""
        row("file", f"{spec.name}  sha256 {digest}{size}")
    row("adapter", _component(card.adapter.type, card.adapter.options))
    lines.append("")
    spec = card.input
    if card.modality == "image":
        row("input", f"{spec.size[0]}x{spec.size[1]}, {spec.interpolation}")
        row("transforms", image_transforms(spec))
        row("mean / std", f"{list(spec.mean or ())} / {list(spec.std or ())}")
    elif card.modality == "text":
        row("input", f"max_length {spec.max_length}, {spec.tokenizer} tokenizer")
    else:
        row("input", f"{spec.sample_rate} Hz" + (f", max_length {spec.max_length}" if spec.max_length else ""))
    cut = f"{card.embedding.node} -> {card.embedding.dim}-d"
    if card.embedding.pooling:
        cut += f" ({card.embedding.pooling} pooling)"
    row("embedding", cut)
    row("head", card.head or "(none: an encoder without a classifier)")
    row("stages", " -> ".join(card.stages))
    row("features", ", ".join(f"{k} ({v})" for k, v in card.features.items()))
    if card.text is not None and card.joint is not None:  # an image-text model's second tower
        text, joint = card.text, card.joint
        row("text tower", f"max_length {text.max_length}, {text.tokenizer} tokenizer, {text.pooling} pooling"
            + (f", projection {text.projection}" if text.projection else "")
            + (", padded to max_length" if text.padding == "max_length" else "") + "; " + " -> ".join(text.stages))
        scores = ", ".join(f"{key} {value:g}" for key, value in (("logit_scale", joint.logit_scale),
                                                                 ("logit_bias", joint.logit_bias)) if value is not None)
        row("joint", f"{joint.dim}-d, {joint.scoring} scores, " + (scores or "logit scale from the weights"))
    if card.metrics:
        lines.append("")
        for key, value in card.metrics.items():
            row("metric", f"{key} = {value:g}")
    row("numbers from", card.provenance or f"written by hand in {card.origin}")
    if card.notes:
        lines += ["", f"notes        {card.notes}"]
    return lines


def image_transforms(spec: Any) -> str:
    """The eval transform zoo applies, in the libraries' words (what ``zoo.preprocess`` does)."""
    height, width = spec.size
    resize = spec.resize or min(height, width)
    scaled: tuple[int, int] | None = None
    if spec.crop_mode == "squash":
        scaled = (int(resize * height / min(height, width)), int(resize * width / min(height, width)))
        steps = f"Resize({scaled[0]}x{scaled[1]}, both sides)"
    else:
        steps = f"Resize({resize}, shorter side)"
    if scaled != (height, width):
        steps += f" -> CenterCrop({height}x{width})"
    return f"{steps} -> [0, 1] -> Normalize(mean, std); {spec.interpolation or 'bilinear'}"


def _component(kind: str, options: object) -> str:
    items = ", ".join(f"{k}={redact(v) if isinstance(v, str) else v}"  # no password of a URL
                      for k, v in dict(options).items())  # type: ignore[call-overload]
    return f"{kind} ({items})" if items else kind
