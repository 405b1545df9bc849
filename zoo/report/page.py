"""``report/index.html``: one self-contained page per run, built from the run folder's files.

No network: the styles are in the page and every picture is a ``data:`` URI, so the file can be
mailed, attached to a tracker or opened from a laptop's disk. The sections, in order: a summary,
the plan and why (the data, how it was judged, the cut with every candidate's cross-validated
estimate, the recipe and what each phase did), learning curves (only where epochs ran), the
held-out metrics, the task's own sections (a classifier's per-class table and confusion matrix),
the baseline, the worst held-out examples, and where an image model looked (Grad-CAM).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from markupsafe import Markup

from zoo.errors import ZooError
from zoo.report.folder import RunFiles, read_folder
from zoo.report.sections import Section, html_table, number, task_sections

__all__ = ["build", "PAGE"]

PAGE = Path("report") / "index.html"

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 0 1.2em 3em; color: #1d2733; }
h1 { font-size: 1.5em; margin: 1em 0 0.2em; } h2 { border-bottom: 1px solid #d5dde6; padding-bottom: 0.2em; }
.summary { color: #4a5868; } .status-finished { color: #1e7b34; } .status-killed, .status-resumable { color: #b3541e; }
table { border-collapse: collapse; margin: 0.6em 0; } th, td { padding: 0.25em 0.6em; border: 1px solid #e1e6ec; }
th { background: #f3f6f9; text-align: left; } td .num, td.num { font-variant-numeric: tabular-nums; }
tr.chosen td { background: #fdf0e2; font-weight: 600; }
table.confusion td { text-align: center; min-width: 2.2em; }
img.chart { max-width: 100%; display: block; margin: 0.6em 0; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; }
.card { width: 190px; border: 1px solid #d5dde6; border-radius: 6px; padding: 0.5em; font-size: 0.85em; }
.card.wrong { border-color: #d9822b; } .card img { max-width: 100%; display: block; margin: 0 auto 0.3em; }
.card .text { max-height: 9em; overflow: auto; white-space: pre-wrap; background: #f7f9fb; padding: 0.3em; }
.note { color: #4a5868; font-size: 0.9em; } .baseline-line { font-weight: 600; }
"""


def _escape_lines(lines: list[Any]) -> Markup:
    return Markup("").join(Markup("<li>{}</li>").format(line) for line in lines)


# --------------------------------------------------------------------------- summary and plan


def _summary(files: RunFiles) -> Section:
    from zoo.runs_table import run_row

    row = run_row(files.dir)
    seconds = f"{row.seconds:.0f} s" if row.seconds is not None else "unknown"
    facts = [Markup("model <b>{}</b>").format(row.model), Markup("data <b>{}</b>").format(row.data),
             Markup("task <b>{}</b>").format(row.task),
             Markup('status <b class="status-{}" data-status="{}">{}</b>').format(row.status, row.status, row.status),
             Markup("time {}").format(seconds)]
    if row.metric is not None:
        facts.append(Markup("{} {} on {}").format(row.metric_name, number(row.metric, f"{row.on}.{row.metric_name}"
                                                                            if row.on != "cv" else
                                                                            f"cv.head.{row.metric_name}"), row.on))
    body = Markup('<p class="summary">{}</p>').format(Markup(" &middot; ").join(facts))
    if row.detail:
        body += Markup('<p class="note">{}</p>').format(row.detail)
    return Section("summary", f"Run {files.dir.name}", body)


def _data(files: RunFiles) -> Markup:
    summary = files.record.get("data") or {}
    lines = []
    for role, word in (("train", "training"), ("val", "validation"), ("test", "test")):
        part = summary.get(role)
        if not isinstance(part, dict):
            continue
        counts = part.get("per_class") or part.get("per_label") or {}
        shown = ", ".join(f"{name} {count}" for name, count in list(counts.items())[:12])
        more = f", ... ({len(counts)} in all)" if len(counts) > 12 else ""
        lines.append(Markup("{}: <b>{}</b> examples ({}{})").format(word, part.get("size"), shown, more))
    if files.metrics.get("validation") == "cv" and files.task != "multi-label":
        lines.append("cross-validated: the validation examples joined the training ones (nothing set aside)")
    if files.skipped:
        shown = "; ".join(f"{row.get('where')}: {row.get('reason')}" for row in files.skipped[:5])
        lines.append(Markup("skipped: {} bad inputs (skipped.json): {}{}").format(
            len(files.skipped), shown, " ..." if len(files.skipped) > 5 else ""))
    return Markup("<h3>Data: {}</h3><ul>{}</ul>").format(files.options.get("data"), _escape_lines(lines))


