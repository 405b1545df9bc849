"""Which task a run is: named (``--task``), or inferred from the data by the registered tasks."""

from __future__ import annotations

from typing import Any

from zoo.errors import InputError

__all__ = ["get_task", "choose_task", "task_names", "ALIASES", "INFERENCE_ORDER"]

#: Short names the CLI also takes.
ALIASES = {"classify": "classification", "multilabel": "multi-label", "regress": "regression"}
#: Which built-in claim wins when several tasks claim the data: numbers named by --target, then
#: ';' label sets, then classes. Tasks from other plugins are asked first, in name order.
INFERENCE_ORDER = ("regression", "multi-label", "classification")


def _tasks() -> dict[str, Any]:
    from zoo.plugins import get_host

    return {name: contribution.value for name, contribution in get_host().tasks().items()}


def task_names() -> list[str]:
    return sorted(_tasks())


def get_task(name: str) -> Any:
    """The registered task called ``name`` (or one of :data:`ALIASES`, or of a task's own
    ``aliases``: ``detect`` for ``detection``), or one line listing them."""
    tasks = _tasks()
    task = tasks.get(ALIASES.get(name, name)) or next(
        (t for t in tasks.values() if name in (getattr(t, "aliases", None) or ())), None)
    if task is None:
        raise InputError(f"unknown task {name!r}: choose one of {', '.join(sorted(tasks))} (see `zoo plugins` for the "
                         f"plugins that give tasks)")
    return task


def choose_task(requested: str, dataset: Any, options: Any) -> tuple[Any, str]:
    """The run's task and the line that says why: ``requested`` (``auto`` asks every task whether
    the data is its kind, in :data:`INFERENCE_ORDER` after other plugins' tasks)."""
    if requested != "auto":
        task = get_task(requested)
        return task, f"task: {task.name} (--task {requested})"
    tasks = _tasks()
    order = [n for n in sorted(tasks) if n not in INFERENCE_ORDER] + [n for n in INFERENCE_ORDER if n in tasks]
    for name in order:
        if tasks[name].claims(dataset, options):
            return tasks[name], f"task: {name} ({_why(name, options)}; --task overrides)"
    if options.data.target:
        columns = sorted(set().union(*((e.fields or {}).keys() for e in dataset.examples)) - {"path", "text"})
        missing = [c.strip() for c in str(options.data.target).split(",") if c.strip() and c.strip() not in columns]
        if missing:
            raise InputError(f"{options.data.data}: --target names the column {missing[0]!r}, which the data does not "
                             f"have (its other columns: {', '.join(columns[:8]) or 'none'}); check the spelling")
        raise InputError(f"{options.data.data}: --target {options.data.target} names no column of numbers or labels "
                         f"the data has; check the column, or name the task with --task")
    raise InputError(f"{options.data.data}: the data has no label column; give one (path,label or text,label) or "
                     f"name the column of numbers to learn with --target COLUMN")


def _why(name: str, options: Any) -> str:
    if name == "regression":
        from zoo.tasks.regression import DISTINCT, NUMBERS_SHARE

        return (f"--target {options.data.target}: numbers (at least {NUMBERS_SHARE:.0%} of the cells, some not "
                f"whole or more than {DISTINCT} distinct values)")
    if name == "multi-label":
        return "label cells name several labels, separated by ';'"
    if name == "classification":
        return f"a label column{f' ({options.data.target})' if options.data.target else ''}"
    return "its plugin claims the data"
