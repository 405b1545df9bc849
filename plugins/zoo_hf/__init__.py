"""zoo plugin: the Hugging Face Hub (the `hf` source) and transformers models (the `transformers` adapter).

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

from zoo import hookimpl

from zoo_hf.adapter import TransformersAdapter
from zoo_hf.source import HubSource


@hookimpl
def register_sources(register):
    register(HubSource())


@hookimpl
def register_adapters(register):
    register(TransformersAdapter())
