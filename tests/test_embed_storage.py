"""A vector database (`zoo embed --db`) or a few-shot folder (`zoo fewshot --out`) where the place
cannot hold it: a file where the folder must be, a full disk (RLIMIT_FSIZE in the child, SIGXFSZ
ignored, so writes fail with EFBIG as on a full disk). One line naming the path and the fix, and
nothing partial at a final path (issue 23, item 6). Tests run as root, so chmod would not stop a write."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_zoo, write_text_csv

from zoo.embed import VectorStore, embed_dataset, load_fewshot, zero_shot

TEXT_MODEL = "all-minilm-l6-v2-offline"
ROWS = [("a late goal won the match", "sport"), ("bake the bread until golden", "cooking"),
        ("the bank raised its rates", "finance")]


def run_zoo_limited(*args: str, max_bytes: int) -> subprocess.CompletedProcess:
    """The real `zoo` script, unable to write a file past ``max_bytes`` (EFBIG, as a full disk)."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return subprocess.run([str(Path(sys.executable).with_name("zoo")), *args], capture_output=True, text=True,
                          preexec_fn=limit, timeout=300)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture()
def texts(tmp_path) -> Path:
    data = write_text_csv(tmp_path / "t.csv", ROWS)
    embed_dataset(TEXT_MODEL, data, db=tmp_path / "warm", engine="torch")  # the feature cache holds them now
    return data


@pytest.mark.slow
def test_a_file_where_the_db_must_be_is_one_line(tmp_path, texts):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    db = blocker / "db"
    line = one_line(run_zoo("embed", TEXT_MODEL, str(texts), "--db", str(db)))
    assert line.startswith(f"Error: cannot write {db}: a file stands where a folder must be")
    assert line.endswith("remove or rename that file, or choose another --db")
    from zoo.errors import StorageError

    with pytest.raises(StorageError, match=f"cannot write {blocker}: a file stands where a folder must be"):
        embed_dataset(TEXT_MODEL, texts, db=blocker)  # (the CLI's --db refuses an existing file itself)
    assert blocker.read_text() == "a file, not a folder"


@pytest.mark.slow  # ~18 s: two limited children that each load the model
def test_a_full_disk_while_embedding_names_the_table_and_leaves_no_half_table(tmp_path, texts):
    db = tmp_path / "db"
    line = one_line(run_zoo_limited("embed", TEXT_MODEL, str(texts), "--db", str(db), "--engine", "torch",
                                    max_bytes=4096))
    assert line.startswith(f"Error: cannot write {db / TEXT_MODEL}.lance: the file is larger than this process "
                           f"may write") and line.endswith("or choose another --db"), line
    assert VectorStore(db).tables() == [] and not (db / f"{TEXT_MODEL}.lance").exists()  # no empty or torn table
    # the same table filled, then a bigger update that does not fit: the rows stay as they were
    embed_dataset(TEXT_MODEL, texts, db=db, engine="torch")
    more = write_text_csv(tmp_path / "more.csv", ROWS + [(f"text number {n} about nothing", "misc") for n in range(40)])
    line = one_line(run_zoo_limited("embed", TEXT_MODEL, str(more), "--db", str(db), "--engine", "torch",
                                    max_bytes=4096))
    assert f"cannot write {db / TEXT_MODEL}.lance" in line
    assert len(VectorStore(db).table()) == 3


@pytest.fixture()
def classifier():
    """Made in this test's ZOO_HOME, so the model is pulled there before any limited child runs."""
    return zero_shot(TEXT_MODEL, "sport,cooking", engine="torch")


@pytest.mark.slow
def test_a_file_where_the_fewshot_folder_must_be_is_one_line(classifier, tmp_path):
    from zoo.errors import StorageError

    blocker = tmp_path / "file.txt"
    blocker.write_text("mine")
    for out in (blocker, blocker / "clf"):
        with pytest.raises(StorageError) as caught:
            classifier.save(out)
        assert str(caught.value).startswith(f"cannot write {out if out == blocker else blocker}: a file stands")
        assert str(caught.value).endswith("or choose another --out")
    assert blocker.read_text() == "mine"
    line = one_line(run_zoo("fewshot", TEXT_MODEL, "--labels", "a,b", "--out", str(blocker / "clf"),
                            "--engine", "torch"))
    assert line.startswith(f"Error: cannot write {blocker}: a file stands where a folder must be")
    assert line.endswith("remove or rename that file, or choose another --out")


@pytest.mark.slow  # ~17 s: two limited children that each load the model
def test_a_full_disk_while_saving_a_classifier_keeps_the_previous_one_whole(classifier, tmp_path):
    out = tmp_path / "clf"
    line = one_line(run_zoo_limited("fewshot", TEXT_MODEL, "--labels", "sport,cooking,finance", "--out", str(out),
                                    "--engine", "torch", max_bytes=2048))
    assert line.startswith(f"Error: cannot write {out / 'prototypes.npy'}: the file is larger than this process may "
                           f"write") and line.endswith("or choose another --out"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no temp
    classifier.save(out)  # two classes; the next one (three) does not fit
    one_line(run_zoo_limited("fewshot", TEXT_MODEL, "--labels", "sport,cooking,finance", "--out", str(out),
                             "--engine", "torch", max_bytes=2048))
    assert load_fewshot(out).classes == ("sport", "cooking")  # the previous classifier, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]