def _judged(files: RunFiles) -> Markup:
    metrics = files.metrics
    if metrics.get("validation") == "cv":
        head = (metrics.get("cv") or {}).get("head") or {}
        text = (f"cross-validation: every labelled example is trained on, and each choice comes from stratified folds "
                f"({head.get('folds')} folds x {head.get('repeats')})")
    elif metrics.get("validation") == "split":
        text = "a held-out validation split: early stopping, and the model rolled back to its best epoch"
    else:
        text = "not recorded (the run has not finished)"
    return Markup("<h3>How it was judged</h3><p>{}; the metric that decides: <b>{}</b></p>").format(
        text, metrics.get("metric") or files.options.get("metric"))


def _cut(files: RunFiles) -> Markup:
    from zoo.report.charts import cut_chart

    cut = files.metrics.get("cut") or (files.selection or {}).get("cut") or []
    rows = (files.selection or {}).get("rows") or []
    body = Markup("<h3>The cut: <b>{}</b></h3>").format("+".join(cut) or "the card's")
    if len(rows) < 2:
        reason = (files.selection or {}).get("chosen_by") or ("--cut, or the card's embedding" if cut else "")
        return body + Markup("<p>One candidate, nothing to compare{}.</p>").format(f" ({reason})" if reason else "")
    metric = files.selection.get("metric") or "accuracy"
    metric = metric if metric in rows[0] else "accuracy"
    rank = files.selection.get("rank_name") or "log-loss"
    params = [name for name in ("C", "alpha") if name in rows[0]]
    body += Markup("<p>Every candidate's pooled features got the task's same cross-validated head; the lowest "
                   "{} chose ({}).</p>").format(rank, files.selection.get("chosen_by"))
    body += Markup('<img class="chart" id="cut-chart" alt="cut candidates" src="{}">').format(
        cut_chart(rows, cut, metric, rank))
    others = [m for m in ("macro_f1", "r2", "rmse", "mae", "spearman") if m != metric and m in rows[0]]
    table = []
    for i, row in enumerate(rows):
        key = f"selection.rows.{i}"
        spread = (Markup(" &plusmn; {}").format(number(row[f"{metric}_std"], f"{key}.{metric}_std"))
                  if f"{metric}_std" in row else Markup(""))
        cells = [Markup("{}{}").format(number(row[metric], f"{key}.{metric}"), spread),
                 *(number(row.get(m), f"{key}.{m}") for m in others),
                 number(row.get("rank", row.get("log_loss")), f"{key}.rank"), *(row.get(n) for n in params)]
        table.append(Markup('<tr class="{}"><td>{}</td><td>{}</td>{}</tr>').format(
            "chosen" if list(row["cut"]) == list(cut) else "", "+".join(row["cut"]), row.get("dim"),
            Markup("").join(Markup("<td>{}</td>").format(c) for c in cells)))
    headers = Markup("").join(Markup("<th>{}</th>").format(h) for h in
                              ["cut", "dim", f"cv {metric}", *others, rank, *params])
    return body + Markup('<table class="candidates"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>').format(
        headers, Markup("").join(table))


def _phases(files: RunFiles) -> list[Markup]:
    """What each phase of metrics.jsonl did, one line each."""
    stages: dict[str, list[dict[str, Any]]] = {}
    for row in files.history:
        stages.setdefault(str(row.get("stage")), []).append(row)
    best = files.metrics.get("best_epoch")
    lines = []
    for stage, rows in stages.items():
        if "(cv" in stage:
            estimate = rows[-1]
            lines.append(Markup("<b>{}</b>: the head fitted once on all labelled examples (no epochs); cross-validated "
                                "{} {}, loss {}").format(
                stage, estimate.get("metric") or "accuracy", number(estimate.get("cv_metric", estimate.get("cv_acc")), ""),
                number(estimate.get("cv_loss"), "")))
            continue
        first, last = rows[0], rows[-1]
        kept = [r["epoch"] for r in rows if r.get("epoch") == best]
        lines.append(Markup("<b>{}</b>: {} epochs; validation loss {} &rarr; {}{}").format(
            stage, len(rows), number(first.get("val_loss"), ""), number(last.get("val_loss"), ""),
            f"; the best epoch ({kept[0]}) is the model" if kept else ""))
    if files.metrics.get("stopped"):
        lines.append(Markup("stopped: {}").format(files.metrics["stopped"]))
    return lines


