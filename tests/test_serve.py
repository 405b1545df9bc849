"""zoo serve over real HTTP on 127.0.0.1: one `zoo serve` subprocess, in which torch cannot be
imported, serving every kind of model `zoo predict` runs (an image classifier, a text
classifier, a multi-label one, an embedding model, clips through the log-mel front end).

Each answer equals `zoo predict --json`'s for that input, through TF Serving's JSON, a multipart
upload, the file as the body, and KServe v2 (JSON and binary tensors, raw or preprocessed inputs,
the classification extension; the official Triton client too); every kind of bad request gets
its 4xx and a JSON error and the server stays up; the listing, health and metrics say what they
should; `zoo serve`'s own mistakes are one line.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import subprocess
import sys
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import run_zoo
from servekit import TOPIC_TEXTS, ServerProcess, digit_png, model_path, wav_bytes

import zoo
from zoo.client import ClientError
from zoo.runtime import open_model, predict

KINDS = ("digits", "topics", "tags", "minilm", "sounds")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return {name: model_path(tmp_path_factory, name) for name in KINDS}


@pytest.fixture(scope="module")
def server(models):
    process = ServerProcess([f"{name}={path}" for name, path in models.items()] + ["--max-body-mb", "4"])
    yield process
    process.kill()


@pytest.fixture(scope="module")
def client(server):
    with zoo.Client(server.url) as c:
        yield c


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, list]:
    """Two inputs per model, as files (images, clips) or texts."""
    folder = tmp_path_factory.mktemp("inputs")
    for name, data in (("zero.png", digit_png(0)), ("seven.png", digit_png(7)),
                       ("high.wav", wav_bytes("high")), ("low.wav", wav_bytes("low"))):
        (folder / name).write_bytes(data)
    texts = TOPIC_TEXTS[:2]
    return {"digits": [folder / "zero.png", folder / "seven.png"], "sounds": [folder / "high.wav", folder / "low.wav"],
            "topics": texts, "tags": texts, "minilm": texts}


def _same(served: dict, printed: dict) -> None:
    """One served prediction equals `zoo predict --json`'s (names aside: the server has no paths)."""
    if "embedding" in printed:
        assert np.allclose(served["embedding"], printed["embedding"], atol=1e-5)
        return
    assert [p["label"] for p in served["predictions"]] == [p["label"] for p in printed["predictions"]]
    assert np.allclose([p["probability"] for p in served["predictions"]],
                       [p["probability"] for p in printed["predictions"]], atol=1e-5)
    assert served.get("labels") == printed.get("labels")


# --------------------------------------------------------------------------- answers


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_answers_what_zoo_predict_prints(kind, client, models, inputs):
    printed = predict(models[kind], [str(i) for i in inputs[kind]]).to_dict()
    served = client.predict(inputs[kind], model=kind)
    rows = printed["embeddings"] if kind == "minilm" else printed["predictions"]
    assert len(served) == len(rows) == 2
    for answer, row in zip(served, rows):
        _same(answer, row)
        assert answer["input"] == Path(row["input"]).name or answer["input"] == row["input"]
    if kind == "tags":  # multi-label: the labels over their thresholds, as zoo predict lists them
        assert all("labels" in answer for answer in served)


def test_uploads_the_body_itself_and_json_agree(server, client, inputs):
    images = inputs["digits"]
    by_json = client.predict(images, model="digits", top_k=2)
    files = [("file", (p.name, p.read_bytes(), "image/png")) for p in images]
    form = httpx.post(f"{server.url}/v1/models/digits:predict?top_k=2", files=files)
    assert form.status_code == 200, form.text
    raw = httpx.post(f"{server.url}/v1/models/digits:predict?name=zero.png&top_k=2", content=images[0].read_bytes(),
                     headers={"content-type": "image/png"})
    assert raw.status_code == 200, raw.text
    assert form.json()["predictions"] == by_json and raw.json()["predictions"] == by_json[:1]
    assert len(by_json[0]["predictions"]) == 2 and by_json[0]["input"] == "zero.png"
    text = httpx.post(f"{server.url}/v1/models/topics:predict", content=TOPIC_TEXTS[0].encode(),
                      headers={"content-type": "text/plain; charset=utf-8"})
    field = httpx.post(f"{server.url}/v1/models/topics:predict", files={"text": (None, TOPIC_TEXTS[0]),
                                                                         "top_k": (None, "1")})
    encoded = httpx.post(f"{server.url}/v1/models/topics:predict", data={"text": TOPIC_TEXTS[0], "top_k": "1"})
    assert text.status_code == field.status_code == encoded.status_code == 200, (text.text, field.text, encoded.text)
    assert text.json()["predictions"][0]["predictions"][0] == field.json()["predictions"][0]["predictions"][0]
    assert field.json() == encoded.json() and len(field.json()["predictions"][0]["predictions"]) == 1
    columnar = httpx.post(f"{server.url}/v1/models/topics:predict", json={"inputs": {"text": TOPIC_TEXTS[:1]}})
    assert columnar.json()["outputs"] == text.json()["predictions"]


