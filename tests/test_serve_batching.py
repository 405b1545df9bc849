"""Dynamic batching in zoo serve, over real HTTP on 127.0.0.1 and on real exported models:
concurrent requests share one onnxruntime call, --max-batch is respected (a larger request runs
alone), a bad input fails alone, texts run longest first in groups cut to their own length and
answer what one padded call does, batches run off the event loop, and the thread budget never
exceeds the cores.
"""

from __future__ import annotations

import re
import threading
import time

import httpx
import numpy as np
import pytest
from servekit import TOPIC_TEXTS, digit_png, model_path, thread_server

from zoo.serve.execution import TOKENS_PER_CALL, Work, run_batch
from zoo.serve.inputs import Item
from zoo.serve.models import open_served, parse_spec
from zoo.serve.settings import ServeSettings
from zoo.threads import available_cores

PNG = {"content-type": "image/png"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return model_path(tmp_path_factory, "digits")


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    return model_path(tmp_path_factory, "topics")


def _concurrently(requests) -> list[httpx.Response]:
    """Send each ``(url, kwargs)`` from its own thread at once; the answers in order."""
    answers: list[httpx.Response | None] = [None] * len(requests)

    def send(i: int) -> None:
        url, kwargs = requests[i]
        answers[i] = httpx.post(url, timeout=60, **kwargs)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers  # type: ignore[return-value]


def _batches(url: str) -> tuple[float, float, dict[float, float]]:
    """(batches, items, cumulative bucket counts) of the batch-size histogram."""
    text = httpx.get(f"{url}/metrics").text
    count = float(re.search(r"zoo_serve_batch_size_count\{[^}]*\} (\S+)", text).group(1))
    total = float(re.search(r"zoo_serve_batch_size_sum\{[^}]*\} (\S+)", text).group(1))
    buckets = {float(le): float(v) for le, v in re.findall(r'zoo_serve_batch_size_bucket\{le="([\d.]+)"[^}]*\} (\S+)',
                                                           text)}
    return count, total, buckets


@pytest.mark.slow
def test_concurrent_requests_share_one_batch(digits):
    with thread_server([digits], max_batch=8, max_delay_ms=1500) as running:
        url = f"{running.url}/v1/models/digits:predict"
        answers = _concurrently([(url, {"content": digit_png(i), "headers": PNG}) for i in range(8)])
        assert [a.status_code for a in answers] == [200] * 8
        count, total, _ = _batches(running.url)
        assert (count, total) == (1, 8)
        alone = httpx.post(url, content=digit_png(0), headers=PNG).json()["predictions"][0]["predictions"]
        together = answers[0].json()["predictions"][0]["predictions"]
        assert [p["label"] for p in alone] == [p["label"] for p in together]
        assert np.allclose([p["probability"] for p in alone], [p["probability"] for p in together], atol=1e-5)


@pytest.mark.slow
def test_max_batch_is_respected_and_a_larger_request_runs_alone(digits):
    import base64

    with thread_server([digits], max_batch=4, max_delay_ms=400) as running:
        url = f"{running.url}/v1/models/digits:predict"
        six = {"json": {"instances": [{"b64": base64.b64encode(digit_png(i)).decode()} for i in range(6)]}}
        answers = _concurrently([(url, {"content": digit_png(i), "headers": PNG}) for i in range(6)] + [(url, six)])
        assert [a.status_code for a in answers] == [200] * 7
        assert len(answers[-1].json()["predictions"]) == 6
        count, total, buckets = _batches(running.url)
        assert total == 12
        assert buckets[4.0] == count - 1 and buckets[8.0] == count  # every batch <= 4 but the 6-item request


@pytest.mark.slow
def test_a_bad_input_fails_alone_in_its_batch(digits):
    with thread_server([digits], max_batch=8, max_delay_ms=1500) as running:
        url = f"{running.url}/v1/models/digits:predict"
        bad = (url, {"content": digit_png(0)[:50], "headers": PNG})
        answers = _concurrently([(url, {"content": digit_png(i), "headers": PNG}) for i in range(3)] + [bad])
        assert [a.status_code for a in answers] == [200, 200, 200, 400]
        assert "not a readable image" in answers[-1].json()["error"]
        assert _batches(running.url)[:2] == (1, 4)


def test_texts_run_longest_first_cut_to_their_own_length(topics):
    served = open_served(parse_spec(str(topics)))
    texts = [(" ".join(["word"] * n)) for n in (3, 90, 7, 40, 12, 90, 5, 60)] * 3 + TOPIC_TEXTS
    calls: list[tuple[int, int]] = []
    real_run = served.model.run

    def spy(feeds):  # records each call's texts and width, and runs the real graph
        calls.append(feeds["input_ids"].shape)
        return real_run(feeds)

    served.model.run = spy
    works = [Work(len(part), items=[Item(t, text=t) for t in part]) for part in (texts[:10], texts[10:11], texts[11:])]
    report = run_batch(served, works, max_pixels=10)
    served.model.run = real_run
    rows = np.concatenate(report.results)
    padded_together = served.model.run(served.model.encode(texts))  # one call, everything padded to the longest
    assert np.allclose(rows, padded_together, atol=1e-5)
    lengths = sorted((int(m.sum()) for m in served.model.encode(texts)["attention_mask"]), reverse=True)
    widths = [width for _, width in calls]
    assert widths == sorted(widths, reverse=True) and widths[0] == lengths[0] and widths[-1] < lengths[0]
    assert report.calls == len(calls) > 1 and all(n * w <= TOKENS_PER_CALL or n == 1 for n, w in calls)


def test_batches_run_off_the_event_loop(digits):
    """While a large batch computes, the loop answers health checks at once."""
    import base64

    with thread_server([digits], max_batch=64, max_delay_ms=0) as running:
        body = {"instances": [{"b64": base64.b64encode(digit_png(i % 10)).decode()} for i in range(48)]}
        done = threading.Event()
        answered_meanwhile = []

        def predict() -> None:
            assert httpx.post(f"{running.url}/v1/models/digits:predict", json=body, timeout=120).status_code == 200
            done.set()

        thread = threading.Thread(target=predict)
        thread.start()
        time.sleep(0.2)
        while not done.is_set():
            if httpx.get(f"{running.url}/v2/health/live").status_code == 200 and not done.is_set():
                answered_meanwhile.append(time.time())
            time.sleep(0.02)
        thread.join()
        assert len(answered_meanwhile) >= 3


def test_the_thread_budget_never_exceeds_the_cores(digits):
    cores = available_cores()
    for workers, threads in ((1, None), (2, None), (cores + 3, None), (2, 1), (3, 8)):
        plan = ServeSettings(workers=workers, threads=threads).plan()
        assert plan.workers * plan.session_threads <= (threads or cores)
        assert plan.workers >= 1 and plan.session_threads >= 1
    with thread_server([digits], workers=1) as running:
        server = running.app.state.server
        served = next(iter(running.models))
        options = served.model.session.get_session_options()
        assert server.workers.count * options.intra_op_num_threads <= cores
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_default_batch_sizes(digits, topics):
    """Without --max-batch: 4 images of 224x224 on the CPU (their activations stay in cache), more
    when they are smaller; 32 texts; 32 on a GPU; --max-batch wins."""
    from zoo.modelinfo import ModelInfo
    from zoo.serve.batching import batch_limit

    image, text = open_served(parse_spec(str(digits))), open_served(parse_spec(str(topics)))
    cpu = ("CPUExecutionProvider",)
    assert batch_limit(None, image.info, image.model.providers) == 4
    assert batch_limit(None, text.info, text.model.providers) == 32
    assert batch_limit(None, image.info, ("CUDAExecutionProvider", *cpu)) == 32
    assert batch_limit(3, image.info, cpu) == 3
    small = ModelInfo(kind="embedding", modality="image", inputs=("pixel_values",), output="embedding",
                      preprocessing={"size": [112, 112]})
    assert batch_limit(None, small, cpu) == 16
    with thread_server([digits]) as running:
        assert running.app.state.server.batchers[("digits", "1")].max_items == 4
