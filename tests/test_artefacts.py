"""zoo's own artefacts are validated when read (issue 23, item 4): a vector table's zoo record and a
few-shot folder that are garbled, truncated, of the wrong shape or disagreeing with themselves are
refused in one line naming the file and the fix, never a traceback or a silently wrong answer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoo.embed import TableInfo, VectorStore, search
from zoo.errors import ZooError

TEXT_MODEL = "all-minilm-l6-v2-offline"
GOOD = TableInfo(model=TEXT_MODEL, revision="r", embedder="e", modality="text", dim=4).to_json()


def table_with_record(db, record: bytes, dim: int = 4) -> None:
    """A LanceDB table laid out as `zoo embed` lays it out, with ``record`` as its zoo metadata."""
    import lancedb
    import pyarrow as pa

    schema = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("source", pa.string(), nullable=False),
                        pa.field("label", pa.string()), pa.field("content", pa.string(), nullable=False),
                        pa.field("vector", pa.list_(pa.float32(), dim), nullable=False)], metadata={b"zoo": record})
    lancedb.connect(str(db)).create_table("t", schema=schema)


def edited(text: str | bytes, **changes) -> bytes:
    """A JSON object with ``changes`` made (``...`` deletes the key)."""
    data = json.loads(text)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


def with_key(**changes) -> bytes:
    return edited(GOOD, **changes)


@pytest.mark.parametrize("record, dim, why", [
    ("\x00\x1b garbage \u00ff\u2603".encode(), 4, "not valid JSON"),  # LanceDB keeps UTF-8 metadata only
    (GOOD.encode()[:25], 4, "not valid JSON"),
    (b"[1, 2]", 4, "a JSON list, not an object"),
    (with_key(dim=...), 4, "dim missing"),
    (with_key(model=..., embedder=...), 4, "model, embedder missing"),
    (with_key(dim="4"), 4, 'dim is "4"'),
    (with_key(modality="smell"), 4, 'modality is "smell"'),
    (with_key(weights=["a"]), 4, "weights is"),
    (with_key(front_end={"name": "log-mel", "modality": "audio"}), 4, "its front end reads 'audio'"),
    (GOOD.replace('"dim": 4', '"dim": 4, "dim": 8').encode(), 4, "the key 'dim' appears twice"),
    (GOOD.encode(), 8, "it says 4-d vectors, the table stores 8-d ones"),
])
def test_a_damaged_table_record_is_one_line_naming_the_table(tmp_path, record, dim, why):
    db = tmp_path / "db"
    table_with_record(db, record, dim)
    for read in (lambda: search(db, "a late goal"), lambda: VectorStore(db).table("t")):
        with pytest.raises(ZooError) as caught:
            read()
        message = str(caught.value)
        assert message.startswith(f"{db / 't.lance'}: the zoo record of table 't' is damaged (") and why in message
        assert "embed the data again into another --table" in message and "\n" not in message


@pytest.mark.slow
def test_a_damaged_table_record_stops_zoo_embed_in_one_line(tmp_path):
    from conftest import run_zoo

    db = tmp_path / "db"
    table_with_record(db, GOOD.encode()[:25])
    texts = tmp_path / "t.txt"
    texts.write_text("a late goal\n")
    result = run_zoo("embed", TEXT_MODEL, str(texts), "--db", str(db), "--table", "t")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "the zoo record of table 't' is damaged (not valid JSON" in result.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------- few-shot folders

@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from zoo.embed import zero_shot

    return zero_shot(TEXT_MODEL, "sport,cooking,finance", engine="torch").save(tmp_path_factory.mktemp("zs") / "zs")


def npy(array, allow_pickle: bool = False) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def edited_json(folder, name: str, **changes) -> bytes:
    return edited((folder / name).read_bytes(), **changes)


UNIT = np.eye(3, 384, dtype=np.float32)

# (file, its new bytes from the good folder, what the line says)
DAMAGE = [
    ("fewshot.json", lambda f: b"\x00\xff garbage \x9c", "fewshot.json: damaged: not valid JSON"),
    ("fewshot.json", lambda f: (f / "fewshot.json").read_bytes()[:40], "fewshot.json: damaged: not valid JSON"),
    ("fewshot.json", lambda f: (f / "fewshot.json").read_bytes().replace(b'"scale": 10.0', b'"scale": 10.0, "scale": 1'),
     "fewshot.json: damaged: the key 'scale' appears twice"),
    ("fewshot.json", lambda f: edited_json(f, "fewshot.json", counts=[0, 0]), "fewshot.json: damaged: 3 classes but 2 counts"),
    ("fewshot.json", lambda f: edited_json(f, "fewshot.json", classes=["sport", "sport", "finance"]),
     "fewshot.json: damaged: classes is"),
    ("fewshot.json", lambda f: edited_json(f, "fewshot.json", scale=-1), "fewshot.json: damaged: scale is -1"),
    ("fewshot.json", lambda f: edited_json(f, "fewshot.json", modality="smell"), 'fewshot.json: damaged: modality is "smell"'),
    ("fewshot.json", lambda f: edited_json(f, "fewshot.json", dim=128),
     "prototypes.npy: damaged (384-d prototypes, but fewshot.json says 128-d"),  # which of the two is wrong?
    ("fewshot.json", lambda f: edited_json(f, "fewshot.json", model="no-such-model"),
     "fewshot.json: names model 'no-such-model', which is not in the registry"),
    ("fewshot.json", lambda f: edited_json(f, "fewshot.json", modality="image"),
     "fewshot.json: damaged: all-minilm-l6-v2-offline embeds 384-d text vectors, but the classifier holds 384-d "
     "image prototypes"),
    ("prototypes.npy", lambda f: b"\x93NUMPY garbage" * 4, "prototypes.npy: damaged (not a numpy array file"),
    ("prototypes.npy", lambda f: (f / "prototypes.npy").read_bytes()[:200], "prototypes.npy: damaged"),
    ("prototypes.npy", lambda f: npy(np.array([{"a": 1}]), allow_pickle=True), "prototypes.npy: damaged"),
    ("prototypes.npy", lambda f: npy(UNIT[0]), "prototypes.npy: damaged (float32 values of shape (384,), not a (classes, dim)"),
    ("prototypes.npy", lambda f: npy(UNIT[:2]), "prototypes.npy: damaged (2 prototypes for the 3 classes of fewshot.json"),
    ("prototypes.npy", lambda f: npy(UNIT.astype(np.int64)), "prototypes.npy: damaged (int64 values of shape (3, 384), not"),
    ("prototypes.npy", lambda f: npy(UNIT * 2), "prototypes.npy: damaged (rows that are not of unit length"),
    ("prototypes.npy", lambda f: npy(np.where(UNIT == 1, np.nan, UNIT)), "prototypes.npy: damaged (values that are not finite"),
    ("prototypes.npy", lambda f: npy(np.eye(3, 5, dtype=np.float32)), "prototypes.npy: damaged (5-d prototypes, but fewshot.json says 384-d"),
    ("labels.json", lambda f: b'["sport", "cooking"]', "labels.json: damaged (2 labels that are not the 3 classes"),
    ("labels.json", lambda f: b'["cooking", "sport", "finance"]', "labels.json: damaged (3 labels that are not"),
    ("labels.json", lambda f: b'["sport", "cook', "labels.json: damaged (not valid JSON"),
    ("labels.json", None, "labels.json: missing, so the classifier is incomplete"),
    ("prototypes.npy", None, "prototypes.npy: missing, so the classifier is incomplete"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, damage, why", DAMAGE)
def test_a_damaged_fewshot_folder_is_one_line_naming_the_file(classifier, tmp_path, name, damage, why):
    import shutil

    from zoo.embed import load_fewshot

    folder = tmp_path / "copy"
    shutil.copytree(classifier, folder)
    if damage is None:
        (folder / name).unlink()
    else:
        (folder / name).write_bytes(damage(classifier))
    with pytest.raises(ZooError) as caught:
        load_fewshot(folder).predict(["a late goal"])
    message = str(caught.value)
    assert message.startswith(f"{folder}/{why}") and "\n" not in message, message  # the file, then what is wrong
    if "registry" not in why:
        assert "build the classifier again with `zoo fewshot " in message and f"--out {folder}`" in message
    if name != "fewshot.json":  # what the intact record says goes into the command
        assert f"`zoo fewshot {TEXT_MODEL} --labels NAMES --out {folder}`" in message


@pytest.mark.slow
def test_a_damaged_fewshot_folder_stops_the_cli_in_one_line(classifier, tmp_path):
    import shutil

    from conftest import run_zoo

    folder = tmp_path / "copy"
    shutil.copytree(classifier, folder)
    (folder / "prototypes.npy").write_bytes(npy(UNIT[:2]))
    result = run_zoo("fewshot", str(folder), "--predict", "a late goal")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "prototypes.npy: damaged (2 prototypes for the 3 classes" in result.stderr.strip().splitlines()[-1]
