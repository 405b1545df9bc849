"""The ASGI app of ``zoo serve``: a list of routes over plain functions (Starlette), with the model
runtime kept out of it: handlers parse (protocols), hand work to the model's batcher (batching),
and render what comes back.

=====================================================  ===========================================
``GET /``                                              a page to try a model (page.html)
``POST /v1/models/NAME[/versions/V]:predict``          TF Serving JSON, a multipart form, or a file
``GET /v1/models/NAME[/versions/V]``                   TF Serving's model status
``GET /v1/models/NAME[/versions/V]/metadata``          the model's metadata (zoo's)
``GET /v2``                                            server metadata (KServe v2)
``GET /v2/health/live``, ``/v2/health/ready``          liveness; readiness (503 while a model
                                                       file no longer has its sha256)
``GET /v2/models``                                     every model: name, version, kind, sha256...
``GET /v2/models/NAME[/versions/V]``                   KServe v2 model metadata
``GET /v2/models/NAME[/versions/V]/ready``             one model's readiness
``POST /v2/models/NAME[/versions/V]/infer``            KServe v2 inference (JSON or binary)
``POST /v2/repository/index``                          Triton's repository index
``POST /v2/repository/models/NAME/load``               reload NAME's files from disk
``GET /metrics``                                       Prometheus
=====================================================  ===========================================

Every error is ``{"error": "one line"}`` with its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from zoo.__about__ import __version__
from zoo.serve.batching import Batcher, Workers, batch_limit
from zoo.serve.errors import RequestError, bad_request
from zoo.serve.execution import BatchReport, Work, run_batch
from zoo.serve.inputs import check_items
from zoo.serve.limits import ConcurrencyLimit, read_body, within
from zoo.serve.metrics import ServeMetrics
from zoo.serve.models import ModelSet, ServedModel, open_served
from zoo.serve.page import page_html
from zoo.serve.protocols import kserve, tfserving
from zoo.serve.settings import ServeSettings

__all__ = ["build_app", "Server"]

log = logging.getLogger("zoo.serve")

Key = tuple[str, str]


class Server:
    """Everything the handlers share: the models, their batchers, the metrics, the settings."""

    def __init__(self, models: ModelSet, settings: ServeSettings) -> None:
        self.models = models
        self.settings = settings
        self.plan = settings.plan()
        self.workers = Workers(self.plan.workers)
        self.metrics = ServeMetrics()
        self.batchers: dict[Key, Batcher] = {}
        self.limit: ConcurrencyLimit | None = None
        self._tasks: set[asyncio.Task] = set()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        for served in self.models:
            self._add(served)
        self._spawn(self._verify_forever())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(b.stop() for b in self.batchers.values()))
        self.workers.close()

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _add(self, served: ServedModel) -> None:
        settings = self.settings
        batcher = Batcher(lambda works: run_batch(served, works, max_pixels=settings.max_pixels), self.workers,
                          max_items=batch_limit(settings.max_batch, served.info, served.model.providers),
                          max_delay_s=settings.max_delay_ms / 1000,
                          observe=lambda report, seconds: self._observe(served, report))
        batcher.start()
        self.batchers[(served.name, served.version)] = batcher
        info = served.info
        self.metrics.watch(served.name, served.version, info.kind, info.modality, served.sha256,
                           queued=lambda: batcher.queued, ready=lambda: float(served.guard.changed is None))

    def _observe(self, served: ServedModel, report: BatchReport) -> None:
        self.metrics.batch_size.labels(served.name).observe(report.items)
        self.metrics.batch_seconds.labels(served.name).observe(report.prepare_s + report.run_s)

    async def _verify_forever(self) -> None:
        """The periodic full sha256 of every model file (zoo.serve.integrity says why)."""
        while True:
            await asyncio.sleep(self.settings.verify_every_s)
            for served in self.models:
                await asyncio.to_thread(served.guard.check_full, served.name)

    async def reload(self, name: str) -> list[ServedModel]:
        """Open ``name``'s files again (every version, each hashed anew); the old batchers finish
        what they hold, with the old sessions (whose changed files refuse it)."""
        versions = self.models.versions(name)
        if not versions:
            self.models.get(name)  # the 404, naming what is served
        old = [self.models.get(name, version) for version in versions]
        fresh = []
        for served in old:
            try:
                fresh.append(await asyncio.to_thread(open_served, served.spec, provider=self.settings.provider,
                                                     threads=self.plan.session_threads))
            except Exception as exc:  # noqa: BLE001 - InputError and onnxruntime's own: the file is bad
                raise bad_request(f"model {name!r} cannot be reloaded from {served.path}: {exc}",
                                  reason="reload") from None
        for served, again in zip(old, fresh):
            retired = self.batchers[(served.name, served.version)]
            self.models.replace(again)
            self.metrics.forget(served.name, served.version, served.info.kind, served.info.modality, served.sha256)
            self._add(again)
            self._spawn(retired.retire())
        return fresh

    # ----------------------------------------------------------------- answering

    async def answer(self, request: Request, protocol: str,
                     handle: Callable[[ServedModel, bytes], Awaitable[Response]]) -> Response:
        """The frame of every inference request: find the model, read the body within its limit,
        run ``handle`` within the timeout, turn errors into their JSON answer, count it all."""
        started = time.perf_counter()
        reason = None
        try:
            served = self.models.get(request.path_params["name"], request.path_params.get("version"))

            async def run() -> Response:
                served.guard.raise_if_changed(served.name)
                body = await read_body(request, self.settings.max_body_bytes)
                if not body:
                    raise bad_request("an empty request body: send JSON, a multipart form, or the file itself",
                                      reason="empty")
                return await handle(served, body)

            response = await within(self.settings.timeout_s, run())
        except RequestError as exc:
            reason = exc.reason
            response = error_response(exc)
        except ClientDisconnect:  # the client left while sending: nobody to answer
            reason, response = "disconnected", Response(status_code=400)
        except Exception:  # a bug: logged with its traceback, answered 500, the server stays up
            log.exception("zoo serve: %s %s failed", request.method, request.url.path)
            response = JSONResponse({"error": "internal error in zoo serve (its log has the traceback); please "
                                              "report it"}, status_code=500)
        self.metrics.answered(self.label(request.path_params["name"]), protocol, response.status_code,
                              time.perf_counter() - started, reason)
        return response

    def label(self, name: str) -> str:
        """The metrics' model label: a served name, or "" (names from URLs must not make new series)."""
        return name if name in self.models.names() else ""

    def batcher(self, served: ServedModel) -> Batcher:
        return self.batchers[(served.name, served.version)]

    async def tf_predict(self, request: Request) -> Response:
        async def handle(served: ServedModel, body: bytes) -> Response:
            items, key, top_k = await tfserving.parse_request(request.headers, request.query_params, body)
            k = tfserving.parse_top_k(top_k, self.settings.top_k)
            items = check_items(items, served.info, served.name)
            finish = tfserving.answers(served, items, k)
            predictions = await self.batcher(served).submit(Work(len(items), items=items, finish=finish))
            return JSONResponse(tfserving.response(predictions, key), headers=_model_headers(served))

        return await self.answer(request, "tfserving", handle)

    async def v2_infer(self, request: Request) -> Response:
        async def handle(served: ServedModel, body: bytes) -> Response:
            parsed = kserve.parse_infer(body, request.headers, served)
            if parsed.items is not None:
                parsed.items = check_items(parsed.items, served.info, served.name)
            work = Work(parsed.size, items=parsed.items, feeds=parsed.feeds, finish=kserve.results(parsed, served))
            outputs = await self.batcher(served).submit(work)
            content, headers = kserve.encode_response(parsed, served, outputs)
            return Response(content, headers={**headers, **_model_headers(served)})

        return await self.answer(request, "kserve", handle)

    # ----------------------------------------------------------------- describing

    async def page(self, request: Request) -> Response:
        return HTMLResponse(page_html())

    async def models_list(self, request: Request) -> Response:
        return JSONResponse({"models": [m.describe() for m in self.models]})

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse({"name": "zoo", "version": __version__,
                             "extensions": ["classification", "binary_tensor_data", "model_repository"]})

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        stale = {f"{m.name}/{m.version}": m.guard.changed for m in self.models if m.guard.changed}
        if stale:
            return JSONResponse({"ready": False, "models": stale}, status_code=503)
        return JSONResponse({"ready": True})

    async def model_ready(self, request: Request) -> Response:
        return await self._describing(request, lambda m: JSONResponse(
            {"name": m.name, "version": m.version, "ready": m.guard.changed is None, "reason": m.guard.changed},
            status_code=200 if m.guard.changed is None else 503))

    async def v2_metadata(self, request: Request) -> Response:
        return await self._describing(request, lambda m: JSONResponse(
            kserve.model_metadata(m, self.models.versions(m.name))))

    async def tf_status(self, request: Request) -> Response:
        def status(m: ServedModel) -> Response:
            versions = [self.models.get(m.name, v) for v in self.models.versions(m.name)]
            if "version" in request.path_params:
                versions = [m]
            return JSONResponse({"model_version_status": [
                {"version": v.version, "state": "AVAILABLE" if v.guard.changed is None else "UNAVAILABLE",
                 "status": {"error_code": "OK" if v.guard.changed is None else "UNAVAILABLE",
                            "error_message": v.guard.changed or ""}} for v in versions]})

        return await self._describing(request, status)

    async def tf_metadata(self, request: Request) -> Response:
        return await self._describing(request, lambda m: JSONResponse(
            {"model_spec": {"name": m.name, "version": m.version}, "metadata": m.describe()}))

    async def _describing(self, request: Request, render: Callable[[ServedModel], Response]) -> Response:
        try:
            return render(self.models.get(request.path_params["name"], request.path_params.get("version")))
        except RequestError as exc:
            return error_response(exc)

    async def repository_index(self, request: Request) -> Response:
        return JSONResponse([{"name": m.name, "version": m.version, "state": m.state, "reason": m.guard.changed or ""}
                             for m in self.models])

    async def repository_load(self, request: Request) -> Response:
        try:
            fresh = await self.reload(request.path_params["name"])
        except RequestError as exc:
            return error_response(exc)
        return JSONResponse({"loaded": [m.describe() for m in fresh]})

    async def metrics_page(self, request: Request) -> Response:
        content, kind = self.metrics.render()
        return Response(content, headers={"content-type": kind})


