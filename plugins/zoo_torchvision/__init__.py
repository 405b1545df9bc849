"""zoo plugin: torchvision weights (the `torchvision` source) and architectures (the `torchvision` adapter).

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

from zoo import Field, hookimpl
from zoo.schema import STATE_DICT_FIELDS

from zoo_torchvision.adapter import TorchvisionAdapter


class TorchvisionSource:
    """The weights file of a torchvision weight enum, downloaded by zoo into its own cache."""

    name = "torchvision"
    fields = {
        "weights": Field(str, required=True, help="weight enum member, e.g. ResNet50_Weights.IMAGENET1K_V2"),
        "url": Field(str, required=True, help="the enum's download URL; its file name carries a hash prefix"),
    }


@hookimpl
def register_sources(register):
    register(TorchvisionSource())


@hookimpl
def register_adapters(register):
    register(TorchvisionAdapter())
