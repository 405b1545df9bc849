"""zoo plugin: torchvision weights (the `torchvision` source) and architectures (the `torchvision` adapter).

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

from zoo import hookimpl

from zoo_torchvision.adapter import TorchvisionAdapter
from zoo_torchvision.source import TorchvisionSource


@hookimpl
def register_sources(register):
    register(TorchvisionSource())


@hookimpl
def register_adapters(register):
    register(TorchvisionAdapter())
