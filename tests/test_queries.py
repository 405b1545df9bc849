"""A query is checked against the modality of the table (zoo search) or classifier (zoo fewshot
--predict) both ways round, before any model loads: an image or a clip path is no sentence, a
sentence no image (issue 23, item 5). Real files, real LanceDB tables, the real CLI."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_zoo, write_text_csv

from zoo.embed import TableInfo, VectorStore, search
from zoo.embed.query import Searcher
from zoo.errors import InputError

TEXT_MODEL = "all-minilm-l6-v2-offline"
LOG_MEL = {"name": "log-mel", "modality": "audio", "params": {"clip_seconds": 1.0}}


@pytest.fixture()
def files(tmp_path):
    """A real PNG, a real WAV, an MP3 name (no decoder needed to know it is a sound), a folder, a
    text file; and names of media files that do not exist."""
    import soundfile
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "cat.png")
    soundfile.write(tmp_path / "clip.wav", np.sin(np.linspace(0, 300, 8000)).astype(np.float32), 8000)
    (tmp_path / "song.mp3").write_bytes(b"ID3 not really")
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("a text file")
    return tmp_path


@pytest.fixture()
def tables(tmp_path):
    """One table per kind of vectors, made through the real store: their queries are refused before
    the model named in them would load."""
    store = VectorStore(tmp_path / "db", create=True)
    kinds = {
        "text": TableInfo(model=TEXT_MODEL, revision="r", embedder="e", modality="text", dim=4),
        "image": TableInfo(model="efficientnet_lite0", revision="r", embedder="e", modality="image", dim=4),
        "audio": TableInfo(model="efficientnet_lite0", revision="r", embedder="e", modality="audio", dim=4,
                           front_end=LOG_MEL),
        "audio_run": TableInfo(model=f"run:{tmp_path / 'run'}", revision="r", embedder="e", modality="audio", dim=4,
                               front_end=LOG_MEL),
    }
    for name, info in kinds.items():
        store.create(name, info).add(["1"], ["s"], [None], ["c"], np.eye(1, 4, dtype=np.float32))
    return tmp_path / "db"


# (table, query (relative to the files), as_text, what the one line says; None: the query is good)
MATRIX = [
    ("text", "a late goal", False, None),
    ("text", "cat.png", False, "'cat.png' is an image file, but table 'text'"),
    ("text", "clip.wav", False, "is an audio file, but table 'text'"),
    ("text", "song.mp3", False, "is an audio file"),
    ("text", "folder", False, "is a folder, but table 'text'"),
    ("text", "http://example.com/cat.jpg", False, "looks like a URL"),
    ("text", "photos/missing.jpg", False, "looks like the name of an image file (there is no such file)"),
    ("text", "x" * 5000 + ".png", False, "...' looks like the name of an image file"),  # too long to be a file
    ("text", "~nosuchuser/cat.png", False, "looks like the name of an image file"),
    ("text", "notes.txt", False, None),  # not a media file: a text that happens to name a file
    ("text", "a photo called cat.png", False, None),  # a sentence, not a path
    ("text", "cat.png", True, None),  # --text: the words
    ("text", "folder", True, None),
    ("text", "http://example.com/cat.jpg", True, None),
    ("image", "cat.png", False, None),
    ("image", "a photo of a cat", False, "must be an image file, and 'a photo of a cat' is not a file"),
    ("image", "clip.wav", False, "is an audio file, but table 'image'"),
    ("image", "folder", False, "is a folder; give one image file at a time"),
    ("image", "https://example.com/cat.jpg", False, "looks like a URL, but zoo downloads no query"),
    ("image", "missing.png", False, "is not a file"),
    ("image", "y" * 5000, False, "...' is not a file"),
    ("image", "cat.png", True, "--text is for text queries, but table 'image'"),
    ("audio", "clip.wav", False, None),
    ("audio", "cat.png", False, "is an image file, but table 'audio'"),
    ("audio", "a dog barking", False, "must be an audio file"),
    ("audio", "folder", False, "is a folder"),
    ("audio_run", "clip.wav", False, None),
    ("audio_run", "cat.png", False, "is an image file, but table 'audio_run' (run:"),
    ("audio_run", "a dog barking", True, "--text is for text queries"),
]


@pytest.mark.parametrize("table, query, as_text, message", MATRIX)
def test_the_query_matrix(tables, files, monkeypatch, table, query, as_text, message):
    monkeypatch.chdir(files)  # queries name files as a user in that folder does
    searcher = Searcher(tables, table)
    if message is None:
        searcher.check(query, as_text=as_text)
        return
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        search(tables, query, table=table, as_text=as_text)  # refused before the model would load
    assert "\n" not in str(caught.value)


def test_objects_that_are_no_text_are_refused_for_a_text_table(tables):
    with pytest.raises(InputError, match="takes a non-empty text, not an object of type ndarray"):
        search(tables, np.zeros((8, 8, 3), np.uint8), table="text")
    with pytest.raises(InputError, match="not an empty text"):
        search(tables, "   ", table="text")


@pytest.mark.slow
def test_a_text_table_refuses_an_image_path_and_searches_it_with_text(tmp_path, files, tables):
    from zoo.embed import embed_dataset

    db = tmp_path / "real"
    data = write_text_csv(tmp_path / "t.csv", [("cat.png", "files"), ("a late goal", "sport"),
                                                ("bake the bread", "cooking")])
    embed_dataset(TEXT_MODEL, data, db=db, engine="torch")
    image = str(files / "cat.png")
    refused = run_zoo("search", image, "--db", str(db))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert f"'{image}' is an image file, but table '{TEXT_MODEL}'" in line and "add --text" in line
    assert search(db, "cat.png", k=1, engine="torch", as_text=True).hits[0].source == "cat.png"
    # the flag reaches the library (refused for an image table without loading a model)
    flagged = run_zoo("search", image, "--text", "--db", str(tables), "--table", "image")
    assert flagged.returncode == 1 and "--text is for text queries, but table 'image'" in flagged.stderr


@pytest.mark.slow
def test_a_text_classifier_refuses_files_and_takes_them_as_words_with_text(tmp_path, files):
    from zoo.embed import load_fewshot, zero_shot

    folder = zero_shot(TEXT_MODEL, "sport,cooking", engine="torch").save(tmp_path / "zs")
    clip = str(files / "clip.wav")
    refused = run_zoo("fewshot", str(folder), "--predict", "a late goal", clip)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"'{clip}' is an audio file, but the few-shot classifier at {folder}" in refused.stderr
    assert f"use it with a classifier of audio embeddings, or add --text if you mean the words '{clip}'" in refused.stderr
    taken = load_fewshot(folder, engine="torch").predict(["a late goal", clip], as_text=True)
    assert [p.input for p in taken] == ["a late goal", clip]
    alone = run_zoo("fewshot", str(folder), "--text")
    assert alone.returncode == 2 and "--text goes with --predict" in alone.stderr


def test_a_run_trained_on_sounds_embeds_no_images():
    """A run's card reads sounds through its recorded front end; images are not what it embeds."""
    from zoo.card import FrontEndSpec
    from zoo.embed.embedder import Embedder
    from zoo.frontend import with_front_end
    from zoo.pulling import resolve_card

    card = with_front_end(resolve_card("efficientnet_lite0"), FrontEndSpec.from_dict(LOG_MEL))
    run = Embedder("run:/runs/sounds", card, None, "identity", 1280, run_dir=None)
    assert run.reading("audio") is run
    with pytest.raises(InputError, match="run:/runs/sounds was trained on audio data .* not image data"):
        run.reading("image")
