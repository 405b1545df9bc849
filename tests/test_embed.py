"""zoo embed / zoo search on real LanceDB files in temp folders, with the two offline models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import full_only, kill_when_written, run_zoo, write_text_csv

import zoo
from zoo.embed import TableInfo, VectorStore, delete_items, embed_dataset, search
from zoo.errors import InputError, IntegrityError, ZooError

IMAGE_MODEL = "efficientnet_lite0"
TEXT_MODEL = "all-minilm-l6-v2-offline"

TOPICS = {
    "sport": ["The striker scored twice in the final minutes", "The team won the championship match",
              "She ran the marathon in record time"],
    "cooking": ["Simmer the tomato sauce for twenty minutes", "Whisk the eggs with sugar and butter",
                "Bake the bread until the crust is golden"],
    "finance": ["The central bank raised interest rates", "Shares fell after the earnings report",
                "Investors moved money into government bonds"],
}


def topic_rows() -> list[tuple[str, str]]:
    return [(text, label) for label, texts in TOPICS.items() for text in texts]


def digit_png(path: Path, index: int) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    pixels = 255 - (load_digits().images[index] * 255 / 16).astype(np.uint8)  # dark ink on white
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).resize((48, 48), Image.Resampling.BICUBIC).convert("RGB").save(path)
    return path


@pytest.fixture()
def image_folder(tmp_path) -> Path:
    """Two classes of digits as PNG files in class folders: zero/{0,1,2}.png and one/{0,1,2}.png."""
    from sklearn.datasets import load_digits

    target = load_digits().target
    root = tmp_path / "images"
    for name, digit in (("zero", 0), ("one", 1)):
        for n, index in enumerate(np.flatnonzero(target == digit)[:3]):
            digit_png(root / name / f"{n}.png", int(index))
    return root


@pytest.mark.slow
def test_text_table_is_incremental_and_searchable(tmp_path):
    db = tmp_path / "db"
    data = write_text_csv(tmp_path / "topics.csv", topic_rows())
    first = embed_dataset(TEXT_MODEL, data, db=db)
    assert (first.created, first.embedded, first.unchanged, first.rows) == (True, 9, 0, 9)
    assert first.table == TEXT_MODEL and first.revision
    assert (db / f"{TEXT_MODEL}.lance").is_dir()  # a real LanceDB table on disk

    again = embed_dataset(TEXT_MODEL, data, db=db)
    assert (again.created, again.embedded, again.reused, again.unchanged, again.rows) == (False, 0, 0, 9, 9)

    relabelled = [(text, "markets" if text.startswith("Shares") else label) for text, label in topic_rows()]
    write_text_csv(data, relabelled + [("The goalkeeper saved a penalty", "sport")])
    from zoo.embed.store import VectorStore

    before = VectorStore(db).table(TEXT_MODEL).version
    grown = embed_dataset(TEXT_MODEL, data, db=db)
    assert (grown.embedded, grown.reused, grown.replaced, grown.unchanged, grown.rows) == (1, 1, 1, 8, 10)
    # the changed row and the new one landed in one commit (merge_insert): no kill can fall between
    # a delete and an add, because there is none
    assert VectorStore(db).table(TEXT_MODEL).version == before + 1

    result = search(db, "a football player kicked the ball into the net", k=3)
    assert result.method == "exact" and len(result.hits) == 3
    assert result.hits[0].label == "sport"
    assert [h.rank for h in result.hits] == [1, 2, 3]
    assert result.hits[0].score >= result.hits[1].score >= result.hits[2].score
    stored = search(db, "Shares fell after the earnings report", k=1).hits[0]
    assert stored.label == "markets" and stored.score == pytest.approx(1.0, abs=1e-4)

    table = VectorStore(db).table()
    info = table.info
    assert (info.model, info.dim, info.modality, info.metric) == (TEXT_MODEL, 384, "text", "cosine")
    vectors = table.vectors_for(table.keys()["content"])
    assert np.allclose([np.linalg.norm(v) for v in vectors.values()], 1.0, atol=1e-5)  # L2-normalised


@pytest.mark.slow
def test_image_folder_copies_edits_and_image_queries(tmp_path, image_folder):
    db = tmp_path / "db"
    first = embed_dataset(IMAGE_MODEL, image_folder, db=db, workers=0)
    assert (first.embedded, first.rows, first.table) == (6, 6, IMAGE_MODEL)

    shutil.copy(image_folder / "zero" / "0.png", image_folder / "zero" / "copy.png")  # same bytes: no model call
    digit_png(image_folder / "one" / "new.png", 42)  # a 1 not seen before
    digit_png(image_folder / "zero" / "2.png", 30)  # edited in place: new content at the same path
    update = embed_dataset(IMAGE_MODEL, image_folder, db=db, workers=0)
    assert (update.embedded, update.reused, update.replaced, update.unchanged, update.rows) == (2, 1, 1, 5, 8)

    query = image_folder / "one" / "new.png"
    result = search(db, query, k=8)
    assert result.hits[0].source == str(query.resolve())
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-3) and result.hits[0].label == "one"
    same = [h for h in result.hits if h.source.endswith(("zero/0.png", "zero/copy.png"))]
    assert len(same) == 2 and same[0].score == pytest.approx(same[1].score, abs=1e-6)

    with pytest.raises(InputError, match="must be an image file"):
        search(db, "a photo of a zero")


@pytest.mark.slow
def test_unlabelled_folder_and_text_file(tmp_path):
    flat = tmp_path / "photos"
    digit_png(flat / "a.png", 0)
    digit_png(flat / "b.png", 1)
    (flat / "notes.md").write_text("not an image")
    report = embed_dataset(IMAGE_MODEL, flat, db=tmp_path / "db", workers=0)
    assert (report.items, report.embedded) == (2, 2)
    lines = tmp_path / "lines.txt"
    lines.write_text("first text\n\nsecond text\n", encoding="utf-8")
    texts = embed_dataset(TEXT_MODEL, lines, db=tmp_path / "db")
    assert texts.items == 2
    hits = search(tmp_path / "db", "second text", table=TEXT_MODEL, k=2).hits
    assert hits[0].source == "second text" and hits[0].label is None


@pytest.mark.slow
def test_delete_removes_items_for_good_even_with_an_index(tmp_path):
    db = tmp_path / "db"
    secret = "Private note: the vault code is 4711"
    data = write_text_csv(tmp_path / "topics.csv", topic_rows() + [(secret, "finance")])
    report = embed_dataset(TEXT_MODEL, data, db=db, index=True)
    assert report.index and "IVF_FLAT" in report.index
    table = VectorStore(db).table()
    assert table.index().kind == "IVF_FLAT"
    on_disk = b"".join(p.read_bytes() for p in db.rglob("*") if p.is_file())
    assert secret.encode() in on_disk

    victim = search(db, "Whisk the eggs with sugar and butter", k=1).hits[0]
    removal = delete_items(db, [secret, victim.id])
    assert removal.removed == {TEXT_MODEL: 2} and removal.not_found == ()

    for exact in (False, True):
        hits = search(db, secret, k=10, exact=exact).hits
        assert len(hits) == 8  # every remaining row, none of the deleted ones
        assert {h.source for h in hits}.isdisjoint({secret, victim.source})
    assert len(VectorStore(db).table()) == 8
    assert secret.encode() not in b"".join(p.read_bytes() for p in db.rglob("*") if p.is_file())

    again = embed_dataset(TEXT_MODEL, data, db=db)  # the data still holds them: they stay out
    assert (again.skipped_deleted, again.embedded, again.rows) == (2, 0, 8)
    assert delete_items(db, ["never stored"]).not_found == ("never stored",)


@pytest.mark.slow
def test_a_kill_during_an_update_loses_no_row(tmp_path):
    """kill -9 as soon as the update writes its first file into the table: the table still holds
    every row, old or new, never neither (a delete-then-add lost the replaced rows here)."""
    db = tmp_path / "db"
    data = write_text_csv(tmp_path / "topics.csv", topic_rows())
    embed_dataset(TEXT_MODEL, data, db=db)
    table = VectorStore(db).table(TEXT_MODEL)
    before = dict(zip(table.keys()["id"], table.keys()["label"]))
    folder = db / f"{TEXT_MODEL}.lance"
    written = set(folder.rglob("*"))
    write_text_csv(data, [(text, "changed") for text, _ in topic_rows()] + [("The goalkeeper saved a penalty", "sport")])

    kill_when_written(["embed", TEXT_MODEL, str(data), "--db", str(db)], lambda: bool(set(folder.rglob("*")) - written),
                      poll=0.002)
    after = VectorStore(db).table(TEXT_MODEL).keys()
    labels = dict(zip(after["id"], after["label"]))
    assert set(before) <= set(labels) and len(after["id"]) == len(set(after["id"]))
    states = {"old" if labels[i] == before[i] else "new" for i in before}
    assert len(states) == 1  # one commit: all replaced or none
    finished = embed_dataset(TEXT_MODEL, data, db=db)  # the next run completes the update
    assert finished.rows == 10 and set(VectorStore(db).table(TEXT_MODEL).keys()["label"]) == {"changed", "sport"}


@pytest.mark.slow
def test_delete_by_path_and_folder(tmp_path, image_folder):
    db = tmp_path / "db"
    embed_dataset(IMAGE_MODEL, image_folder, db=db, workers=0)
    removal = delete_items(db, [str(image_folder / "one"), str(image_folder / "zero" / "0.png")])
    assert removal.removed == {IMAGE_MODEL: 4}
    assert {Path(h.source).name for h in search(db, image_folder / "zero" / "1.png", k=10).hits} == {"1.png", "2.png"}


@pytest.mark.slow
def test_model_mismatch_is_refused(tmp_path, image_folder):
    db = tmp_path / "db"
    embed_dataset(TEXT_MODEL, write_text_csv(tmp_path / "t.csv", topic_rows()), db=db, table="shared")
    with pytest.raises(ZooError, match=r"holds embeddings from all-minilm-l6-v2-offline .*not from 'efficientnet_lite0'"):
        embed_dataset(IMAGE_MODEL, image_folder, db=db, table="shared")
    # same model name, other weights or preprocessing: refused too
    store = VectorStore(db)
    with store.lock("stale"):
        store.create("stale", TableInfo(model=TEXT_MODEL, revision="old", embedder="0" * 32, modality="text", dim=384))
    with pytest.raises(ZooError, match="other weights, cut point or preprocessing"):
        embed_dataset(TEXT_MODEL, tmp_path / "t.csv", db=db, table="stale")
    # recorded file hashes that differ from the cache's: refused naming both, by embed and search
    now = VectorStore(db).table("shared").info.weights
    name = next(n for n in now if n.endswith(".safetensors"))
    with store.lock("drifted"):
        store.create("drifted", TableInfo(model=TEXT_MODEL, revision="old", embedder="0" * 32, modality="text",
                                          dim=384, weights={**now, name: "f" * 64}))
    drift = f"file {name!r} of sha256 {'f' * 64}, but the cache now holds sha256 {now[name]}"
    with pytest.raises(IntegrityError, match=drift):
        embed_dataset(TEXT_MODEL, tmp_path / "t.csv", db=db, table="drifted")
    with pytest.raises(IntegrityError, match=drift):
        search(db, "anything", table="drifted")
    with pytest.raises(InputError, match="holds 3 tables"):
        search(db, "anything")
    with pytest.raises(InputError, match="no vector database"):
        search(tmp_path / "nowhere", "anything")
    assert store.tables() == ["drifted", "shared", "stale"]  # the deletion registers stay internal


@full_only
@pytest.mark.slow
def test_cli_embed_search_delete(tmp_path, image_folder):
    db = tmp_path / "db"
    embedded = run_zoo("embed", IMAGE_MODEL, str(image_folder), "--db", str(db), "--json")
    assert embedded.returncode == 0, embedded.stderr
    assert json.loads(embedded.stdout)["embedded"] == 6

    query = image_folder / "one" / "1.png"
    found = run_zoo("search", "--db", str(db), str(query), "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert set(hits[0]) == {"rank", "id", "score", "label", "source"}
    assert hits[0]["source"] == str(query.resolve()) and hits[0]["label"] == "one"

    deleted = run_zoo("embed", "--db", str(db), "--delete", hits[0]["id"], "no such item")
    assert deleted.returncode == 1
    assert "removed 1 from" in deleted.stdout and "nothing matched 'no such item'" in deleted.stderr
    assert "Traceback" not in deleted.stderr


@pytest.mark.parametrize("command", ["embed", "search", "fewshot"])
def test_help_never_imports_heavy_libraries(command):
    heavy = ("torch", "lancedb", "pyarrow", "transformers")
    code = ("import sys, zoo.cli\n"
            f"try:\n    zoo.cli.main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY', sorted(m for m in {heavy!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_public_names():
    assert zoo.embed.search is search
    assert callable(zoo.embed.fewshot) and zoo.embed.FewShot.__name__ == "FewShot"


@pytest.mark.slow
def test_index_policy_on_synthetic_vectors(tmp_path):
    """The store alone: threshold, incremental index updates, retraining after growth, exact scores."""
    from zoo.embed.store import INDEX_THRESHOLD

    rng = np.random.default_rng(0)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, 16)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def rows(table, vectors: np.ndarray) -> None:
        start = len(table)
        names = [f"item {start + i}" for i in range(len(vectors))]
        table.add([f"{start + i:016x}" for i in range(len(vectors))], names, [None] * len(vectors), names, vectors)

    store = VectorStore(tmp_path / "db", create=True)
    table = store.create("synthetic", TableInfo(model="m", revision="r", embedder="e", modality="text", dim=16))
    vectors = unit(400)
    rows(table, vectors)
    assert INDEX_THRESHOLD > 400 and table.maintain_index() is None and table.index() is None
    assert "over 400 rows (12 partitions)" in table.maintain_index(True)
    state = table.index()
    assert (state.kind, state.partitions, state.trained_on, state.nprobes) == ("IVF_FLAT", 12, 400, 12)

    rows(table, unit(100))
    assert table.maintain_index() == "added 100 rows to the index"
    assert table.index().indexed == 500 and table.index().unindexed == 0
    rows(table, unit(300))
    assert "built an IVF_FLAT index over 800 rows" in table.maintain_index()  # 2x the 400 it was trained on
    assert [i.name for i in table._lance.list_indices()] == [table.index().name]  # the old index is gone

    query = vectors[7]
    ann, exact = table.search(query, 5), table.search(query, 5, exact=True)
    assert ann[0].id == exact[0].id == f"{7:016x}" and ann[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in ann] == pytest.approx([h.score for h in exact], abs=1e-5)


@pytest.mark.slow
def test_a_db_that_cannot_be_written_is_one_line(tmp_path):
    from conftest import run_zoo

    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    data = write_text_csv(tmp_path / "topics.csv", topic_rows())
    result = run_zoo("embed", TEXT_MODEL, str(data), "--db", str(blocker / "db"))
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"cannot write {blocker / 'db'}: a file stands where a folder must be" in result.stderr


@pytest.mark.slow
def test_a_query_leaves_torchs_thread_count_alone_on_either_engine(tmp_path):
    import torch

    db = tmp_path / "db"
    embed_dataset(TEXT_MODEL, write_text_csv(tmp_path / "topics.csv", topic_rows()), db=db)
    from zoo.embed.query import Searcher

    for engine in ("onnxruntime", "torch"):
        searcher = Searcher(db, engine=engine)
        seen = []
        original = searcher.backbone.embed

        def watching(items, original=original, seen=seen):
            seen.append(torch.get_num_threads())
            return original(items)

        searcher.backbone.embed = watching
        before = torch.get_num_threads()
        searcher("a football match", 1)
        assert seen == [before] and torch.get_num_threads() == before, engine