def _model_headers(served: ServedModel) -> dict[str, str]:
    """Which file answered: its name, version and sha256, on every inference answer."""
    return {"x-zoo-model": served.name, "x-zoo-model-version": served.version, "x-zoo-model-sha256": served.sha256}


def error_response(error: RequestError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=error.status, headers=error.headers)


def _is_inference(scope: dict[str, Any]) -> bool:
    path = scope.get("path", "")
    return scope.get("method") == "POST" and (path.endswith(":predict") or path.endswith("/infer"))


def _routes(server: Server) -> list[Route]:
    routes = [Route("/", server.page, methods=["GET"]), Route("/metrics", server.metrics_page, methods=["GET"]),
              Route("/v2", server.server_metadata, methods=["GET"]),
              Route("/v2/health/live", server.live, methods=["GET"]),
              Route("/v2/health/ready", server.ready, methods=["GET"]),
              Route("/v2/models", server.models_list, methods=["GET"]),
              Route("/v2/repository/index", server.repository_index, methods=["POST"]),
              Route("/v2/repository/models/{name}/load", server.repository_load, methods=["POST"])]
    for model in ("/v1/models/{name}", "/v1/models/{name}/versions/{version}"):
        routes += [Route(model + ":predict", server.tf_predict, methods=["POST"]),
                   Route(model, server.tf_status, methods=["GET"]),
                   Route(model + "/metadata", server.tf_metadata, methods=["GET"])]
    for model in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [Route(model + "/infer", server.v2_infer, methods=["POST"]),
                   Route(model, server.v2_metadata, methods=["GET"]),
                   Route(model + "/ready", server.model_ready, methods=["GET"])]
    return routes


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    what = "no such route" if status == 404 else f"{request.method} is not allowed here"
    return JSONResponse({"error": f"{what}: {request.method} {request.url.path} (see GET /v2/models, "
                                  f"POST /v1/models/NAME:predict, POST /v2/models/NAME/infer)"}, status_code=status)


def build_app(models: ModelSet, settings: ServeSettings) -> Any:
    """The ASGI app serving ``models`` (opened with ``settings.plan().session_threads`` threads):
    Starlette routes behind the concurrency limit."""
    server = Server(models, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = Starlette(routes=_routes(server), lifespan=lifespan,
                    exception_handlers={404: _not_found, 405: _not_found})
    app.state.server = server

    def refused(scope: dict[str, Any], error: RequestError) -> None:
        parts = scope.get("path", "").split("/")  # /v1/models/NAME:predict, /v2/models/NAME/infer
        server.metrics.errors.labels(server.label(parts[3].split(":")[0] if len(parts) > 3 else ""), error.reason).inc()

    limit = ConcurrencyLimit(app, limit=settings.max_concurrent, applies=_is_inference, refused=refused)
    server.limit = limit
    server.metrics.in_flight.set_function(lambda: limit.active)
    limit.state = app.state  # type: ignore[attr-defined] - tests and the runner reach the server here
    return limit
