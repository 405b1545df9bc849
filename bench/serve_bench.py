"""zoo serve under load, over loopback: dynamic batching vs none vs LitServe, then 2x overload.

    python bench/serve_bench.py [--run runs/serve-bench] [--clients 16] [--seconds 20] [--text]

The model is the efficientnet_lite0 digits run (`zoo finetune efficientnet_lite0 --data digits
--per-class 10`, exported; made once under --run when missing); with ``--text``, a zero-shot
classifier on MiniLM (`zoo fewshot all-minilm-l6-v2-offline --labels ...`, exported) and short
texts. The load generator is zoo.AsyncClient: ``--clients`` coroutines in a closed loop, each
sending one input (a PNG of zoo's digits rendering, or a text) per request and waiting for the
answer, for ``--seconds`` after a warm-up. The server's CPU time per item (all its threads, from
/proc) is reported beside the throughput: this machine is shared, and it is the number that does
not depend on what else runs.
Each server runs in its own process on the same cores as the load generator, one after the other:

1. zoo serve with dynamic batching (its default --max-batch, or ``--max-batch``; ``--max-delay-ms 5``);
2. the same server with ``--max-batch 1`` (batching off);
3. LitServe (bench/serve_litserve.py) with its own batching (up to ``--clients``, 5 ms), running
   the same onnxruntime session, preprocessing and answer code;
4. overload: ``--max-concurrent C`` with 2C clients and ``--timeout 2``: every answer's latency
   (none may exceed the timeout), the refusals (503s), the server's resident memory sampled
   through the run, and a normal answer afterwards.

Prints items/s, p50, p95, p99 per server and the overload's record; --json writes them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import zoo
from zoo.client import ClientError, predict_body

REPO = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return re.search(r"Model name:\s*(.+)", out).group(1).strip()
    except Exception:  # noqa: BLE001
        return platform.processor() or "?"


def ensure_model(run: Path) -> Path:
    model = run / "model.onnx"
    if not model.exists():
        if not (run / "config.json").exists():
            subprocess.run(["zoo", "finetune", "efficientnet_lite0", "--data", "digits", "--per-class", "10",
                            "--out", str(run), "-q"], check=True)
        subprocess.run(["zoo", "export", str(run), "-q"], check=True)
    return model


def ensure_text_model(run: Path) -> Path:
    model = run / "model.onnx"
    if not model.exists():
        subprocess.run(["zoo", "fewshot", "all-minilm-l6-v2-offline", "--labels", ",".join(TOPICS), "--out", str(run)],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["zoo", "export", str(run), "-q"], check=True)
    return model


TOPICS = ("sport", "business", "politics", "technology", "entertainment")


def texts(count: int = 64) -> list[str]:
    """Short news-like sentences of 6 to 30 words."""
    rng = np.random.default_rng(0)
    words = ("the match ended after extra time as the striker scored shares fell when the central bank raised "
             "rates ministers voted on the bill the new phone ships with a faster chip the film won three awards "
             "at the festival").split()
    return [" ".join(rng.choice(words, size=int(rng.integers(6, 31)))) for _ in range(count)]


def digit_pngs(count: int = 64) -> list[bytes]:
    """PNG files of zoo's digits rendering (what the run was trained on)."""
    from PIL import Image

    from zoo.data.formats import DigitsFormat

    examples = DigitsFormat().load("digits", "image").examples
    step = max(1, len(examples) // count)
    out = []
    for example in examples[::step][:count]:
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(example.item)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Process:
    """A server in a subprocess, its URL read from its first line (zoo serve) or given (LitServe)."""

    def __init__(self, command: list[str], url: str | None = None) -> None:
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.url = url
        if url is None:
            line = self.proc.stdout.readline()
            match = re.search(r"listening on (http://\S+)", line)
            if not match:
                raise SystemExit(f"server did not start: {line}{self.proc.stdout.read()}")
            self.url = match.group(1)

    def wait_ready(self, path: str, timeout: float = 120) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.proc.stdout.read()}")
            time.sleep(0.3)
        raise SystemExit(f"server at {self.url} not ready after {timeout} s")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


