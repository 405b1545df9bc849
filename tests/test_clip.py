"""Image-text models (CLIP, SigLIP) through the `hf:` path, against transformers' own outputs.

Tiny random CLIPModel and SiglipModel repositories saved by transformers (tests/clipkit.py),
served by the local Hub server: the derived cards, both towers' embeddings against
``get_image_features`` / ``get_text_features`` on the same inputs (1e-5 cosine), zero-shot from
the command line (saved, exported, predicted, served without torch), cross-modal search (a
sentence through the text tower, an image still), the export of both towers and the torch-free
text tower; every bad input one line.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import hubserver
from click.testing import CliRunner
from clipkit import CLIP, SIGLIP, VIT, clip_repo, shared_home, siglip_repo, vit_repo, write_photos  # noqa: F401
from conftest import run_zoo

import zoo
from zoo.card import tower_card
from zoo.cli import cli

module_hub = hubserver.module_hub
MAKERS = {CLIP: clip_repo, SIGLIP: siglip_repo, VIT: vit_repo}
TEXTS = ["a photo of a cat", "a red car at night", "dog", "the bird in a tree on a sunny day, and a dog by the car"]
COSINE = 1e-5  # the acceptance's tolerance: 1 - cosine to the library's own vector


@pytest.fixture(scope="module")
def repos(module_hub, tmp_path_factory):
    """Every repository, published once: name -> {file: bytes}."""
    root = tmp_path_factory.mktemp("repos")
    made = {name: make(root / name.split("/")[1]) for name, make in MAKERS.items()}
    for name, files in made.items():
        module_hub.add_repo(name, files, card_data={"license": "mit"})
    return made


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos") / "photos")


@pytest.fixture
def hf(repos, shared_home):
    """The repositories on the Hub, zoo's home shared by the module."""
    return repos


def invoke(*args: str):
    """The real CLI in this process (the subprocess runs, run_zoo, are one per flow: each starts torch)."""
    return CliRunner().invoke(cli, list(args))


def _one_line_error(result, message: str) -> None:
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def _library(name: str):
    """transformers' own model and tokenizer for a pulled repository."""
    import transformers

    root = zoo.pull(f"hf:{name}", quiet=True).root
    cls = transformers.CLIPModel if name == CLIP else transformers.SiglipModel
    return cls.from_pretrained(root).eval(), transformers.AutoTokenizer.from_pretrained(root), root