def test_kserve_v2_raw_tensors_binary_and_classification(server, client, models, inputs):
    image = inputs["digits"][0]
    expected = client.predict([image], model="digits", top_k=10)[0]["predictions"]
    probabilities = {p["label"]: p["probability"] for p in expected}
    labels = open_model(models["digits"]).info.labels
    # raw: a BYTES tensor named after the modality, base64 in JSON; Triton's classification extension
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(image.read_bytes()).decode()]}],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}], "id": "r1"}
    answer = httpx.post(f"{server.url}/v2/models/digits/infer", json=body).json()
    assert answer["id"] == "r1" and answer["model_name"] == "digits" and answer["outputs"][0]["shape"] == [1, 2]
    score, index, label = answer["outputs"][0]["data"][0].split(":")
    assert label == expected[0]["label"] == labels[int(index)] and abs(float(score) - expected[0]["probability"]) < 1e-5
    # preprocessed: the graph's own tensor (what a Triton server running the repository takes), binary both ways
    feeds = open_model(models["digits"]).encode([str(image)])
    out = client.infer(feeds, model="digits", binary=True)["probabilities"]
    assert out.shape == (1, len(labels))
    assert np.allclose(out[0], [probabilities[label] for label in labels], atol=1e-5)
    as_json = client.infer(feeds, model="digits", binary=False)["probabilities"]
    assert np.allclose(as_json, out, atol=1e-6)
    # text: raw BYTES in the binary extension, and the tokenized tensors
    texts = inputs["minilm"]
    vectors = [row["embedding"] for row in client.predict(texts, model="minilm")]
    raw = client.infer({"text": np.array(texts, dtype=object)}, model="minilm")["embedding"]
    tensors = client.infer(open_model(models["minilm"]).encode(texts), model="minilm", binary=False)["embedding"]
    assert np.allclose(raw, vectors, atol=1e-5) and np.allclose(tensors, vectors, atol=1e-5)
    ranked = client.infer({"text": np.array(texts[:1], dtype=object)}, model="topics", classification=3)
    assert [s.split(":")[2] for s in ranked["probabilities"][0]] == \
        [p["label"] for p in client.predict(texts[:1], model="topics", top_k=3)[0]["predictions"]]


