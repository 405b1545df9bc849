"""zoo's own tasks, registered through ``register_tasks`` exactly as a third party's would be."""

from __future__ import annotations

from typing import Any

from zoo.hookspecs import hookimpl


@hookimpl
def register_tasks(register: Any) -> None:
    """Classification, multi-label classification and regression."""
    from zoo.tasks.classification import Classification
    from zoo.tasks.multilabel import MultiLabel
    from zoo.tasks.regression import Regression

    for task in (Classification(), MultiLabel(), Regression()):
        register(task)
