"""--report-to: a run logged through each tracker's own library, and read back with it: TensorBoard's
event files with its EventAccumulator, a local MLflow file store with MLflow's client, an offline
W&B run from its transaction log."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
from conftest import run_zoo

from zoo.errors import ZooError
from zoo.trackers import check_trackers, final_metrics, replay

ROWS = [{"epoch": e, "stage": "head" if e < 3 else "unfreeze-1", "phase": int(e >= 3), "phase_epoch": e,
         "train_loss": 1.0 / e, "train_acc": 0.5 + e / 10, "val_loss": 1.2 / e, "val_acc": 0.4 + e / 10,
         "seconds": 0.5, "best": e == 4} for e in range(1, 5)]
METRICS = {"metric": "accuracy", "validation": "split", "test": {"accuracy": 0.875, "macro_f1": 0.8, "n": 96},
           "val": {"accuracy": 0.9, "macro_f1": 0.85, "n": 20},
           "baseline": {"name": "pixels", "test": {"accuracy": 0.5, "macro_f1": 0.4}}, "baseline_line": "beat it"}


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A finished run folder as zoo finetune writes it (four epochs, a report folder)."""
    run = tmp_path / "photos-run"
    (run / "report").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": {"model": "efficientnet_lite0", "data": "photos",
                                                            "seed": 0, "front_end": None, "registry": []},
                                                 "zoo_version": "0.1.0"}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    (run / "report" / "metrics.json").write_text(json.dumps(METRICS))
    (run / "report" / "index.html").write_text("<!DOCTYPE html><title>page</title>")
    from PIL import Image

    Image.new("RGB", (40, 30), "white").save(run / "report" / "curves.png")
    return run


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_epochs_the_final_metrics_and_the_report(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    replay(run_dir, ["tensorboard"])
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    scalars = events.Scalars("val_loss")
    assert [s.step for s in scalars] == [row["epoch"] for row in ROWS]
    assert [s.value for s in scalars] == pytest.approx([row["val_loss"] for row in ROWS], abs=1e-6)
    assert [s.value for s in events.Scalars("final/test/accuracy")] == pytest.approx([0.875])
    assert "report/curves" in tags["images"] and {"params", "report"} <= {t.split("/")[0] for t in
                                                                            tags["tensors"]}
    assert "epoch" not in tags["scalars"] and "best" not in tags["scalars"]  # steps and flags are no measurements


@pytest.mark.slow
def test_mlflow_file_store_holds_params_epochs_metrics_and_the_report(run_dir, tmp_path, monkeypatch):
    import mlflow

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store behind a switch
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "zoo-tests")
    replay(run_dir, "mlflow")
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("zoo-tests")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "photos-run" and run.info.status == "FINISHED"
    assert run.data.params["model"] == "efficientnet_lite0" and run.data.params["data"] == "photos"
    history = client.get_metric_history(run.info.run_id, "val_acc")
    assert [m.step for m in history] == [row["epoch"] for row in ROWS]
    assert [m.value for m in history] == pytest.approx([row["val_acc"] for row in ROWS])
    assert run.data.metrics["test/accuracy"] == 0.875 and run.data.metrics["baseline/test/accuracy"] == 0.5
    shown = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/index.html", "report/metrics.json", "report/curves.png"} <= shown