async def closed_loop(send, clients: int, seconds: float, warmup: float, images: list[bytes],
                      watch=None) -> dict:
    """``clients`` coroutines sending one image per request for ``warmup`` + ``seconds``; only
    requests started after the warm-up count."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    measured_from, until = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    answered = [0]  # every 200, warm-up included (for the server's CPU time per item)
    refused_latencies: list[float] = []

    async def client(index: int) -> None:
        n = index
        while loop.time() < until:
            image = images[n % len(images)]
            n += clients
            began = loop.time()
            try:
                await send(image)
                status = "200"
            except ClientError as exc:
                status = str(exc.status)
            took = loop.time() - began
            answered[0] += status == "200"
            if began >= measured_from:
                statuses[status] = statuses.get(status, 0) + 1
                (latencies if status == "200" else refused_latencies).append(took)
            if status == "503":
                await asyncio.sleep(0.01)  # a refused client retries soon, as Retry-After allows

    watcher = asyncio.create_task(watch()) if watch else None
    await asyncio.gather(*(client(i) for i in range(clients)))
    if watcher:
        watcher.cancel()
    ms = np.asarray(latencies) * 1000
    return {"items_per_s": len(latencies) / seconds, "requests": sum(statuses.values()), "statuses": statuses,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p95_ms": float(np.percentile(ms, 95)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
            "max_ms": float(ms.max()) if len(ms) else None,
            "max_refused_ms": float(max(refused_latencies) * 1000) if refused_latencies else None,
            "answered_all": answered[0]}


def batch_sizes(url: str) -> float | None:
    import httpx

    text = httpx.get(url + "/metrics").text
    total = re.search(r"zoo_serve_batch_size_sum\{[^}]*\} (\S+)", text)
    count = re.search(r"zoo_serve_batch_size_count\{[^}]*\} (\S+)", text)
    return float(total.group(1)) / float(count.group(1)) if total and count and float(count.group(1)) else None


def run_zoo(model: Path, options: list[str], clients: int, seconds: float, warmup: float, images: list[bytes],
            watch_memory: bool = False) -> dict:
    server = Process(["zoo", "serve", f"bench={model}", "--port", "0", *options])
    try:
        server.wait_ready("/v2/health/ready")
        memory: list[float] = []

        async def main() -> dict:
            async with zoo.client.AsyncClient(server.url, model="bench", timeout=60) as client:
                async def watch() -> None:
                    while True:
                        memory.append(rss_mb(server.proc.pid))
                        await asyncio.sleep(0.25)

                result = await closed_loop(lambda image: client.predict([image]), clients, seconds, warmup,
                                           images, watch if watch_memory else None)
                if watch_memory:
                    answer = await client.predict([images[0]])
                    result["after"] = {"ready": zoo.Client(server.url).ready(), "answer": answer[0]["predictions"][0]}
                return result

        cpu = cpu_seconds(server.proc.pid)
        load = os.getloadavg()[0]
        result = asyncio.run(main())
        result["server_cpu_ms_per_item"] = (cpu_seconds(server.proc.pid) - cpu) * 1000 / max(1, result["answered_all"])
        result["load_before"] = load
        result["mean_batch"] = batch_sizes(server.url)
        if watch_memory:
            half = len(memory) // 2
            result["rss_mb"] = {"min": min(memory), "max": max(memory), "last": memory[-1], "samples": len(memory),
                                "max_first_half": max(memory[:half]), "max_second_half": max(memory[half:])}
        return result
    finally:
        server.stop()


def run_litserve(model: Path, batch: int, delay_ms: float, clients: int, seconds: float, warmup: float,
                 images: list[bytes], port: int) -> dict:
    import httpx

    server = Process([sys.executable, str(REPO / "bench" / "serve_litserve.py"), str(model), str(port),
                      "--max-batch", str(batch), "--max-delay-ms", str(delay_ms),
                      "--threads", str(len(os.sched_getaffinity(0)))], url=f"http://127.0.0.1:{port}")
    try:
        server.wait_ready("/health")
        load = os.getloadavg()[0]

        async def main() -> dict:
            async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                         limits=httpx.Limits(max_connections=None)) as http:
                async def send(image: bytes) -> None:
                    modality = "text" if isinstance(image, str) else "image"
                    response = await http.post("/predict", json=predict_body([image], modality, None))
                    if response.status_code != 200:
                        raise ClientError(response.text, response.status_code)
                    response.json()

                return await closed_loop(send, clients, seconds, warmup, images)

        result = asyncio.run(main())
        result["load_before"] = load
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="the model's run folder (default: runs/serve-bench[-text])")
    parser.add_argument("--text", action="store_true", help="a text classifier and short texts instead of digits")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--max-batch", type=int, help="zoo serve --max-batch for the batching run (default: its own)")
    parser.add_argument("--workers", type=int, help="zoo serve --workers (both zoo runs; default: zoo serve's)")
    parser.add_argument("--skip", nargs="*", default=[], help="any of: batching, single, litserve, overload")
    parser.add_argument("--rounds", type=int, default=3, help="each config this many times, interleaved (medians)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.text:
        model, images = ensure_text_model(args.run or REPO / "runs" / "serve-bench-text"), texts()
    else:
        model, images = ensure_model(args.run or REPO / "runs" / "serve-bench"), digit_pngs()
    cores = len(os.sched_getaffinity(0))
    report: dict = {"cpu": cpu_name(), "cores": cores, "clients": args.clients, "seconds": args.seconds,
                    "model": str(model), "runs": {}}
    print(f"{report['cpu']}, {cores} cores; {args.clients} clients, one input per request, {args.seconds:g} s a run, "
          f"{args.rounds} rounds", flush=True)
    common = ["--max-delay-ms", "5", *(["--workers", str(args.workers)] if args.workers else [])]
    batching = ["--max-batch", str(args.max_batch)] if args.max_batch else []  # else zoo serve's default
    plan = [("batching", lambda: run_zoo(model, [*batching, *common], args.clients, args.seconds, args.warmup, images)),
            ("single", lambda: run_zoo(model, ["--max-batch", "1", *common], args.clients, args.seconds, args.warmup,
                                       images)),
            ("litserve", lambda: run_litserve(model, args.clients, 5.0, args.clients, args.seconds, args.warmup,
                                              images, port=18765))]
    rounds: dict[str, list[dict]] = {}
    for round_ in range(args.rounds):  # interleaved: a shared machine's load drifts, each config meets it alike
        for name, run in plan:
            if name in args.skip:
                continue
            result = run()
            rounds.setdefault(name, []).append(result)
            print(f"{name:>9} #{round_ + 1}: {result['items_per_s']:7.1f} items/s  p50 {result['p50_ms']:6.1f} ms  "
                  f"p95 {result['p95_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  (mean batch "
                  f"{result['mean_batch'] if result.get('mean_batch') else float('nan'):.1f}; server CPU "
                  f"{result.get('server_cpu_ms_per_item', float('nan')):.1f} ms/item; load average "
                  f"{result['load_before']:.1f}; statuses {result['statuses']})", flush=True)
    for name, results in rounds.items():
        report["runs"][name] = {**{key: float(np.median([r[key] for r in results]))
                                   for key in ("items_per_s", "p50_ms", "p95_ms", "p99_ms")}, "rounds": results}
    if "overload" not in args.skip:
        limit = args.clients
        result = run_zoo(model, [*batching, "--max-concurrent", str(limit), "--timeout", "2", *common], 2 * limit,
                         args.seconds, args.warmup, images, watch_memory=True)
        report["runs"]["overload"] = result
        print(f" overload: --max-concurrent {limit}, {2 * limit} clients, --timeout 2: statuses {result['statuses']}; "
              f"answered p50 {result['p50_ms']:.1f} / p99 {result['p99_ms']:.1f} / max {result['max_ms']:.1f} ms; "
              f"refusals max {result['max_refused_ms'] or 0:.1f} ms; RSS {result['rss_mb']['min']:.0f}-"
              f"{result['rss_mb']['max']:.0f} MB (first half's max {result['rss_mb']['max_first_half']:.0f}, second "
              f"half's {result['rss_mb']['max_second_half']:.0f}, last {result['rss_mb']['last']:.0f}); afterwards "
              f"ready={result['after']['ready']}, "
              f"answer {result['after']['answer']}", flush=True)
    runs = report["runs"]
    for name in ("batching", "single", "litserve"):
        if name in rounds:
            r = runs[name]
            print(f"{name:>9}, median of {len(rounds[name])}: {r['items_per_s']:7.1f} items/s  p50 {r['p50_ms']:6.1f}  "
                  f"p95 {r['p95_ms']:6.1f}  p99 {r['p99_ms']:6.1f} ms")
    for other, label in (("single", "--max-batch 1"), ("litserve", "LitServe")):
        if "batching" in rounds and other in rounds:
            b, o = runs["batching"], runs[other]
            each = [x["items_per_s"] / y["items_per_s"] for x, y in zip(rounds["batching"], rounds[other])]
            print(f"zoo serve (batching) vs {label}: {b['items_per_s'] / o['items_per_s']:.2f}x items/s (rounds: "
                  f"{', '.join(f'{e:.2f}x' for e in each)}), p95 {b['p95_ms']:.1f} vs {o['p95_ms']:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
