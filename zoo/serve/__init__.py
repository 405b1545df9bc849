"""``zoo serve``: exported models as an HTTP service over the torch-free runtime.

One module, one job:

- :mod:`~zoo.serve.settings`: every knob, checked (and how threads are shared);
- :mod:`~zoo.serve.models`: which files under which names and versions, opened once;
- :mod:`~zoo.serve.integrity`: a model file that changes on disk is never served silently;
- :mod:`~zoo.serve.inputs`: a request's inputs checked, then decoded and preprocessed;
- :mod:`~zoo.serve.execution`: one batch of one model through onnxruntime;
- :mod:`~zoo.serve.batching`: requests gathered into batches, run off the event loop;
- :mod:`~zoo.serve.protocols`: TF Serving JSON, uploads, and KServe v2 on the wire;
- :mod:`~zoo.serve.limits`: concurrency, body size and time limits;
- :mod:`~zoo.serve.metrics`: Prometheus;
- :mod:`~zoo.serve.page`: the page to try a model;
- :mod:`~zoo.serve.app`: the routes; :mod:`~zoo.serve.server`: running them with uvicorn.

Nothing here imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.serve.app import build_app
    from zoo.serve.models import ModelSet, ModelSpec, load_models, parse_spec
    from zoo.serve.server import Running, prepare, serve
    from zoo.serve.settings import ServeSettings

_LAZY = {
    "build_app": "zoo.serve.app",
    "ModelSet": "zoo.serve.models",
    "ModelSpec": "zoo.serve.models",
    "load_models": "zoo.serve.models",
    "parse_spec": "zoo.serve.models",
    "Running": "zoo.serve.server",
    "prepare": "zoo.serve.server",
    "serve": "zoo.serve.server",
    "ServeSettings": "zoo.serve.settings",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