def test_the_official_triton_client_works(server, inputs):
    """tritonclient.http (Triton's own client), in a subprocess: binary BYTES in, classification out."""
    pytest.importorskip("tritonclient.http")
    script = f"""
import numpy as np, tritonclient.http as http
client = http.InferenceServerClient({server.url.removeprefix("http://")!r})
assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("digits")
meta = client.get_model_metadata("digits")
assert [i["name"] for i in meta["inputs"]] == ["pixel_values", "image"], meta
data = np.array([open({str(inputs['digits'][1])!r}, "rb").read()], dtype=np.object_)
tensor = http.InferInput("image", [1], "BYTES")
tensor.set_data_from_numpy(data, binary_data=True)
result = client.infer("digits", [tensor], outputs=[http.InferRequestedOutput("probabilities", class_count=2)])
print(result.as_numpy("probabilities")[0][0].decode())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    score, index, label = done.stdout.strip().splitlines()[-1].split(":")
    assert 0 < float(score) <= 1 and label


# --------------------------------------------------------------------------- describing


def test_listing_health_metadata_and_metrics(server, models):
    listed = {m["name"]: m for m in httpx.get(f"{server.url}/v2/models").json()["models"]}
    assert set(listed) == set(KINDS)
    for name, path in models.items():
        assert listed[name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert listed[name]["version"] == "1" and listed[name]["state"] == "READY"
    assert (listed["digits"]["kind"], listed["digits"]["modality"]) == ("classifier", "image")
    assert (listed["minilm"]["kind"], listed["sounds"]["modality"]) == ("embedding", "audio")
    assert listed["tags"]["multi_label"] and not listed["topics"]["multi_label"]
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2").json()["name"] == "zoo"
    meta = httpx.get(f"{server.url}/v2/models/digits").json()
    assert meta["inputs"][0] == {"name": "pixel_values", "datatype": "FP32", "shape": [-1, 3, 224, 224]}
    assert meta["inputs"][1] == {"name": "image", "datatype": "BYTES", "shape": [-1]}
    assert meta["outputs"][0]["name"] == "probabilities" and meta["parameters"]["sha256"] == listed["digits"]["sha256"]
    status = httpx.get(f"{server.url}/v1/models/digits").json()["model_version_status"][0]
    assert status["state"] == "AVAILABLE"
    assert httpx.get(f"{server.url}/v2/models/digits/ready").status_code == 200
    assert httpx.get(f"{server.url}/").headers["content-type"].startswith("text/html")
    httpx.post(f"{server.url}/v1/models/topics:predict", json={"instances": ["a text"]})
    metrics = httpx.get(f"{server.url}/metrics").text
    for line in ('zoo_serve_requests_total{model="topics",protocol="tfserving",status="200"}',
                 'zoo_serve_batch_size_bucket{le="1.0",model="topics"}', 'zoo_serve_queue_depth{model="topics"',
                 "zoo_serve_request_seconds_bucket", "zoo_serve_in_flight", 'zoo_serve_model_ready{model="digits"'):
        assert line in metrics, line


# --------------------------------------------------------------------------- bad requests


def _png_claiming(width: int, height: int) -> bytes:
    """A real PNG whose header claims width x height (a decompression bomb's header)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def _bomb() -> bytes:
    """A real decompression bomb: 9000 x 9000 pixels (81 M, over the 50 M limit) in about 10 KB."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = {"content-type": "image/png"}
BAD = [
    ("not an image", "digits", {"content": b"plain words, not pixels", "headers": PNG}, 400, "not an image"),
    ("truncated image", "digits", {"content": digit_png(0)[:60], "headers": PNG}, 400, "not a readable image"),
    ("wrong content type", "digits", {"content": b"<a/>", "headers": {"content-type": "application/xml"}}, 415,
     "content type 'application/xml'"),
    ("no content type", "digits", {"content": b"abc", "headers": {"content-type": ""}}, 415, "content type"),
    ("text for an image model", "digits", {"json": {"instances": ["a sentence"]}}, 400, "is a text"),
    ("image for a text model", "topics", {"content": digit_png(0), "headers": PNG}, 400, "not UTF-8 text"),
    ("text for a clip model", "sounds", {"json": {"instances": ["a sentence"]}}, 400, "is a text"),
    ("not a clip", "sounds", {"content": digit_png(0), "headers": {"content-type": "audio/wav"}}, 400,
     "not a readable audio file"),
    ("empty body", "digits", {"content": b"", "headers": PNG}, 400, "empty request body"),
    ("empty instances", "digits", {"json": {"instances": []}}, 400, "no inputs"),
    ("empty text", "topics", {"json": {"instances": ["  "]}}, 400, "empty text"),
    ("decompression bomb", "digits", {"content": _bomb(), "headers": PNG}, 413, "decompression bomb"),
    ("bomb header past PIL's own limit", "digits", {"content": _png_claiming(30000, 30000), "headers": PNG}, 413,
     "decompression bomb"),
    ("bad JSON", "digits", {"content": b"{nope", "headers": {"content-type": "application/json"}}, 400,
     "not valid JSON"),
    ("JSON without instances", "digits", {"json": {"images": []}}, 400, '"instances"'),
    ("bad base64", "digits", {"json": {"instances": [{"b64": "%%%"}]}}, 400, "not valid base64"),
    ("a number instance", "digits", {"json": {"instances": [3]}}, 400, "instances[0] is a number"),
    ("bad top_k", "topics", {"json": {"instances": ["a"], "top_k": 0}}, 400, "top_k"),
    ("unknown model", "nope", {"json": {"instances": ["a"]}}, 404, "no model named 'nope'"),
    ("too large (Content-Length)", "digits", {"content": b"x" * (4 * 1024 * 1024 + 10), "headers": PNG}, 413,
     "over this server's limit"),
    ("too large (chunked)", "digits", {"content": iter([b"x" * 2_500_000, b"x" * 2_500_000]), "headers": PNG}, 413,
     "over this server's limit"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_requests_get_their_4xx_and_a_json_error(server, case):
    _, model, request, status, said = case
    response = httpx.post(f"{server.url}/v1/models/{model}:predict", **request)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert said in error and "\n" not in error and "Traceback" not in error


BAD_V2 = [
    ({"inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": [1, 3, 8, 8], "data": [0.0] * 192}]}, 400,
     "the graph takes [-1, 3, 224, 224]"),
    ({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1], "data": [0.0]}]}, 400, "takes the tensors"),
    ({"inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": [1, 3, 224, 224], "data": [0.0]}]}, 400,
     "1 values for shape"),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["a sentence"]}]}, 400, "base64"),
    ({"inputs": [{"name": "image", "datatype": "FLOAT", "shape": [1], "data": [1]}]}, 400, "not a v2 datatype"),
    ({"inputs": []}, 400, '"inputs"'),
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}],
      "outputs": [{"name": "logits"}]}, 400, "one output, 'probabilities'"),
]


@pytest.mark.parametrize("body, status, said", BAD_V2, ids=[str(i) for i in range(len(BAD_V2))])
def test_bad_v2_requests(server, body, status, said):
    response = httpx.post(f"{server.url}/v2/models/digits/infer", json=body)
    assert response.status_code == status, response.text
    assert said in response.json()["error"]


def test_the_server_stays_up_and_counts_the_errors(server, client):
    """After every bad request above (and a route that does not exist), it still answers."""
    missing = httpx.get(f"{server.url}/v3/nothing")
    assert missing.status_code == 404 and "no such route" in missing.json()["error"]
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert client.predict([digit_png(1)], model="digits")[0]["predictions"]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'zoo_serve_errors_total{model="digits",reason="bad_input"}' in metrics


def test_the_async_client_answers_as_the_client(server, client, inputs):
    import asyncio

    from zoo.client import AsyncClient

    async def ask() -> tuple[list, dict]:
        async with AsyncClient(server.url, model="digits") as async_client:
            answers = await asyncio.gather(*(async_client.predict([p]) for p in inputs["digits"]))
            tensors = await async_client.infer({"image": np.array([inputs["digits"][0].read_bytes()], dtype=object)},
                                               classification=1)
            return [a[0] for a in answers], tensors

    answers, tensors = asyncio.run(ask())
    assert answers == client.predict(inputs["digits"], model="digits")
    assert tensors["probabilities"][0][0].split(":")[2] == answers[0]["predictions"][0]["label"]


def test_client_errors_are_one_line(server):
    with pytest.raises(ClientError, match="no model named 'nope'") as caught:
        zoo.Client(server.url).predict(["a"], model="nope")
    assert caught.value.status == 404
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(ClientError, match="cannot reach zoo serve") as caught:
        zoo.Client(f"http://127.0.0.1:{port}").models()
    assert caught.value.status == 0
    with pytest.raises(ClientError, match="serves 5 models"):
        zoo.Client(server.url).predict(["a"])


# --------------------------------------------------------------------------- the command


@pytest.mark.slow
def test_command_line_mistakes_are_one_line(models, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.onnx").write_text("not a model")
    cases = [([str(tmp_path / "missing.onnx")], "no such model file"),
             ([str(tmp_path / "empty")], "export it first"),
             ([str(tmp_path / "notes.onnx")], "not an ONNX model file"),
             ([f"a={models['digits']}", f"a={models['topics']}"], "two models answer to 'a'"),
             ([f"bad name={models['digits']}"], "may hold only letters"),
             ([str(models["digits"]), "--max-batch", "0"], "--max-batch must be at least 1")]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cases.append(([str(models["digits"]), "--port", str(busy.getsockname()[1])], "choose another --port"))
        for args, said in cases:
            done = run_zoo("serve", *args, timeout=120)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and said in lines[0] and "Traceback" not in done.stderr, (args, done.stderr)


def test_serving_never_imports_torch(models, inputs):
    """In a fresh interpreter, with torch importable: build the app over every kind of model and
    answer one request of each (Starlette's in-process client, no socket); torch never loads."""
    requests = {kind: ([str(p) for p in inputs[kind]] if kind in ("digits", "sounds") else inputs[kind])
                for kind in KINDS}
    script = f"""
import base64, json, sys
from starlette.testclient import TestClient
from zoo.serve import ServeSettings, prepare
running = prepare({[f"{k}={p}" for k, p in models.items()]!r}, ServeSettings(port=0))
with TestClient(running.app) as client:
    for kind, items in {requests!r}.items():
        instances = [{{"b64": base64.b64encode(open(i, "rb").read()).decode()}} if kind in ("digits", "sounds") else i
                     for i in items]
        answer = client.post(f"/v1/models/{{kind}}:predict", json={{"instances": instances}})
        assert answer.status_code == 200, answer.text
running.sock.close()
print("HEAVY", sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "transformers", "timm")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def test_paths_names_and_versions(models, tmp_path):
    from zoo.serve import parse_spec

    folder = models["digits"].parent
    assert parse_spec(str(folder)) == parse_spec(str(models["digits"]))
    assert parse_spec(str(folder)).name == folder.name and parse_spec(str(folder)).version == "1"
    spec = parse_spec(f"d/7={folder}")
    assert (spec.name, spec.version, spec.path) == ("d", "7", models["digits"])
    odd = tmp_path / "my model (v2).onnx"
    odd.write_bytes(models["digits"].read_bytes())
    assert parse_spec(str(odd)).name == "my-model-v2"
