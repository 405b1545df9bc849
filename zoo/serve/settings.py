"""How a server behaves: one frozen record of every knob ``zoo serve`` takes, checked once.

Defaults and why:

- ``max_batch`` (None: per model, :func:`zoo.serve.batching.batch_limit`: 4 images of 224x224 on
  the CPU, 32 texts or on a GPU) and ``max_delay_ms`` 5: a batch goes as soon as it is full, or
  when its first request has waited ``max_delay_ms``; while one batch runs, the next gathers what
  arrives (so under load batches fill without waiting, and an idle server answers a lone request
  after at most 5 ms).
- ``max_concurrent`` 64 requests at once, beyond which a request is refused at once (503 with
  Retry-After) rather than queued without end: memory stays bounded by
  ``max_concurrent x max_body_mb`` plus one decoded image (``max_pixels``) at a time.
- ``timeout_s`` 30: no request waits longer; it is answered 504 and its work dropped.
- ``max_pixels`` 50 megapixels: an image whose header claims more is refused before it is decoded
  (a decompression bomb: a few KB of PNG that decodes to gigabytes).
- ``verify_every_s`` 30: how often each model file is hashed in full (see :mod:`zoo.serve.integrity`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from zoo.errors import InputError

__all__ = ["ServeSettings", "ThreadPlan"]


@dataclass(frozen=True)
class ThreadPlan:
    """Batches run at once, and onnxruntime threads for each (every session gets that many)."""

    workers: int
    session_threads: int


@dataclass(frozen=True)
class ServeSettings:
    """Everything a server is told, as plain data (``zoo serve``'s options)."""

    # where
    host: str = "127.0.0.1"
    port: int = 8000
    # dynamic batching
    max_batch: int | None = None  # None: per model (zoo.serve.batching.batch_limit)
    max_delay_ms: float = 5.0
    # limits
    max_concurrent: int = 64
    max_body_mb: float = 16.0
    max_pixels: int = 50_000_000
    timeout_s: float = 30.0
    drain_s: float = 30.0  # SIGTERM: how long in-flight requests may take to finish
    # models
    top_k: int = 5
    provider: str | None = None
    threads: int | None = None  # compute threads in all; default: the cores this process may use
    workers: int = 1  # batches run at once, each on threads // workers onnxruntime threads
    verify_every_s: float = 30.0

    def __post_init__(self) -> None:
        positive = {"max_batch": 1, "max_concurrent": 1, "top_k": 1, "max_pixels": 1, "workers": 1}
        for name, low in positive.items():
            if getattr(self, name) is not None and int(getattr(self, name)) < low:
                raise InputError(f"--{name.replace('_', '-')} must be at least {low}, not {getattr(self, name)}")
        for name in ("max_delay_ms", "drain_s"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')} must be 0 or more, not {getattr(self, name)}")
        for name in ("max_body_mb", "timeout_s", "verify_every_s"):
            if not getattr(self, name) > 0:
                raise InputError(f"--{name.replace('_', '-')} must be more than 0, not {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be at least 1, not {self.threads}")
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port must be between 0 and 65535, not {self.port}")

    def plan(self) -> ThreadPlan:
        """How the compute threads are shared: ``workers`` batches at once, each on its share of
        the threads, so that batches x threads never exceed the cores (``zoo.threads``)."""
        from zoo.threads import available_cores

        threads = self.threads or available_cores()
        workers = min(self.workers, threads)
        return ThreadPlan(workers=workers, session_threads=max(1, threads // workers))

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