def _recipe(files: RunFiles) -> Markup:
    from zoo.report.charts import folds_chart, has_curves, rounds_chart

    metrics = files.metrics
    body = Markup("<h3>The recipe: <b>{}</b></h3>").format(metrics.get("recipe") or files.options.get("recipe"))
    lines = _phases(files)
    if not has_curves(files.history):
        lines.append("no epochs ran, so there is no learning curve to draw")
    tuned = files.contrastive
    if tuned and tuned.get("rounds"):
        rounds = tuned["rounds"]
        lines.append(Markup("contrastive: {} pairs, pair loss {} &rarr; {} over {} rounds{}").format(
            tuned.get("pairs"), number(rounds[0]["pair_loss"], "contrastive.rounds.0.pair_loss"),
            number(rounds[-1]["pair_loss"], f"contrastive.rounds.{len(rounds) - 1}.pair_loss"), len(rounds),
            "" if tuned.get("judged") else " (every round trained: the folds' estimate is optimistic, the encoder "
                                           "saw every fold)"))
    schedule = files.cv.get("schedule")
    if schedule:
        lines.append(Markup("unfreezing judged on {} folds: the unfrozen layers were <b>{}</b> (held-out {} {} vs "
                            "the head alone {})").format(
            schedule.get("k"), "kept" if schedule.get("keep") else "not kept", metrics.get("metric"),
            number(schedule.get("unfrozen_metric"), "cv.schedule.unfrozen"),
            number(schedule.get("head_metric"), "cv.schedule.head")))
    prior = files.prior
    if prior:
        lines.append(Markup("the class names as a prior: weight {} (chosen on folds among {})").format(
            prior.get("weight"), ", ".join(f"{s['weight']:g}" for s in prior.get("scores", []))))
    body += Markup("<ul>{}</ul>").format(_escape_lines(lines))
    if schedule and len(schedule.get("mean_loss") or []) >= 2:
        body += Markup('<img class="chart" id="folds-chart" alt="unfreezing on folds" src="{}">').format(
            folds_chart(schedule))
    if tuned and len(tuned.get("rounds") or []) >= 2:
        body += Markup('<img class="chart" id="rounds-chart" alt="contrastive rounds" src="{}">').format(
            rounds_chart(tuned))
    return body


def _plan(files: RunFiles) -> Section:
    return Section("plan", "The plan and why", _data(files) + _judged(files) + _cut(files) + _recipe(files))


def _curves(files: RunFiles) -> list[Section]:
    from zoo.report.charts import curves_chart, has_curves

    if not has_curves(files.history):
        return []
    return [Section("curves", "Learning curves", Markup('<img class="chart" id="curves-chart" alt="learning curves" '
                                                        'src="{}">').format(curves_chart(files.history)))]


# --------------------------------------------------------------------------- results


def _metric_keys(files: RunFiles) -> list[tuple[str, str]]:
    if files.task == "multi-label":
        return [("micro_f1", "micro-F1"), ("macro_f1", "macro-F1"), ("accuracy", "exact match")]
    if files.task == "regression":
        return [("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²"), ("spearman", "Spearman")]
    return [("accuracy", "accuracy"), ("macro_f1", "macro-F1")]


