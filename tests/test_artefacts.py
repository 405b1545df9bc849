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


def with_key(**changes) -> bytes:
    data = json.loads(GOOD)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


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


def test_a_damaged_table_record_stops_zoo_embed_in_one_line(tmp_path):
    from conftest import run_zoo

    db = tmp_path / "db"
    table_with_record(db, GOOD.encode()[:25])
    texts = tmp_path / "t.txt"
    texts.write_text("a late goal\n")
    result = run_zoo("embed", TEXT_MODEL, str(texts), "--db", str(db), "--table", "t")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "the zoo record of table 't' is damaged (not valid JSON" in result.stderr.strip().splitlines()[-1]
