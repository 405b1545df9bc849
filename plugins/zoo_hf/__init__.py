"""zoo plugin: the Hugging Face Hub (the `hf` source), transformers models (the `transformers` adapter),
and a card for any Hub model by id (the `hf:` finder: `zoo pull hf:ORG/NAME`).

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

from zoo import hookimpl

from zoo_hf.adapter import TransformersAdapter
from zoo_hf.finder import HubFinder
from zoo_hf.source import HubSource


@hookimpl
def register_sources(register):
    register(HubSource())


@hookimpl
def register_adapters(register):
    register(TransformersAdapter())


@hookimpl
def register_finders(register):
    register(HubFinder())