def _cosine_gap(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    return float(1 - cos.min())


def _sized_alike(size, shorter: int) -> bool:
    """Whether truncating and rounding the longer side give the same size when the shorter becomes ``shorter``."""
    longer = max(size) * shorter / min(size)
    return int(longer) == round(longer)


def _text_features(model, tokenizer, texts, name):
    import torch

    # as transformers' docs tokenize each: SigLIP padded to max_length (its tokenizer's model_max_length),
    # a text longer than the model's positions truncated
    batch = tokenizer(texts, padding="max_length" if name == SIGLIP else True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return model.get_text_features(input_ids=batch["input_ids"], **(
            {"attention_mask": batch["attention_mask"]} if name == CLIP else {})).pooler_output.numpy()


# --------------------------------------------------------------------------- cards


@pytest.mark.parametrize("name", [CLIP, SIGLIP])
def test_the_card_of_an_image_text_repository_has_both_towers(hf, name):
    card = zoo.get_card(f"hf:{name}")
    model, _, _ = _library(name)
    clip = name == CLIP
    assert (card.modality, card.task, card.family) == ("image", "zero-shot-image-classification", name.split("-")[1])
    assert "image-text" in card.tags and card.license == "MIT"
    assert card.params == sum(p.numel() for p in model.parameters())  # both towers and the logit scale
    assert card.embedding.node == "image_embeds" and card.embedding.dim == card.joint.dim == (24 if clip else 32)
    assert card.stages == ("vision_model.embeddings", "vision_model.encoder.layers.0", "vision_model.encoder.layers.1")
    assert card.text.stages == tuple(s.replace("vision", "text") for s in card.stages)
    assert (card.text.pooling, card.text.projection, card.text.padding, card.joint.scoring) == (
        ("eos", "text_projection", "longest", "softmax") if clip else ("last", "text_model.head", "max_length", "sigmoid"))
    assert card.text.max_length == (32 if clip else 16) and card.text.tokenizer == ("bpe" if clip else "sentencepiece")
    assert card.joint.logit_scale is None and card.joint.logit_bias is None  # the weights hold them
    assert card.input.size == (32, 32) and card.input.interpolation == "bicubic"
    assert card.input.crop_mode == (None if clip else "squash")  # CLIP: shorter side + crop; SigLIP: both sides
    allow = card.source.get("allow")
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"} <= set(allow)
    shown = run_zoo("show", f"hf:{name}")
    assert shown.returncode == 0 and "text tower" in shown.stdout and "joint" in shown.stdout, shown.stderr


# --------------------------------------------------------------------------- against transformers


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
@pytest.mark.parametrize("name", [CLIP, SIGLIP])
def test_both_towers_give_the_libraries_own_vectors(hf, photos, name, engine):
    import torch

    card = zoo.get_card(f"hf:{name}")
    model, tokenizer, root = _library(name)
    images = sorted(photos.glob("*.png"))
    vision = zoo.load(card, engine=engine)
    text = zoo.load(tower_card(card, "text"), engine=engine)
    assert vision.engine == text.engine == engine
    # the image tower holds its own parts only: the text tower is neither trained nor moved with it
    assert sum(p.numel() for p in vision.parameters()) + sum(p.numel() for p in text.parameters()) == \
        card.params - (1 if name == CLIP else 2)  # the logit scale (and SigLIP's bias) belong to neither
    with torch.no_grad():
        theirs = model.get_image_features(pixel_values=vision.preprocess(images)).pooler_output.numpy()
    assert _cosine_gap(vision.embed(images).numpy(), theirs) < COSINE
    assert _cosine_gap(text.embed(TEXTS).numpy(), _text_features(model, tokenizer, TEXTS, name)) < COSINE
    # the pictures themselves: zoo's pixels are torchvision's Resize + CenterCrop (OpenAI's and
    # open_clip's preprocessing), and transformers' image processor's (PIL) wherever it sizes the
    # longer side alike (it rounds where torchvision truncates: 59x43 -> 44x32, not 43x32)
    from PIL import Image
    from torchvision import transforms
    from transformers import AutoImageProcessor

    spec = card.input
    resize = (spec.size if spec.crop_mode == "squash" else spec.resize)
    reference = transforms.Compose([transforms.Resize(resize, transforms.InterpolationMode.BICUBIC),
                                    transforms.CenterCrop(spec.size), transforms.ToTensor(),
                                    transforms.Normalize(spec.mean, spec.std)])
    ours = vision.preprocess(images).numpy()
    np.testing.assert_allclose(ours, np.stack([reference(Image.open(p).convert("RGB")).numpy() for p in images]),
                               atol=1e-5)
    alike = [i for i, p in enumerate(images) if spec.crop_mode == "squash" or _sized_alike(Image.open(p).size, 32)]
    assert len(alike) >= 3
    processor = AutoImageProcessor.from_pretrained(root, backend="pil")
    pixels = processor(images=[str(images[i]) for i in alike], return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(ours[alike], pixels, atol=1e-5)
    assert vision.body.joint_scores["logit_scale"] == pytest.approx(100.0 if name == CLIP else np.exp(2.3), rel=1e-4)


# --------------------------------------------------------------------------- zero-shot


@pytest.mark.slow
@pytest.mark.parametrize("name", [CLIP, SIGLIP])
def test_zero_shot_classifies_images_with_the_models_own_scores(hf, photos, tmp_path, name):
    import torch

    folder = tmp_path / "zs"
    labels = ["cat", "dog", "red car"]
    picture = photos / "0.png"
    made = run_zoo("fewshot", f"hf:{name}", "--labels", ",".join(labels), "--template", "a photo of a {}.",
                   "--out", str(folder), "--predict", str(picture), "--top-k", "3", "--json")
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)["predictions"][0]["predictions"]
    # transformers' forward on the same prompts and picture: CLIP's softmax, SigLIP's sigmoid
    model, tokenizer, _ = _library(name)
    prompts = [f"a photo of a {label}." for label in labels]
    batch = tokenizer(prompts, padding="max_length" if name == SIGLIP else True, return_tensors="pt")
    pixels = zoo.load(f"hf:{name}").preprocess([picture])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], pixel_values=pixels,
                       **({"attention_mask": batch["attention_mask"]} if name == CLIP else {})).logits_per_image[0]
    expected = (logits.softmax(-1) if name == CLIP else logits.sigmoid()).numpy()
    got = {p["label"]: p["probability"] for p in answer}
    np.testing.assert_allclose([got[label] for label in labels], expected, atol=1e-5)
    meta = json.loads((folder / "fewshot.json").read_text())
    assert meta["modality"] == "image" and meta.get("scoring", "softmax") == ("softmax" if name == CLIP else "sigmoid")
    assert meta["support"]["zero_shot"]["text_tower"] and meta["support"]["zero_shot"]["templates"] == ["a photo of a {}."]
    # saved, exported, predicted by the runtime: the same answer
    assert invoke("export", str(folder), "--samples", "2").exit_code == 0
    predicted = run_zoo("predict", str(folder / "model.onnx"), str(picture), "--json")
    assert predicted.returncode == 0, predicted.stderr
    runtime = {p["label"]: p["probability"] for p in json.loads(predicted.stdout)["predictions"][0]["predictions"]}
    np.testing.assert_allclose([runtime[label] for label in labels], expected, atol=1e-4)


