"""The page's sections, and the hook by which a task adds its own.

A section is an id, a title and HTML (``markupsafe.Markup``: every value from the run's files is
escaped on the way in). The sections every run has (the plan, curves, metrics, the baseline, the
gallery, heatmaps) are built in :mod:`zoo.report.page`; what depends on the task (a classifier's
per-class table and confusion matrix, a multi-label run's per-label table; a regressor's
predicted-against-true plot, a detector's boxes, a segmenter's masks) is
contributed here per task name::

    from zoo.report.sections import Section, register_task_sections

    def regression_sections(files):          # files: zoo.report.folder.RunFiles
        return [Section("residuals", "Predicted against true", Markup(...))]

    register_task_sections("regression", regression_sections)

The task contract (zoo's task plugins) is the natural owner of this hook; until then it is a
registry in this module, and a task without sections gets one line saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from markupsafe import Markup

from zoo.report.html import Section, html_table, number

if TYPE_CHECKING:  # pragma: no cover
    from zoo.report.folder import RunFiles

__all__ = ["Section", "SectionHook", "register_task_sections", "task_sections", "number", "html_table"]


#: Builds a task's sections from the run's files.
SectionHook = Callable[["RunFiles"], list[Section]]

_TASK_SECTIONS: dict[str, list[SectionHook]] = {}


def register_task_sections(task: str, hook: SectionHook) -> None:
    """Add ``hook``'s sections to every page of a ``task`` run (after the metrics)."""
    _TASK_SECTIONS.setdefault(task, []).append(hook)


def task_sections(files: RunFiles) -> list[Section]:
    """The sections the run's task contributes; one that contributes none gets a line saying so."""
    hooks = _TASK_SECTIONS.get(files.task, [])
    if not hooks:
        return [Section("task", f"The {files.task} task",
                        Markup("<p>No plots for the task <b>{}</b> yet: its plugin adds them through "
                               "<code>zoo.report.sections.register_task_sections</code>.</p>").format(files.task))]
    return [section for hook in hooks for section in hook(files)]


# --------------------------------------------------------------------------- classification


def _per_class(files: RunFiles, name: str, key: str) -> Section:
    measured = files.metrics[name][key]
    rows = [[label, number(m["precision"], f"{name}.{key}.{label}.precision"),
             number(m["recall"], f"{name}.{key}.{label}.recall"), number(m["f1"], f"{name}.{key}.{label}.f1"),
             number(m["support"], f"{name}.{key}.{label}.support")] for label, m in measured.items()]
    word = "label" if key == "per_label" else "class"
    return Section("per-class", f"Per {word} ({name})",
                   html_table([word, "precision", "recall", "F1", "support"], rows, "per-class"))


def _confusion(files: RunFiles, name: str) -> Section:
    matrix = files.metrics[name]["confusion"]
    classes = files.classes
    peak = max((max(row) for row in matrix), default=0) or 1
    cells = []
    for i, row in enumerate(matrix):
        tds = Markup("").join(
            Markup('<td class="{}" style="background: rgba(31, 78, 121, {:.2f}); color: {}">{}</td>').format(
                "diag" if i == j else "off", value / peak, "white" if value / peak > 0.5 else "black",
                number(value, f"{name}.confusion.{i}.{j}")) for j, value in enumerate(row))
        cells.append(Markup("<tr><th>{}</th>{}</tr>").format(classes[i], tds))
    head = Markup("").join(Markup("<th>{}</th>").format(c) for c in classes)
    table = Markup('<table class="confusion"><thead><tr><th>true \\ predicted</th>{}</tr></thead>'
                   '<tbody>{}</tbody></table>').format(head, Markup("").join(cells))
    return Section("confusion", f"Confusion matrix ({name})", table)


def _classification(files: RunFiles) -> list[Section]:
    name = files.held_out
    if name is None or not isinstance(files.metrics.get(name), dict):
        return []
    return [_per_class(files, name, "per_class"), _confusion(files, name)]


def _multi_label(files: RunFiles) -> list[Section]:
    name = files.held_out
    if name is None or not isinstance(files.metrics.get(name), dict):
        return []
    thresholds = files.metrics.get("thresholds") or {}
    rows = [[label, number(t, f"thresholds.{label}")] for label, t in thresholds.items()]
    return [_per_class(files, name, "per_label"),
            Section("thresholds", "Thresholds (chosen per label on the folds)",
                    html_table(["label", "threshold"], rows, "thresholds"))]


def _wise_ft(files: RunFiles) -> list[Section]:
    from zoo.report.wiseft import wise_ft_sections  # an image-text run fine-tuned from zero-shot, then mixed

    return wise_ft_sections(files)


register_task_sections("classification", _classification)
register_task_sections("classification", _wise_ft)
register_task_sections("multi-label", _multi_label)


# --------------------------------------------------------------------------- regression