def _metrics(files: RunFiles) -> Section:
    keys = _metric_keys(files)
    rows = []
    estimate = (files.metrics.get("cv") or {}).get("head")
    if isinstance(estimate, dict):
        rows.append([Markup("cross-validated estimate ({} folds x {})").format(estimate.get("folds"),
                                                                              estimate.get("repeats"))]
                    + [number(estimate.get(k), f"cv.head.{k}") for k, _ in keys] + [number(estimate.get("n"), "cv.head.n")])
    for name, word in (("val", "validation"), ("test", "test")):
        measured = files.metrics.get(name)
        if isinstance(measured, dict):
            rows.append([word] + [number(measured.get(k), f"{name}.{k}") for k, _ in keys]
                        + [number(measured.get("n"), f"{name}.n")])
    if not rows:
        return Section("metrics", "Held-out metrics", Markup("<p>No metrics yet: the run has not finished.</p>"))
    return Section("metrics", "Held-out metrics", html_table(["set"] + [w for _, w in keys] + ["examples"], rows,
                                                             "metrics"))


def _baseline(files: RunFiles) -> Section:
    base = files.metrics.get("baseline")
    line = files.metrics.get("baseline_line")
    if not isinstance(base, dict):
        return Section("baseline", "The baseline", Markup("<p>No baseline recorded.</p>"))
    key = files.metrics.get("metric") or "accuracy"
    rows = []
    for name in ("cv", "val", "test"):
        theirs = base.get(name)
        ours = ((files.metrics.get("cv") or {}).get("head") if name == "cv" else files.metrics.get(name)) or {}
        if isinstance(theirs, dict) and key in theirs:
            rows.append([name, number(theirs[key], f"baseline.{name}.{key}"),
                         number(ours.get(key), f"{'cv.head' if name == 'cv' else name}.{key}")])
    body = Markup('<p class="baseline-line" data-key="baseline_line">{}</p><p>{}</p>').format(line or "", base.get("name"))
    return Section("baseline", "The baseline", body + html_table(["on", f"baseline {key}", f"transfer {key}"], rows,
                                                                 "baseline"))


def _card(files: RunFiles) -> Any:
    """The run's card with its front end (for clips' spectrograms), None for images and texts."""
    if files.front_end is None:
        return None
    from zoo.runs.record import open_run

    return open_run(files.dir).card()


def _cards(files: RunFiles, lines: list[dict[str, Any]], card: Any, css: str) -> Markup:
    from zoo.report.gallery import thumbnail

    cards = []
    for line in lines:
        thumb = thumbnail(files.dir, line, card)
        shown = (Markup('<img alt="{}" src="{}">').format(line.get("where"), thumb.image) if thumb.image else
                 Markup('<div class="text">{}</div>').format(thumb.text) if thumb.text is not None else
                 Markup('<div class="note">{}</div>').format(thumb.missing))
        true = ", ".join(line["true"]) if isinstance(line["true"], list) else line["true"]
        predicted = ", ".join(line["predicted"]) if isinstance(line["predicted"], list) else line["predicted"]
        cards.append(Markup('<div class="card {}" data-index="{}">{}<div>true <b>{}</b></div><div>predicted <b>{}</b> '
                            '({})</div><div class="note">{}</div></div>').format(
            css, line["index"], shown, true, predicted, number(line["score"], ""), line.get("where")))
    return Markup('<div class="cards">{}</div>').format(Markup("").join(cards))


def _gallery(files: RunFiles) -> tuple[Section, Any]:
    from zoo.predictions import picks

    name = files.held_out
    lines = files.predictions.get(name or "", [])
    if not lines:
        return Section("gallery", "The worst held-out examples",
                       Markup("<p>This run recorded no per-example predictions (report/predictions.jsonl), so there "
                              "are no examples to show.</p>")), None
    chosen = picks(lines)
    card = _card(files)
    if files.task == "regression":
        body = Markup("<p>From the {} set ({} examples): the largest errors first (off by more than a quarter of the "
                      "target's standard deviation), then the closest predictions. The score is the error in "
                      "standard deviations.</p>").format(name, len(lines))
    else:
        body = Markup("<p>From the {} set ({} examples): the most confident mistakes first, then the right predictions "
                      "it was least sure of. The score is the probability of the predicted class{}.</p>").format(
            name, len(lines), " (multi-label: of each decision, averaged)" if files.task == "multi-label" else "")
    body += Markup('<h3>Most confident mistakes ({})</h3>').format(len(chosen.mistakes))
    body += (_cards(files, list(chosen.mistakes), card, "wrong") if chosen.mistakes else
             Markup("<p>None: every {} example is right.</p>").format(name))
    body += Markup("<h3>Least confident right predictions ({})</h3>").format(len(chosen.unsure))
    body += _cards(files, list(chosen.unsure), card, "right") if chosen.unsure else Markup("<p>None.</p>")
    return Section("gallery", "The worst held-out examples", body), chosen