def wandb_records(path: Path):
    """The protobuf records of an offline W&B run's transaction log (``run-ID.wandb``): a 7-byte
    header (':W&B', magic 0xBEE1, version), then LevelDB-log blocks of 32 KiB whose records are
    (crc32, length, type) + data, a record split over blocks as FIRST/MIDDLE/LAST pieces. wandb no
    longer ships a Python reader (its Go core reads it), so the test reads the documented format."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    position, block, pending = 7, 32768, b""
    while position + 7 <= len(data):
        room = block - position % block
        if room < 7:
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0 and length == 0:  # the rest of the block is padding
            position += room
            continue
        piece = data[position + 7:position + 7 + length]
        position += 7 + length
        pending = piece if kind in (1, 2) else pending + piece
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def finished_log(path: Path, timeout: float = 60) -> list:
    """The log's records once it holds the run's exit (wandb's service writes it just after
    ``run.finish()`` returns)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        records = list(wandb_records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


@pytest.mark.slow
def test_wandb_offline_run_holds_config_history_summary_and_the_report_artifact(run_dir, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "zoo-tests")
    replay(run_dir, ["wandb"])
    (log,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = finished_log(log)
    kinds = [r.WhichOneof("record_type") for r in records]
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == "photos-run" and run.project == "zoo-tests"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["model"] == "efficientnet_lite0" and config["data"] == "photos"
    steps = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item} for r in records
             if r.WhichOneof("record_type") == "history"]
    assert [s["_step"] for s in steps] == [row["epoch"] for row in ROWS]
    assert [s["val_loss"] for s in steps] == pytest.approx([row["val_loss"] for row in ROWS])
    summary = {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for r in records
               if r.WhichOneof("record_type") == "summary" for item in r.summary.update}
    assert summary["test/accuracy"] == 0.875
    (artifact,) = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert artifact.type == "report" and {"index.html", "metrics.json"} <= {m.path for m in artifact.manifest.contents}
    assert "exit" in kinds


def test_final_metrics_are_the_held_out_scores_and_the_baseline():
    assert final_metrics(METRICS) == {"test/accuracy": 0.875, "test/macro_f1": 0.8, "test/n": 96.0, "val/accuracy": 0.9,
                                      "val/macro_f1": 0.85, "val/n": 20.0, "baseline/test/accuracy": 0.5,
                                      "baseline/test/macro_f1": 0.4}


def test_unknown_or_missing_trackers_are_one_line_naming_the_extra(monkeypatch):
    assert check_trackers("tensorboard, mlflow") == ["tensorboard", "mlflow"]
    assert check_trackers(["wandb", "wandb"]) == ["wandb"]
    with pytest.raises(ZooError, match="unknown tracker; choose from tensorboard, mlflow, wandb"):
        check_trackers(["comet"])
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if the package were not installed
    with pytest.raises(ZooError, match=r"needs the wandb package, which is not installed: pip install 'zoo\[wandb\]'"):
        check_trackers(["tensorboard", "wandb"])


@pytest.mark.slow
def test_mlflow_store_it_cannot_open_is_one_line(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ZooError, match=r"--report-to mlflow: MLflow cannot log to file:.*set MLFLOW_TRACKING_URI"):
        replay(run_dir, ["mlflow"])


@pytest.mark.slow
def test_a_tracker_that_cannot_start_fails_the_run_and_leaves_no_run_folder(digit_folder, tmp_path):
    env = {"MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri(), "MLFLOW_ALLOW_FILE_STORE": ""}
    out = tmp_path / "run"
    done = run_zoo("finetune", "efficientnet_lite0", "--data", str(digit_folder), "--epochs", "1", "--out", str(out),
                   "-q", "--report-to", "mlflow", env=env, timeout=300)
    assert done.returncode != 0
    assert "--report-to mlflow: MLflow cannot log to file:" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()  # no stub run folder a later run or `zoo runs` would trip over


@pytest.mark.slow
def test_zoo_finetune_report_to_logs_a_real_run(digit_folder, tmp_path, monkeypatch):
    env = {"MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true",
           "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    for name, value in env.items():  # the run's environment, and this process's to read the store back
        monkeypatch.setenv(name, value)
    out = tmp_path / "run"
    done = run_zoo("finetune", "efficientnet_lite0", "--data", str(digit_folder), "--val-split", "0.25", "--epochs", "3",
                   "--out", str(out), "-q", "--report-to", "tensorboard,mlflow", "--report-to", "wandb", env=env,
                   timeout=300)
    assert done.returncode == 0, done.stderr
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s.step for s in events.Scalars("val_loss")] == [row["epoch"] for row in history]
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    (run,) = client.search_runs([client.get_experiment_by_name("zoo").experiment_id])
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert run.data.metrics["val/accuracy"] == pytest.approx(metrics["val"]["accuracy"])
    assert any(a.path == "report/index.html" for a in client.list_artifacts(run.info.run_id, "report"))
    (log,) = out.glob("wandb/offline-run-*/run-*.wandb")
    assert sum(r.WhichOneof("record_type") == "history" for r in finished_log(log)) == len(history)
