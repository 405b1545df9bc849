"""zoo plugin: the Hugging Face Hub (the `hf` source) and transformers models (the `transformers` adapter).

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

from zoo import Field, hookimpl


class HubSource:
    """A model repository on the Hugging Face Hub, kept in the standard HF cache."""

    name = "hf"
    fields = {
        "repo": Field(str, required=True, help="repository id, e.g. google-bert/bert-base-uncased"),
        "revision": Field(str, help="branch, tag or commit; 'main' when omitted, resolved at pull time"),
        "allow": Field(list[str], help="glob patterns of the files to pull"),
        "ignore": Field(list[str], help="glob patterns of files to skip"),
    }


class TransformersAdapter:
    """``transformers`` model class + tokenizer loaded from the pulled folder."""

    name = "transformers"
    fields = {
        "arch": Field(str, required=True, help="transformers model class, e.g. BertModel"),
        "trust_remote_code": Field(bool, help="the card's consent to run the repo's code; the user must opt in too"),
    }


@hookimpl
def register_sources(register):
    register(HubSource())


@hookimpl
def register_adapters(register):
    register(TransformersAdapter())
