"""MLflow: a run in the tracking store ``MLFLOW_TRACKING_URI`` names (MLflow's own default
otherwise), in the experiment ``MLFLOW_EXPERIMENT_NAME`` (else ``zoo``), named after the run folder.

Parameters flattened (``front_end.params.n_mels``), each epoch's measurements at step ``epoch``,
the final metrics, and the ``report/`` folder as the ``report`` artefact directory. A store MLflow
cannot open (a database backend without its driver, a server that does not answer) is one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.trackers import epoch_numbers, final_metrics, flat_params

__all__ = ["MlflowTracker", "make"]

#: MLflow refuses longer parameter values.
_PARAM_LIMIT = 6000


class MlflowTracker:
    name = "mlflow"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.client: Any = None
        self.run_id: str | None = None
        self.step = 0

    def start(self, params: dict[str, Any]) -> None:
        import mlflow
        from mlflow.entities import Param

        try:
            self.client = mlflow.MlflowClient()
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "zoo"
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            run = self.client.create_run(experiment_id, run_name=self.run_dir.name,
                                         tags={"zoo.run_dir": str(self.run_dir)})
        except Exception as exc:  # MlflowException, a missing database driver, an unreachable server
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ZooError(f"--report-to mlflow: MLflow cannot log to {mlflow.get_tracking_uri()} ({first[:300]}); set "
                           f"MLFLOW_TRACKING_URI to a store it can open (a server, or sqlite:///mlflow.db with "
                           f"zoo[mlflow])") from None
        self.run_id = run.info.run_id
        values = [Param(key, str(value)[:_PARAM_LIMIT]) for key, value in flat_params(params).items()]
        for start in range(0, len(values), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=values[start:start + 100])

    def _metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        import time

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for key, value in values.items()]
        for start in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[start:start + 1000])

    def epoch(self, row: dict[str, Any]) -> None:
        self.step = int(row.get("epoch", self.step + 1))
        self._metrics(epoch_numbers(row), self.step)

    def finish(self, metrics: dict[str, Any], report_dir: Path) -> None:
        self._metrics(final_metrics(metrics), self.step)
        if report_dir.is_dir():
            self.client.log_artifacts(self.run_id, str(report_dir), "report")
        self.client.set_terminated(self.run_id)


def make(run_dir: Path) -> MlflowTracker:
    return MlflowTracker(run_dir)
