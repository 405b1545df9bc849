"""zoo plugin: torchvision weights (the `torchvision` source), architectures (the `torchvision`
adapter), a card for every torchvision classification weight (``catalog.json``) and one for
every detection and instance segmentation weight (``detection.json``, by ``zoo_torchvision.detection``)
and every semantic segmentation weight (``segmentation.json``, by ``zoo_torchvision.segmentation``).

The catalogue is generated from torchvision's own metadata by ``python -m zoo_torchvision.generate``
and shipped: registering it reads JSON only, so ``zoo list`` imports neither torch nor torchvision.

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

from pathlib import Path

from zoo import hookimpl

from zoo_torchvision.adapter import TorchvisionAdapter
from zoo_torchvision.source import TorchvisionSource

CATALOG = Path(__file__).with_name("catalog.json")
DETECTION = Path(__file__).with_name("detection.json")
SEGMENTATION = Path(__file__).with_name("segmentation.json")


@hookimpl
def register_sources(register):
    register(TorchvisionSource())


@hookimpl
def register_adapters(register):
    register(TorchvisionAdapter())


@hookimpl
def register_models(register):
    register(CATALOG)
    register(DETECTION)
    register(SEGMENTATION)
