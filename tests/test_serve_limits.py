"""zoo serve's limits and faults, over real HTTP on 127.0.0.1: SIGTERM drains the requests in
flight (a real `zoo serve` process, torch unimportable, exit 0); beyond --max-concurrent a 503
with Retry-After at once; past --timeout a 504 and the work dropped; a model file whose sha256
changes is refused (replaced: at the next batch; rewritten in place with its size and mtime put
back: by the periodic check) until it is reloaded; versions of one name.

The requests are made to wait deterministically with a long --max-delay-ms (a batch waits for its
first request's delay), not with a slow model.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from servekit import ServerProcess, digit_png, model_path, thread_server

PNG = {"content-type": "image/png"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return model_path(tmp_path_factory, "digits")


def _post_in_threads(url: str, count: int) -> tuple[list[threading.Thread], list[httpx.Response]]:
    answers: list[httpx.Response] = []

    def send() -> None:
        answers.append(httpx.post(url, content=digit_png(7), headers=PNG, timeout=60))

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, answers


def _gauge(url: str, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", httpx.get(f"{url}/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def _wait_for(condition, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_drains_requests_in_flight(digits):
    server = ServerProcess([f"digits={digits}", "--max-delay-ms", "1500", "--max-batch", "64"])
    try:
        threads, answers = _post_in_threads(f"{server.url}/v1/models/digits:predict", 3)
        _wait_for(lambda: _gauge(server.url, "zoo_serve_queue_depth") == 3)
        code, stdout, stderr = server.stop(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
    finally:
        server.kill()
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert code == 0, stderr
    assert "stopped (requests in flight were answered)" in stdout
    assert "HEAVY []" in stdout  # torch could not be imported, and nothing else heavy was
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v2/health/live")


@pytest.mark.slow
def test_beyond_max_concurrent_503_and_past_timeout_504(digits):
    with thread_server([digits], max_concurrent=2, max_delay_ms=3000, max_batch=64, timeout_s=1.0) as running:
        url = f"{running.url}/v1/models/digits:predict"
        started = time.time()
        threads, answers = _post_in_threads(url, 2)
        _wait_for(lambda: _gauge(running.url, "zoo_serve_in_flight") == 2)
        refused = httpx.post(url, content=digit_png(1), headers=PNG)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "--max-concurrent" in refused.json()["error"]
        assert time.time() - started < 1.0  # refused at once, not queued
        for thread in threads:
            thread.join(30)
        assert [a.status_code for a in answers] == [504, 504]
        assert all("--timeout" in a.json()["error"] for a in answers)
        assert time.time() - started < 2.5  # answered at the timeout, not after the batch's 3 s
        assert httpx.get(f"{running.url}/v2/health/ready").status_code == 200
        metrics = httpx.get(f"{running.url}/metrics").text
        assert 'zoo_serve_errors_total{model="digits",reason="concurrency"} 1.0' in metrics
        assert 'zoo_serve_errors_total{model="digits",reason="timeout"} 2.0' in metrics
        _wait_for(lambda: _gauge(running.url, "zoo_serve_queue_depth") == 0, timeout=10)


def _flip_in_place(path: Path) -> None:
    """One byte of ``path`` changed where it stands, its size and mtime put back (what a stat misses)."""
    before = path.stat()
    with path.open("r+b") as handle:
        handle.seek(before.st_size - 100)
        byte = handle.read(1)
        handle.seek(before.st_size - 100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns


def test_a_changed_model_file_is_never_served_silently(digits, tmp_path):
    import dataclasses

    from zoo.onnxgraph.onnxfile import read_info, write_metadata

    replaced, edited = tmp_path / "replaced.onnx", tmp_path / "edited.onnx"
    for copy in (replaced, edited):
        shutil.copy(digits, copy)
    with thread_server([replaced, edited], verify_every_s=0.3) as running:
        url = running.url

        def predict(name: str) -> httpx.Response:
            return httpx.post(f"{url}/v1/models/{name}:predict", content=digit_png(0), headers=PNG)

        first = predict("replaced")
        assert first.status_code == 200
        loaded = first.headers["x-zoo-model-sha256"]
        os.utime(replaced)  # touched: the same bytes, still served
        time.sleep(0.4)
        assert predict("replaced").status_code == 200
        # a new file renamed over it (as zoo export writes): caught at the next batch
        new = tmp_path / "new.onnx"
        shutil.copy(digits, new)
        info = read_info(new)
        write_metadata(new, dataclasses.replace(info, source={**info.source, "note": "retrained"}))
        os.replace(new, replaced)
        refused = predict("replaced")
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert "changed on disk" in error and loaded[:12] in error and "/v2/repository/models/replaced/load" in error
        assert httpx.get(f"{url}/v2/health/ready").status_code == 503
        states = {m["name"]: m["state"] for m in httpx.get(f"{url}/v2/models").json()["models"]}
        assert states == {"replaced": "UNAVAILABLE", "edited": "READY"}
        assert 'zoo_serve_model_ready{model="replaced",version="1"} 0.0' in httpx.get(f"{url}/metrics").text
        # reloading serves the new file, under its own sha256
        reloaded = httpx.post(f"{url}/v2/repository/models/replaced/load")
        assert reloaded.status_code == 200, reloaded.text
        fresh = reloaded.json()["loaded"][0]["sha256"]
        assert fresh != loaded
        again = predict("replaced")
        assert again.status_code == 200 and again.headers["x-zoo-model-sha256"] == fresh
        # bytes rewritten in place, size and mtime put back: the periodic full hash catches it
        assert predict("edited").status_code == 200
        _flip_in_place(edited)
        _wait_for(lambda: predict("edited").status_code == 503, timeout=10)
        assert "changed on disk" in predict("edited").json()["error"]


def test_versions_of_one_name(digits):
    with thread_server([f"d/1={digits}", f"d/2={digits}"]) as running:
        listed = [(m["name"], m["version"]) for m in httpx.get(f"{running.url}/v2/models").json()["models"]]
        assert sorted(listed) == [("d", "1"), ("d", "2")]
        latest = httpx.post(f"{running.url}/v1/models/d:predict", content=digit_png(0), headers=PNG)
        first = httpx.post(f"{running.url}/v1/models/d/versions/1:predict", content=digit_png(0), headers=PNG)
        assert latest.headers["x-zoo-model-version"] == "2" and first.headers["x-zoo-model-version"] == "1"
        assert latest.json()["predictions"] == first.json()["predictions"]
        missing = httpx.post(f"{running.url}/v2/models/d/versions/3/infer", json={"inputs": []})
        assert missing.status_code == 404 and "served versions: 1, 2" in missing.json()["error"]
        assert httpx.get(f"{running.url}/v2/models/d").json()["versions"] == ["1", "2"]
