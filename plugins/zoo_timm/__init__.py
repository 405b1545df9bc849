"""zoo plugin: timm architectures (the `timm` adapter) and timm's models on the Hugging Face Hub.

timm is optional (`pip install zoo[timm]`): its models are listed only when timm is importable,
which is checked without importing it.

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from zoo import Field, hookimpl
from zoo.schema import STATE_DICT_FIELDS

MODELS = Path(__file__).with_name("models.toml")


class TimmAdapter:
    """A timm architecture created by name without weights, then loaded from the pulled files."""

    name = "timm"
    fields = {
        "arch": Field(str, required=True, help="timm model name, e.g. resnet50.a1_in1k"),
        **STATE_DICT_FIELDS,
    }


def timm_available() -> bool:
    return importlib.util.find_spec("timm") is not None


@hookimpl
def register_adapters(register):
    register(TimmAdapter())


@hookimpl
def register_models(register):
    if timm_available():
        register(MODELS)
