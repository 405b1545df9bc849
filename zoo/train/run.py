"""``zoo.finetune``: one call from a backbone and labelled data to a run folder with evidence.

A run folder a person can read (its record: :mod:`zoo.runs.record`)::

    config.json      the options (every auto decided), the plan and why, the task, the data, zoo's version
    labels.json      the outputs' names (classes, labels or targets), in the model's order
    choices.json     what the run chose: the cut, the head, the label prior, thresholds, the frozen pass
    skipped.json     inputs dropped by --skip-bad (only when there were any)
    selection.json   every cut candidate's cross-validated estimate
    metrics.jsonl    one line per epoch and phase
    checkpoints/     epoch-NNNN.pt (every epoch), best.json, final.pt
    features/        which cached embeddings the run used
    report/          metrics.json (held-out metrics, the judgement, the baseline), the task's plots, curves.png
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.runs.record import Run, open_run, read_run_json

__all__ = ["finetune", "Run", "open_run"]


def finetune(
    model: str | None = None,
    data: str | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
    **options: Any,
) -> Run:
    """Fine-tune ``model`` on ``data`` and return the :class:`Run`.

    ``options`` are :class:`zoo.runs.options.FinetuneOptions`' flat names (``per_class``,
    ``unfreeze``, ``head``, ``task``, ``target``, ``seed``...). ``resume=RUN_DIR`` continues a killed
    run from its last complete checkpoint with its saved options.
    """
    from zoo.distributed import world
    from zoo.stopping import reporting_stops
    from zoo.train.folders import as_rank, default_dir, in_run_folder, stopped_run
    from zoo.runs.options import FinetuneOptions

    here = world()
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    if not here.main:  # under torch.distributed rank 0 speaks for every rank
        say, progress = (lambda text: None), False
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise ZooError(f"{run_dir}: cannot resume: no config.json (is it a zoo run folder?)")
        saved = read_run_json(run_dir, "config.json")
        if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
            raise ZooError(f"{run_dir / 'config.json'}: does not hold a run's configuration; fine-tune again into "
                           f"a new folder")
        # how to compute may change on resume (another machine); what to compute may not
        chosen = FinetuneOptions.from_dict({**saved["config"], **{k: v for k, v in options.items()
                                                                  if k in ("device", "workers", "engine")}})
    else:
        if model is None or data is None:
            raise ZooError("finetune needs a model and data (or resume=RUN_DIR)")
        from zoo.pulling import check_name

        chosen = FinetuneOptions.from_flat(model, str(data), **options)
        from zoo.trackers import check_trackers

        check_trackers(chosen.report_to)  # a missing tracker library is said before any work
        check_name(model)  # a model name its finder refuses leaves no run folder named after it
        run_dir = Path(out) if out is not None else default_dir(model)
        if here.main and run_dir.exists() and any(run_dir.iterdir()):
            raise ZooError(f"{run_dir}: the run folder exists and is not empty; choose another --out, "
                           f"or continue it with --resume {run_dir}")
    resuming = resume is not None

    def body(folder: Path) -> Run:
        return in_run_folder(folder, lambda: _run(chosen, folder, resuming, say, progress))

    # SIGINT/SIGTERM: one line with the last checkpoint and the resume command (rank 0 says it)
    with reporting_stops(lambda signal_name: stopped_run(signal_name, run_dir) if here.main else ""):
        if here.distributed:
            from zoo.devices import torch_device
            from zoo.distributed import init_world

            init_world(torch_device(chosen.engine.device))
            return as_rank(run_dir, resuming, body, open_run)
        return body(run_dir)


def _run(options: Any, folder: Path, resuming: bool, say: Callable[[str], None], progress: bool) -> Run:
    """The phases of a run, in a locked run folder."""
    from zoo.train.finish import finish
    from zoo.train.setup import prepare
    from zoo.train.stages import adapted_learner, head_stage, unfrozen_stage

    setup = prepare(options, folder, resuming, say, progress)  # task, data, targets, plan, the record's start
    adapted = adapted_learner(setup) if setup.plan.recipe == "contrastive" else None  # pairs train the encoder
    trained = head_stage(setup, adapted)  # the cross-validated head on every example, or epochs on a split
    trained = unfrozen_stage(setup, trained)  # top stages unfrozen, judged by folds or a split, kept if better
    return finish(setup, trained)  # held-out metrics, the baseline, the report, final.pt
