"""zoo plugin: timm architectures (the `timm` adapter) and timm's models on the Hugging Face Hub.

timm is optional (`pip install zoo[timm]`): its models are listed only when timm is importable,
which is checked without importing it.

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from zoo import hookimpl

from zoo_timm.adapter import TimmAdapter

MODELS = Path(__file__).with_name("models.toml")


def timm_available() -> bool:
    return importlib.util.find_spec("timm") is not None


@hookimpl
def register_adapters(register):
    register(TimmAdapter())


@hookimpl
def register_models(register):
    if timm_available():
        register(MODELS)
