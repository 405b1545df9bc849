"""Tasks: what a run learns to output, each a plugin behind :class:`zoo.tasks.contract.Task`.

:func:`get_task` finds a registered task by name; :func:`choose_task` infers it from the data
when none is named (the rule: ``--target`` columns of numbers make a regression, ``;`` in label
cells a multi-label run, a label column a classification). Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.tasks.contract import Estimate, Output, Score, Targets, Task, TaskContext
    from zoo.tasks.choosing import choose_task, get_task, task_names

_LAZY = {
    "Task": "zoo.tasks.contract",
    "Targets": "zoo.tasks.contract",
    "Estimate": "zoo.tasks.contract",
    "Score": "zoo.tasks.contract",
    "Output": "zoo.tasks.contract",
    "TaskContext": "zoo.tasks.contract",
    "get_task": "zoo.tasks.choosing",
    "choose_task": "zoo.tasks.choosing",
    "task_names": "zoo.tasks.choosing",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
