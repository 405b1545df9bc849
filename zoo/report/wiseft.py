"""The page's section for a run fine-tuned from an image-text model's zero-shot classifier and mixed
with it (``--recipe wise-ft``): zero-shot, fine-tuned and mixed side by
side (their held-out estimates and their metrics on each held-out set), the frozen head they
were judged against, and every mixing weight's estimate. Read from ``wise_ft`` in
report/metrics.json alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from zoo.report.html import Section, html_table, number

if TYPE_CHECKING:  # pragma: no cover
    from zoo.report.folder import RunFiles

__all__ = ["wise_ft_sections"]


def _held_out(files: RunFiles, record: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    """One network's metrics on held-out set ``name``, and their key in metrics.json: the run's own
    for the one that is the model, the others' as the recipe measured them (none when the frozen
    head stayed: the rest never trained on every example)."""
    if key == ("mixed" if record.get("kept") else "frozen_head"):
        return {"values": files.metrics.get(name) or {}, "key": name}
    return {"values": ((record.get("held_out") or {}).get(name) or {}).get(key) or {},
            "key": f"wise_ft.held_out.{name}.{key}"}


def wise_ft_sections(files: RunFiles) -> list[Section]:
    record = files.metrics.get("wise_ft")
    if not isinstance(record, dict):
        return []
    metric = record.get("metric") or "accuracy"
    sets = [name for name in ("val", "test") if isinstance(files.metrics.get(name), dict)]
    alpha = record.get("alpha")
    names = {"zero_shot": "zero-shot (a = 0)", "fine_tuned": "fine-tuned (a = 1)",
             "mixed": Markup("mixed (a = {})").format(alpha), "frozen_head": "the frozen head (cross-validated)"}
    rows = []
    for key, label in names.items():
        estimate = record.get(key) or {}
        row = [Markup("<b>{}</b>").format(label) if key == ("mixed" if record.get("kept") else "frozen_head") else label,
               number(estimate.get("metric"), f"wise_ft.{key}.metric"), number(estimate.get("loss"), f"wise_ft.{key}.loss")]
        for name in sets:
            held = _held_out(files, record, key, name)
            row += [number(held["values"].get(k), f"{held['key']}.{k}") for k in ("accuracy", "macro_f1")]
        rows.append(row)
    on = record.get("chosen_by") or "held-out data"
    judged_on = record.get("judged_on") or on
    headers = ["network", f"{metric} ({'folds' if record.get('folds') else 'validation split'})", "loss",
               *[f"{name} {word}" for name in sets for word in ("accuracy", "macro-F1")]]
    verdict = (Markup("The mixture is the run's model (in bold); a was {}.") if record.get("kept") else
               Markup("The frozen head stays the run's model (in bold): the mixture did not beat it; a would have "
                      "been chosen {}.")).format("given by --mix" if on == "--mix" else f"chosen on {on}")
    body = Markup("<p>The image tower's {} fine-tuned from the class names' zero-shot classifier, then "
                  "(1 - a) &times; zero-shot + a &times; fine-tuned weights. {}</p>").format(
        ", ".join(record.get("stages") or []), verdict)
    body += html_table(headers, rows, "wise-ft")
    sweep = [[Markup("<b>{}</b>").format(s.get("alpha")) if s.get("alpha") == alpha else s.get("alpha"),
              number(s.get("metric"), f"wise_ft.alphas.{i}.metric"), number(s.get("loss"), f"wise_ft.alphas.{i}.loss")]
             for i, s in enumerate(record.get("alphas") or [])]
    body += Markup("<p>Every mixing weight on held-out data ({}):</p>").format(judged_on)
    body += html_table(["a", metric, "loss"], sweep, "wise-ft-alphas")
    return [Section("wise-ft", "Zero-shot, fine-tuned and mixed", body)]
