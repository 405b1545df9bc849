"""Prometheus metrics of one server (``GET /metrics``), in a registry of its own (two servers in
one process, as in the tests, do not share counters).

==================================  ===========================================================
``zoo_serve_requests_total``        answered requests: model, protocol (tfserving, kserve), status
``zoo_serve_errors_total``          non-2xx answers by reason (bad_input, empty, content_type,
                                    body_size, pixels, not_found, concurrency, timeout,
                                    model_changed, internal)
``zoo_serve_request_seconds``       latency histogram: model, protocol
``zoo_serve_batch_size``            items per batch: model
``zoo_serve_batch_seconds``         preprocessing + onnxruntime time per batch: model
``zoo_serve_queue_depth``           items waiting to join a batch: model, version
``zoo_serve_in_flight``             inference requests being served now
``zoo_serve_model_info``            1 per model: model, version, kind, modality, sha256
``zoo_serve_model_ready``           1 while the model file still has its sha256, else 0
==================================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ServeMetrics"]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """The server's counters, histograms and gauges."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("zoo_serve_requests", "Answered inference requests", ["model", "protocol", "status"],
                                registry=r)
        self.errors = Counter("zoo_serve_errors", "Non-2xx answers by reason", ["model", "reason"], registry=r)
        self.latency = Histogram("zoo_serve_request_seconds", "Inference request latency", ["model", "protocol"],
                                 buckets=_LATENCY, registry=r)
        self.batch_size = Histogram("zoo_serve_batch_size", "Items per batch", ["model"], buckets=_SIZES, registry=r)
        self.batch_seconds = Histogram("zoo_serve_batch_seconds", "Preprocessing and onnxruntime time per batch",
                                       ["model"], buckets=_LATENCY, registry=r)
        self.queue_depth = Gauge("zoo_serve_queue_depth", "Items waiting to join a batch", ["model", "version"],
                                 registry=r)
        self.in_flight = Gauge("zoo_serve_in_flight", "Inference requests being served", registry=r)
        self.model_info = Gauge("zoo_serve_model_info", "Served models", ["model", "version", "kind", "modality",
                                                                          "sha256"], registry=r)
        self.model_ready = Gauge("zoo_serve_model_ready", "1 while the model file has the sha256 it was loaded with",
                                 ["model", "version"], registry=r)

    def watch(self, name: str, version: str, kind: str, modality: str, sha256: str,
              queued: Callable[[], float], ready: Callable[[], float]) -> None:
        """Gauges for one model, read when scraped."""
        self.model_info.labels(name, version, kind, modality, sha256).set(1)
        self.queue_depth.labels(name, version).set_function(queued)
        self.model_ready.labels(name, version).set_function(ready)

    def forget(self, name: str, version: str, kind: str, modality: str, sha256: str) -> None:
        """A reloaded model's old info line goes."""
        try:
            self.model_info.remove(name, version, kind, modality, sha256)
        except KeyError:
            pass

    def answered(self, model: str, protocol: str, status: int, seconds: float, reason: str | None) -> None:
        """One inference request answered (``model`` "" for a name that is not served)."""
        if model:
            self.requests.labels(model, protocol, str(status)).inc()
            self.latency.labels(model, protocol).observe(seconds)
        if status >= 400:
            self.errors.labels(model, reason or "internal").inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
