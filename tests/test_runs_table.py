"""zoo runs [FOLDER]: one row per run folder (model, data, task, metric, baseline, time, status),
sortable, as a table or JSON; statuses read from the files a run leaves when it finishes, stops or
is still being written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import run_zoo

import zoo
from zoo.errors import ZooError
from zoo.runs_table import list_runs, run_row


def folder(root: Path, name: str, *, model="m", data="d", metrics=None, final=False, epochs=(), cv=False,
           seconds=10.0) -> Path:
    """A run folder as zoo finetune leaves it, with the files of the given state."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": {"model": model, "data": data, "metric": "accuracy"}}))
    (run / "labels.json").write_text('["a", "b"]')
    start = time.time() - 1000
    os.utime(run / "labels.json", (start, start))
    for epoch in epochs:
        (run / "checkpoints" / f"epoch-{epoch:04d}.pt").write_bytes(b"x")
    if cv:
        (run / "cv").mkdir()
        (run / "cv" / "fold-0.json").write_text("{}")
    if metrics is not None:
        (run / "report").mkdir()
        (run / "report" / "metrics.json").write_text(json.dumps(metrics))
        os.utime(run / "report" / "metrics.json", (start + seconds, start + seconds))
    if final:
        (run / "checkpoints" / "final.pt").write_bytes(b"x")
        os.utime(run / "checkpoints" / "final.pt", (start + seconds, start + seconds))
    return run


def scored(test: float, baseline: float) -> dict:
    return {"metric": "accuracy", "test": {"accuracy": test}, "baseline": {"test": {"accuracy": baseline}}}


@pytest.mark.slow
def test_statuses_metrics_and_sorting(tmp_path):
    folder(tmp_path, "good", metrics=scored(0.9, 0.5), final=True, seconds=30)
    folder(tmp_path, "better", model="n", metrics=scored(0.95, 0.6), final=True, seconds=50)
    folder(tmp_path, "mid-epochs", epochs=(1, 2, 3))
    folder(tmp_path, "mid-folds", cv=True)
    folder(tmp_path, "early")
    (tmp_path / "not-a-run").mkdir()
    rows = {row.name: row for row in list_runs(tmp_path)}
    assert set(rows) == {"good", "better", "mid-epochs", "mid-folds", "early"}
    assert rows["good"].status == "finished" and rows["good"].metric == 0.9 and rows["good"].baseline == 0.5
    assert rows["good"].on == "test" and rows["good"].seconds == pytest.approx(30, abs=1)
    assert rows["mid-epochs"].status == "resumable" and "epoch 3" in rows["mid-epochs"].detail
    assert f"zoo finetune --resume {tmp_path / 'mid-epochs'}" in rows["mid-epochs"].detail
    assert rows["mid-folds"].status == "resumable" and "cross-validation folds" in rows["mid-folds"].detail
    assert rows["early"].status == "killed" and rows["early"].metric is None
    assert [r.name for r in list_runs(tmp_path, sort="metric")][:2] == ["better", "good"]
    assert [r.name for r in list_runs(tmp_path, sort="seconds")][:2] == ["good", "better"]
    assert [r.status for r in list_runs(tmp_path, sort="status")] == ["finished", "finished", "resumable",
                                                                       "resumable", "killed"]
    with pytest.raises(ZooError, match="--sort size: unknown"):
        list_runs(tmp_path, sort="size")
    with pytest.raises(ZooError, match="no such folder"):
        list_runs(tmp_path / "nowhere")


@pytest.mark.slow
def test_a_run_being_written_is_running(tmp_path):
    import filelock

    run = folder(tmp_path, "busy", epochs=(1,))
    with filelock.FileLock(str(run / ".lock")):  # what zoo finetune holds while it writes the folder
        assert run_row(run).status == "running"
    assert run_row(run).status == "resumable"


@pytest.mark.slow
def test_zoo_runs_lists_real_runs_as_a_table_and_json(digit_folder, tmp_path):
    options = {"val_split": 0.25, "head_epochs": 3, "progress": False, "log": lambda _: None}
    zoo.finetune("efficientnet_lite0", str(digit_folder), out=tmp_path / "runs" / "one", **options)
    folder(tmp_path / "runs", "stopped", epochs=(2,))
    done = run_zoo("runs", str(tmp_path / "runs"), "--json", "--sort", "metric")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [row["name"] for row in rows] == ["one", "stopped"]
    metrics = json.loads((tmp_path / "runs" / "one" / "report" / "metrics.json").read_text())
    assert rows[0]["status"] == "finished" and rows[0]["metric"] == metrics["val"]["accuracy"]
    assert rows[0]["baseline"] == metrics["baseline"]["val"]["accuracy"] and rows[0]["on"] == "val"
    assert rows[0]["model"] == "efficientnet_lite0" and rows[0]["task"] == "classification"
    table = run_zoo("runs", str(tmp_path / "runs"))
    assert table.returncode == 0 and "finished" in table.stdout and "resumable" in table.stdout
    assert f"stopped: resumable: saved: epoch 2; `zoo finetune --resume {tmp_path / 'runs' / 'stopped'}`" in table.stdout
    bad = run_zoo("runs", str(tmp_path / "nowhere"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