def _regression(files: RunFiles) -> list[Section]:
    """Each target's held-out numbers, and the predicted-against-true and residual plots the run drew."""
    from zoo.report.charts import data_uri

    name = files.held_out
    measured = files.metrics.get(name) if name else None
    if not isinstance(measured, dict):
        return []
    per = measured.get("per_target") or {}
    rows = [[target, *(number(m[k], f"{name}.per_target.{target}.{k}") for k in ("rmse", "mae", "r2", "spearman"))]
            for target, m in per.items()]
    body = html_table(["target", "RMSE", "MAE", "R²", "Spearman"], rows, "per-target")
    picture = files.dir / "report" / f"regression_{name}.png"
    if picture.is_file():
        body += Markup('<img class="chart" id="regression-chart" alt="predicted against true" src="{}">').format(
            data_uri(picture.read_bytes()))
    base = files.metrics.get("baseline") or {}
    mean = (base.get("mean") or {}).get(name) if isinstance(base, dict) else None
    if isinstance(mean, dict):
        body += Markup("<p>The mean predictor (always the training mean): RMSE {}.</p>").format(
            number(mean.get("rmse"), f"baseline.mean.{name}.rmse"))
    return [Section("per-target", f"Per target ({name})", body)]


register_task_sections("regression", _regression)


# --------------------------------------------------------------------------- detection


#: COCO's numbers as torchmetrics names them (report/metrics.json), and how the page heads them.
_COCO = (("map", "mAP@[.5:.95]"), ("map_50", "mAP@.5"), ("map_75", "mAP@.75"), ("map_small", "small"),
         ("map_medium", "medium"), ("map_large", "large"), ("mar_100", "recall@100"))


def _pictures(files: RunFiles, names: Sequence[tuple[str, str]]) -> Markup:
    """The run's own PNGs (report/NAME), inlined, each with its alt text; missing ones left out."""
    from zoo.report.charts import data_uri

    shown = [Markup('<img class="chart" alt="{}" src="{}">').format(alt, data_uri((files.dir / "report" / name).read_bytes()))
             for name, alt in names if (files.dir / "report" / name).is_file()]
    return Markup("").join(shown)


def _detection(files: RunFiles) -> list[Section]:
    """A detector's COCO numbers per held-out set, per class, its precision-recall curves and the
    held-out pictures it got most wrong with their true and predicted boxes."""
    sections = []
    rows = [[word, *(number(m.get(k), f"{name}.{k}") for k, _ in _COCO), number(m.get("n"), f"{name}.n")]
            for name, word in (("val", "validation"), ("test", "test")) if isinstance(m := files.metrics.get(name), dict)]
    if rows:
        sections.append(Section("coco", "COCO metrics", html_table(["set", *(w for _, w in _COCO), "pictures"], rows,
                                                                   "coco")))
    name = files.held_out
    measured = files.metrics.get(name) if name else None
    if isinstance(measured, dict):
        per = measured.get("per_class") or {}
        table = html_table(["class", "AP@[.5:.95]", "recall@100"],
                           [[label, number(m.get("map"), f"{name}.per_class.{label}.map"),
                             number(m.get("mar_100"), f"{name}.per_class.{label}.mar_100")] for label, m in per.items()],
                           "per-class")
        body = table + _pictures(files, [(f"pr_{name}.png", "precision-recall per class"),
                                         (f"boxes_{name}.png", "true and predicted boxes")])
        sections.append(Section("per-class", f"Per class ({name})", body))
    return sections


register_task_sections("detection", _detection)


def _instances(files: RunFiles) -> list[Section]:
    """An instance segmenter's COCO mask numbers (a detector's table and curves, on masks), its box
    numbers, and the held-out pictures it got most wrong with their true and predicted objects."""
    sections = [Section(s.id, "COCO mask metrics", s.body) if s.id == "coco" else s for s in _detection(files)]
    rows = [[word, *(number(m.get(f"box_{k}"), f"{name}.box_{k}") for k, _ in _COCO[:3])]
            for name, word in (("val", "validation"), ("test", "test")) if isinstance(m := files.metrics.get(name), dict)]
    name = files.held_out
    if rows:
        body = html_table(["set", *(f"box {w}" for _, w in _COCO[:3])], rows, "box-metrics")
        if name:
            body += _pictures(files, [(f"objects_{name}.png", "true and predicted objects, side by side")])
        sections.append(Section("objects", "Boxes and objects", body))
    return sections


register_task_sections("instance-segmentation", _instances)


# --------------------------------------------------------------------------- segmentation


def _segmentation(files: RunFiles) -> list[Section]:
    """A segmenter's mIoU and pixel accuracy per held-out set, IoU per class, the held-out pictures
    it got most wrong beside their true and predicted masks, and the pixel confusion matrix."""
    sections = []
    rows = [[word, number(m.get("miou"), f"{name}.miou"), number(m.get("pixel_accuracy"), f"{name}.pixel_accuracy"),
             number(m.get("n"), f"{name}.n")]
            for name, word in (("val", "validation"), ("test", "test")) if isinstance(m := files.metrics.get(name), dict)]
    if rows:
        sections.append(Section("pixels", "Pixel metrics", html_table(["set", "mIoU", "pixel accuracy", "pictures"],
                                                                       rows, "pixels")))
    name = files.held_out
    measured = files.metrics.get(name) if name else None
    if isinstance(measured, dict):
        table = html_table(["class", "IoU"], [[label, number(v, f"{name}.iou.{label}")]
                                              for label, v in (measured.get("iou") or {}).items()], "per-class")
        body = table + _pictures(files, [(f"masks_{name}.png", "pictures, true and predicted masks"),
                                         (f"confusion_{name}.png", "pixel confusion matrix")])
        sections.append(Section("per-class", f"Per class ({name})", body))
    return sections


register_task_sections("segmentation", _segmentation)