def _is_image_run(files: RunFiles, chosen: Any) -> bool:
    """An image classifier's run: Grad-CAM of the predicted class has a meaning there."""
    return chosen is not None and files.front_end is None and files.task in ("classification", "multi-label") and any(
        "path" in line["item"] or "image" in line["item"] for line in chosen.shown())


def _heatmaps(files: RunFiles, chosen: Any) -> list[Section]:
    from zoo.predictions import HEATMAPS

    if not _is_image_run(files, chosen):
        return []
    try:
        from zoo.report.heatmaps import heatmaps
        import pytorch_grad_cam  # noqa: F401  (the optional extra)
    except ImportError:
        from zoo.report.heatmaps import MISSING

        return [Section("heatmaps", "Where the model looked", Markup("<p>{}</p>").format(MISSING))]
    lines = [*chosen.mistakes[:HEATMAPS], *chosen.sure[:HEATMAPS]]
    try:
        shown = heatmaps(files.dir, lines, files.classes)
    except ZooError as exc:  # the weights changed, the final model is gone: the rest of the page stands
        return [Section("heatmaps", "Where the model looked", Markup("<p>No heatmaps: {}</p>").format(str(exc)))]
    cards = [Markup('<div class="card {}" data-index="{}"><img alt="{}" src="{}"><div>true <b>{}</b></div>'
                    '<div>predicted <b>{}</b> ({})</div></div>').format(
        "right" if h.line.get("correct") else "wrong", h.line["index"], h.line.get("where"), h.image, h.line["true"],
        h.line["predicted"], number(h.line["score"], "")) for h in shown]
    layer = shown[0].layer if shown else "-"
    body = Markup("<p>Grad-CAM (pytorch-grad-cam) of the predicted class at layer <code>{}</code>, from the run's own "
                  "model: its most confident mistakes and its most confident right predictions.</p>"
                  '<div class="cards">{}</div>').format(layer, Markup("").join(cards))
    return [Section("heatmaps", "Where the model looked", body)]


def _sections(files: RunFiles) -> list[Section]:
    gallery, chosen = _gallery(files)
    return [_summary(files), _plan(files), *_curves(files), _metrics(files), *task_sections(files), _baseline(files),
            gallery, *_heatmaps(files, chosen)]


def render(files: RunFiles, sections: list[Section]) -> str:
    """The page's HTML."""
    parts = Markup("").join(Markup('<section id="{}"><h2>{}</h2>{}</section>').format(s.id, s.title, s.body)
                            for s in sections)
    toc = Markup(" &middot; ").join(Markup('<a href="#{}">{}</a>').format(s.id, s.title) for s in sections[1:])
    return str(Markup('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>zoo run {}</title>'
                      '<meta name="viewport" content="width=device-width, initial-scale=1">'
                      '<style>{}</style></head><body><h1>zoo run {}</h1><nav>{}</nav>{}</body></html>\n').format(
        files.dir.name, Markup(_STYLE), files.dir.name, toc, parts))


def build(run_dir: str | Path) -> Path:
    """Write ``report/index.html`` for the run in ``run_dir`` from its files, and return its path."""
    from zoo.atomic import atomic_write_bytes

    files = read_folder(run_dir)
    html = render(files, _sections(files))
    return atomic_write_bytes(Path(run_dir) / PAGE, html.encode("utf-8"), fix="choose a writable run folder")


def build_at_end(run_dir: str | Path, say: Callable[[str], None]) -> Path | None:
    """The page at the end of a run (rank 0 only under torch.distributed): a page that cannot be
    built (a record it cannot read) is said in one line, and the finished run stands."""
    from zoo.distributed import world

    if not world().main:
        return None
    try:
        page = build(run_dir)
    except ZooError as exc:
        say(f"report page not written: {exc}; rebuild it with `zoo report {run_dir}`")
        return None
    say(f"report: {page}")
    return page
