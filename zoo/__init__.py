"""zoo: a plugin-based model zoo for transfer learning.

``import zoo`` is cheap: the public names below load their modules on first use, so listing
models never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.__about__ import __version__
from zoo.errors import (
    CacheError,
    InputError,
    IntegrityError,
    LoadError,
    OfflineError,
    PluginError,
    PullError,
    RegistryError,
    UnknownModelError,
    ZooError,
)

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.api import get_card, list_models, list_plugins, registry
    from zoo.backbone import Backbone
    from zoo.fetched import Fetched, FetchedFile
    from zoo.runs import Run, open_run
    from zoo.train import finetune
    from zoo.export import ExportResult, export
    from zoo.runtime import OnnxModel, open_model, predict
    from zoo.benchmark import BenchResult, bench
    from zoo.loading import load
    from zoo.pulling import pull, shown_name
    from zoo.card import ComponentRef, CutPoint, FileSpec, FrontEndSpec, InputSpec, ModelCard, Origin
    from zoo.data.dataset import Dataset, Example, Problem
    from zoo.hookspecs import hookimpl
    from zoo.tasks import Task
    from zoo.registries import Registry, render_catalogue, write_catalogue
    from zoo.schema import STATE_DICT_FIELDS, Field
    from zoo.cache import Cache
    from zoo.download import check_url, redact, sha256_file
    from zoo.statedict import load_into, read_state_dict, weights_file
    from zoo.embed import (FewShot, Searcher, VectorStore, delete_items, embed_dataset, fewshot, load_fewshot, search,
                           zero_shot)
    from zoo.probing import ProbeReport, probe

_LAZY = {
    "finetune": "zoo.train",
    "open_run": "zoo.runs",
    "Run": "zoo.runs",
    "Task": "zoo.tasks",
    "export": "zoo.export",
    "ExportResult": "zoo.export",
    "predict": "zoo.runtime",
    "open_model": "zoo.runtime",
    "OnnxModel": "zoo.runtime",
    "bench": "zoo.benchmark",
    "BenchResult": "zoo.benchmark",
    "Fetched": "zoo.fetched",
    "FetchedFile": "zoo.fetched",
    "load": "zoo.loading",
    "pull": "zoo.pulling",
    "shown_name": "zoo.pulling",
    "Backbone": "zoo.backbone",
    "registry": "zoo.api",
    "list_models": "zoo.api",
    "get_card": "zoo.api",
    "list_plugins": "zoo.api",
    "ModelCard": "zoo.card",
    "InputSpec": "zoo.card",
    "CutPoint": "zoo.card",
    "FileSpec": "zoo.card",
    "ComponentRef": "zoo.card",
    "Origin": "zoo.card",
    "FrontEndSpec": "zoo.card",
    # for plugins: what a dataset format returns (README "Writing a dataset format")
    "Dataset": "zoo.data.dataset",
    "Example": "zoo.data.dataset",
    "Problem": "zoo.data.dataset",
    "Registry": "zoo.registries",
    "render_catalogue": "zoo.registries",
    "write_catalogue": "zoo.registries",
    "Field": "zoo.schema",
    # for plugins: what a source or adapter needs (README "Writing a source or an adapter")
    "STATE_DICT_FIELDS": "zoo.schema",
    "Cache": "zoo.cache",
    "sha256_file": "zoo.download",
    "redact": "zoo.download",
    "check_url": "zoo.download",
    "load_into": "zoo.statedict",
    "read_state_dict": "zoo.statedict",
    "weights_file": "zoo.statedict",
    "hookimpl": "zoo.hookspecs",
    "embed_dataset": "zoo.embed",
    "delete_items": "zoo.embed",
    "search": "zoo.embed",
    "Searcher": "zoo.embed",
    "VectorStore": "zoo.embed",
    "fewshot": "zoo.embed",
    "zero_shot": "zoo.embed",
    "FewShot": "zoo.embed",
    "load_fewshot": "zoo.embed",
    "Client": "zoo.client",
    "AsyncClient": "zoo.client",
    "ClientError": "zoo.client",
    "probe": "zoo.probing",
    "ProbeReport": "zoo.probing",
    # what a task plugin builds on (zoo.tasks.contract; a dense task's sampler preprocesses as the
    # runtime does, writes its own predictions lines, and may use zoo's baseline for dense tasks)
    "Targets": "zoo.tasks.contract",
    "Score": "zoo.tasks.contract",
    "Output": "zoo.tasks.contract",
    "TaskContext": "zoo.tasks.contract",
    "DenseTask": "zoo.tasks.contract",
    "image_array": "zoo.preprocess",
    "open_image": "zoo.preprocess",
    "write_prediction_lines": "zoo.predictions",
    "baseline_line": "zoo.tasks.baseline",
    "scratch_baseline": "zoo.train.scratch",
    # a plugin's generated data: written whole and renamed into place; the photos demo's photographs
    "atomic_write_folder": "zoo.atomic",
    "json_bytes": "zoo.atomic",
    "ensure_photos": "zoo.data.photos",
    # a dense task's pictures: a mask back at a picture's size, each class's share, the palette,
    # balanced class weights (what the runtime and the report use too)
    "mask_in_picture": "zoo.postprocess",
    "class_shares": "zoo.postprocess",
    "paste_masks": "zoo.postprocess",  # an instance's mask pasted into its picture, as the runtime does
    "instance_mask": "zoo.postprocess",  # instances' masks as one mask of object numbers, as the runtime's
    "mask_colours": "zoo.drawing",
    "class_weights": "zoo.classweights",
}

__all__ = [
    "__version__", "ZooError", "RegistryError", "UnknownModelError", "PluginError", "PullError",
    "OfflineError", "IntegrityError", "CacheError", "LoadError", "InputError", *_LAZY,
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