@pytest.mark.slow
def test_zero_shot_in_python_ensembles_image_prompts_and_serves_without_torch(hf, photos, tmp_path):
    from servekit import ServerProcess

    from zoo.prompts import IMAGE_TEMPLATES

    classifier = zoo.zero_shot(f"hf:{CLIP}", {"cat": "cat", "vehicle": "red car"}, engine="torch")
    assert classifier.support["zero_shot"]["templates"] == list(IMAGE_TEMPLATES)  # images get photo prompts
    text = zoo.load(tower_card(zoo.get_card(f"hf:{CLIP}"), "text"))
    prompts = text.embed([t.replace("{}", "red car") for t in IMAGE_TEMPLATES]).numpy()
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    mean = prompts.mean(0)
    np.testing.assert_allclose(classifier.prototypes[1], mean / np.linalg.norm(mean), atol=1e-6)
    assert classifier.scale == pytest.approx(100.0, rel=1e-4) and classifier.bias == 0.0
    folder = classifier.save(tmp_path / "zs")
    zoo.export(folder, samples=2, log=lambda _: None)
    pictures = [str(p) for p in sorted(photos.glob("*.png"))[:2]]
    expected = [p.top for p in zoo.load_fewshot(folder).predict(pictures, top_k=2)]
    server = ServerProcess([str(folder / "model.onnx")])
    try:
        with zoo.Client(server.url) as client:
            served = client.predict(pictures, top_k=2)
    finally:
        code, out, _ = server.stop()
    assert code == 0 and "HEAVY []" in out
    for answer, top in zip(served, expected):
        got = [(p["label"], p["probability"]) for p in answer["predictions"]]
        assert [label for label, _ in got] == [label for label, _ in top]
        np.testing.assert_allclose([p for _, p in got], [p for _, p in top], atol=1e-4)


@pytest.mark.slow
def test_zero_shot_bad_inputs_are_one_line_each(hf, tmp_path):
    cases = [
        ([f"hf:{VIT}", "--labels", "cat,dog"], "has no text tower"),
        ([f"hf:{CLIP}", "--labels", ""], "label 1 is empty"),
        ([f"hf:{CLIP}", "--labels", " , "], "label 1 is empty"),
        ([f"hf:{CLIP}", "--labels", "cat"], "at least two"),
        ([f"hf:{CLIP}", "--labels", "cat,dog", "--template", "a photo"], "exactly one '{}'"),
    ]
    for args, message in cases:
        _one_line_error(invoke("fewshot", *args, "--out", str(tmp_path / "x")), message)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- search


@pytest.mark.slow
def test_a_sentence_searches_pictures_through_the_text_tower(hf, photos, tmp_path):
    db = tmp_path / "v"
    made = invoke("embed", f"hf:{CLIP}", str(photos), "--db", str(db), "--json")
    assert made.exit_code == 0, made.output
    table = zoo.VectorStore(db).table()
    card = zoo.get_card(f"hf:{CLIP}")
    fetched = zoo.pull(card, quiet=True)
    from zoo.embed.embedder import embedder_identity

    identities = {m: embedder_identity(tower_card(card, m), fetched) for m in ("image", "text")}
    assert table.info.modality == "image" and table.info.towers == identities
    assert table.info.embedder == identities["image"] != identities["text"]
    query = "a red car at night"
    found = run_zoo("search", query, "--db", str(db), "-k", "3", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    # the text tower's vector against every stored picture's, ranked
    sentence = zoo.load(tower_card(card, "text")).embed([query]).numpy()[0]
    pictures = zoo.load(card).embed(sorted(photos.glob("*.png"))).numpy()
    scores = pictures @ sentence / np.linalg.norm(pictures, axis=1) / np.linalg.norm(sentence)
    best = np.argsort(-scores)[:3]
    assert [h["source"] for h in hits] == [str(sorted(photos.glob("*.png"))[i].resolve()) for i in best]
    np.testing.assert_allclose([h["score"] for h in hits], scores[best], atol=1e-5)
    # an image query still works, through the image tower
    image = invoke("search", str(photos / "2.png"), "--db", str(db), "-k", "1", "--json")
    assert image.exit_code == 0 and json.loads(image.stdout)["hits"][0]["source"] == str((photos / "2.png").resolve())
    # words that name a file need --text; a typo'd picture name, a folder, a URL are refused, not searched as words
    for query, message in (("car.png", "no such file"), (str(photos), "is a folder"),
                           ("https://example.com/car.png", "looks like a URL"), ("", "non-empty text")):
        _one_line_error(invoke("search", query, "--db", str(db)), message)
    words = invoke("search", str(photos / "2.png"), "--text", "--db", str(db), "--json")
    assert words.exit_code == 0 and json.loads(words.stdout)["hits"][0]["score"] < 0.99


@pytest.mark.slow
def test_a_text_query_on_an_image_only_table_and_a_changed_tower_are_refused(hf, photos, tmp_path):
    db = tmp_path / "v"
    zoo.embed_dataset(f"hf:{VIT}", photos, db=db)
    refused = run_zoo("search", "a red car at night", "--db", str(db))  # refused before any model loads
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1
    assert "holds image embeddings" in refused.stderr and "a file" in refused.stderr
    _one_line_error(invoke("search", "cat", "--text", "--db", str(db)), "no text tower")
    # a table that recorded another text tower than the model has now: its sentences are refused
    zoo.embed_dataset(f"hf:{CLIP}", photos, db=tmp_path / "c")
    table = zoo.VectorStore(tmp_path / "c").table()
    import dataclasses

    changed = dataclasses.replace(table.info, towers={**table.info.towers, "text": "0" * 32})
    from zoo.embed.query import Searcher

    searcher = Searcher(tmp_path / "c", engine="torch")
    searcher.table.info = changed
    with pytest.raises(zoo.ZooError, match="text tower now differs"):
        searcher("a red car")
    assert searcher(str(photos / "1.png"), k=1).hits[0].score == pytest.approx(1.0, abs=1e-5)


# --------------------------------------------------------------------------- export and the runtime


#: `zoo` as on a machine without torch or transformers installed (importing fails, find_spec finds
#: nothing: lancedb probes for torch), then which of them got imported.
WITHOUT_TORCH = """
import sys
HEAVY = ("torch", "torchvision", "transformers", "timm", "sentence_transformers")
for name in HEAVY:
    sys.modules[name] = None
from zoo.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code or 0
print("HEAVY", sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in HEAVY), flush=True)
sys.exit(code)
"""


@pytest.mark.slow
def test_export_writes_both_towers_and_a_torch_free_search_answers_sentences(hf, photos, tmp_path):
    out = tmp_path / "export" / "clip.onnx"
    exported = invoke("export", f"hf:{CLIP}", "-o", str(out), "--samples", "4")
    assert exported.exit_code == 0, exported.output
    text_file = out.with_name("clip.text.onnx")
    assert out.is_file() and text_file.is_file() and out.with_name("clip.text.tokenizer.json").is_file()
    assert "its text tower: clip.text.onnx" in exported.stdout
    from zoo.onnxgraph.onnxfile import read_info

    image_info, text_info = read_info(out), read_info(text_file)
    assert (image_info.modality, text_info.modality) == ("image", "text")
    assert text_info.source["tower"] == "text" and text_info.validation["max_abs_diff"] < 1e-4
    assert list(text_info.inputs) == ["input_ids", "attention_mask"]
    # the runtime tokenises and runs the text tower: transformers' vectors
    model, tokenizer, _ = _library(CLIP)
    runtime = zoo.open_model(text_file).embed(TEXTS)
    assert _cosine_gap(runtime, _text_features(model, tokenizer, TEXTS, CLIP)) < COSINE
    db = tmp_path / "v"
    zoo.embed_dataset(f"hf:{CLIP}", photos, db=db)
    query = "a red car at night"
    with_torch = zoo.search(db, query, k=3)
    blocked = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "search", query, "--db", str(db), "-k", "3",
                              "--onnx", str(text_file), "--json"], capture_output=True, text=True, timeout=120)
    assert blocked.returncode == 0, blocked.stderr
    answer, heavy = blocked.stdout.rsplit("HEAVY", 1)
    assert heavy.strip() == "[]"  # neither torch nor transformers was imported
    hits = json.loads(answer)["hits"]
    assert [h["id"] for h in hits] == [h.id for h in with_torch.hits]
    np.testing.assert_allclose([h["score"] for h in hits], [h.score for h in with_torch.hits], atol=1e-5)
    # a query through the wrong tower is refused: an image tower for a sentence, another model's text tower
    _one_line_error(invoke("search", query, "--db", str(db), "--onnx", str(out)),
                    "no exported tower embeds text queries")
    zoo.export(f"hf:{SIGLIP}", tmp_path / "siglip" / "siglip.onnx", samples=2, log=lambda _: None)
    _one_line_error(invoke("search", query, "--db", str(db), "--onnx", str(tmp_path / "siglip" / "siglip.text.onnx")),
                    f"not a tower of '{CLIP}'")


@pytest.mark.slow
def test_siglip_text_tower_runs_padded_to_max_length_in_the_runtime(hf, tmp_path):
    exported = zoo.export(f"hf:{SIGLIP}", tmp_path / "siglip.onnx", samples=2, log=lambda _: None)
    text_file = tmp_path / "siglip.text.onnx"
    assert text_file in exported.files
    runtime = zoo.open_model(text_file)
    assert runtime.info.preprocessing["padding"] == "max_length"
    assert runtime.encode(["dog"])["input_ids"].shape == (1, 16)
    model, tokenizer, _ = _library(SIGLIP)
    assert _cosine_gap(runtime.embed(TEXTS), _text_features(model, tokenizer, TEXTS, SIGLIP)) < COSINE
