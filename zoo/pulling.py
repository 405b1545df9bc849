"""Pulling: a card's source brings its files into the cache, verified, with a pull record.

Idempotent: a model whose record matches its card and whose files are intact returns at once,
without any network request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo import settings
from zoo.atomic import atomic_write_bytes
from zoo.cache import Cache  # noqa
from zoo.card import ModelCard
from zoo.catalog import load_registry
from zoo.redaction import hiding, redact
from zoo.errors import CACHE_FIX, IntegrityError, LoadError, OfflineError, PluginError, PullError, ZooError
from zoo.fetched import Fetched
from zoo.plugins import Contribution, get_host
from zoo.protocols import Source
from zoo.registries import Registry

__all__ = ["pull", "cached", "source_of", "resolve_card", "check_name", "shown_name", "check_same_weights"]

_PREFIXED = re.compile(r"(?P<prefix>[a-z][a-z0-9_-]*):(?P<ref>.*)", re.DOTALL)  # fullmatch: a newline is the ref's


def resolve_card(model: str | ModelCard, registry_files: Sequence[str | Path] = (), *,
                 cache: Cache | None = None) -> ModelCard:
    """The card of ``model``: a registry name, or ``PREFIX:REF`` for a finder's model (``hf:ORG/NAME``).

    A prefixed name uses the registry's card named REF when there is one (the finder may say it is
    another model); otherwise its finder checks REF (``check(ref)``, when it has one: a REF that
    cannot name a model is refused before any lock, file or request), then derives a card, which
    is checked like any registry file and saved under ``$ZOO_HOME/registry.d``, so the next call
    (offline too) finds it there. Offline (``cache.offline``, default ``ZOO_OFFLINE``) a card that
    was never derived raises :class:`zoo.errors.OfflineError`. A failure leaves nothing under
    registry.d, and no file named after REF anywhere.
    """
    if isinstance(model, ModelCard):
        return model
    registry = load_registry(registry_files)
    match = _PREFIXED.fullmatch(model)
    if match is None:
        return registry.card(model)
    provided, ref = _finder(model, match["prefix"]), match["ref"]
    known_card = _registered(registry, provided.value, model, ref)  # a derived card: showing it needs no check
    if known_card is not None:
        return known_card
    _check(provided, ref)
    cache = cache or Cache()
    if cache.offline:
        raise OfflineError(f"{model!r} was never pulled: no card for it in the registry or {_registry_d()}, and "
                           f"offline mode is on (ZOO_OFFLINE=1 / --offline). Connect once: `zoo pull {model}` with "
                           f"network access derives and saves its card")
    return _derive(provided.plugin, provided.value, model, ref, cache, registry_files)


def check_name(model: str) -> None:
    """Refuse a ``PREFIX:REF`` whose finder refuses REF (or that no finder owns); a registry name
    passes. Call it before anything is written for ``model`` (a lock, a card, a run folder): a
    refused REF then leaves nothing named after it."""
    match = _PREFIXED.fullmatch(model)
    if match is not None:
        _check(_finder(model, match["prefix"]), match["ref"])


def _finder(model: str, prefix: str) -> Contribution:
    """The finder that owns ``prefix`` (with its plugin), or an error listing the prefixes there are."""
    provided = get_host().finders().get(prefix)
    if provided is None:
        known = ", ".join(f"{p}:" for p in sorted(get_host().finders())) or "none"
        raise LoadError(f"{shown_name(model)}: no loaded plugin finds models named {prefix}:... (prefixes: {known}). "
                        f"Run `zoo plugins` to see which plugins are broken or disabled, or use a name from `zoo list`")
    return provided


def _check(provided: Contribution, ref: str) -> None:
    """The finder's own check of REF, when it has one (``check(ref)`` raises a ZooError)."""
    check = getattr(provided.value, "check", None)
    if check is not None:
        check(ref)


def shown_name(name: str, limit: int = 80) -> str:
    """``name`` quoted for a one-line message: control characters escaped (repr), and a name longer
    than ``limit`` cut, with its length, so a 5,000-character argument does not fill the screen."""
    if len(name) <= limit:
        return repr(name)
    return f"{name[:limit]!r}... ({len(name):,} characters)"


def _registry_d() -> Path:
    return settings.zoo_home() / "registry.d"


def _registered(registry: Registry, finder: Any, model: str, ref: str) -> ModelCard | None:
    """The registry's card named ``ref`` (any case), when the finder agrees it is that model."""
    name = ref if ref in registry else next((n for n in registry if n.lower() == ref.lower()), None)
    if name is None:
        return None
    card = registry.card(name)
    serves = getattr(finder, "serves", None)
    if serves is not None and not serves(card, ref):
        raise PullError(f"{model!r}: the registry's model {card.name!r} (from {card.origin}) is another model, so the "
                        f"card of {model} cannot take its name. Use `zoo show {card.name}` for that one, or rename it")
    return card


def _card_file(model: str) -> Path:
    """``$ZOO_HOME/registry.d/hf--acme--tiny-bert.toml`` for ``hf:acme/tiny-bert``."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", model.replace(":", "--", 1).replace("/", "--"))
    return _registry_d() / f"{stem}.toml"


def _derive_lock(cache: Cache, model: str) -> Path:
    """The lock that makes one process derive ``model``'s card at a time, named by a hash: a name
    the finder accepted may still be refused by its server, and no file is named after it."""
    return cache.root / "locks" / f"derive-{hashlib.sha256(model.encode('utf-8')).hexdigest()[:16]}"


def _derive(plugin: str, finder: Any, model: str, ref: str, cache: Cache,
            registry_files: Sequence[str | Path]) -> ModelCard:
    """Ask the finder for a card, check it as every later load will, then save it atomically."""
    target = _card_file(model)
    with cache.lock(_derive_lock(cache, model)):
        registry = load_registry(registry_files)  # another process may have derived it while we waited
        known_card = _registered(registry, finder, model, ref)
        if known_card is not None:
            return known_card
        text = finder.find(ref, cache)
        where = f"plugin {plugin!r} derived a card for {model} that zoo cannot use"
        if not isinstance(text, str):
            raise PluginError(f"{where}: find() returned a {type(text).__name__}, not registry TOML text")
        name = _checked(text, target, registry_files, where)
        if name.lower() != ref.lower():
            raise PluginError(f"{where}: it names the model {name!r}, not {ref!r}")
        atomic_write_bytes(target, text.encode("utf-8"), fix=CACHE_FIX)
        try:
            return load_registry(registry_files).card(name)
        except BaseException:
            target.unlink(missing_ok=True)
            raise


def _checked(text: str, target: Path, registry_files: Sequence[str | Path], where: str) -> str:
    """The one model's name in ``text``, after the registry loaded it beside every other file:
    zoo's parser, the plugins' field checks and the duplicate-name check all passed."""
    with tempfile.TemporaryDirectory(prefix="zoo-derived-") as folder:
        trial = Path(folder) / target.name
        trial.write_text(text, encoding="utf-8")
        try:
            registry = load_registry([*registry_files, trial])
            names = [card.name for card in registry.values() if card.origin.path == trial]
            if len(names) != 1:
                raise PluginError(f"{where}: it holds {len(names)} models, not one")
            registry.card(names[0])
        except ZooError as exc:
            if isinstance(exc, PluginError):
                raise
            raise PluginError(f"{where}: {str(exc).replace(str(trial), str(target))}") from None
        problem = registry.unavailable.get(names[0])
    if problem:
        raise PluginError(f"{where}: {problem}")
    return names[0]


def source_of(card: ModelCard) -> Source:
    """The loaded source that serves this card, or an error saying which plugin is missing."""
    provided = get_host().sources().get(card.source.type)
    if provided is None:
        raise LoadError(
            f"model {card.name!r}: no loaded plugin provides source type {card.source.type!r}. "
            f"Run `zoo plugins` to see which plugins are broken or disabled"
        )
    return provided.value


def cached(card: ModelCard, cache: Cache | None = None) -> Fetched | None:
    """The model's pull record when it matches the card and its files are intact; no network."""
    record, problems = _recorded(card, cache or Cache())
    return None if record is None or problems else record


def _recorded(card: ModelCard, cache: Cache) -> tuple[Fetched | None, list[str]]:
    """The pull record that matches the card (None: never pulled), and what is wrong with its files."""
    source = source_of(card)
    record = cache.read_record(card.name, source.revision(card))
    if record is None or record.locator != redact(source.locator(card)):  # records keep no credentials
        return None, []
    return record, cache.check(record)


def check_same_weights(recorded: dict[str, str], fetched: Fetched, where: str) -> None:
    """``fetched`` holds the files ``recorded`` names with the same sha256 (``{file: sha256}``, as
    a run, a few-shot folder or a table recorded them), or an error naming both hashes."""
    changed = _first_changed(recorded, fetched)
    if changed is not None:
        name, sha, now = changed
        raise IntegrityError(
            f"{where} was made with model {fetched.model!r} file {name!r} of sha256 {sha}, but the cache now "
            f"holds sha256 {now} (the source changed, or the file was pulled again with --force). "
            f"Restore those weights (pull the revision it recorded) or make it again with the current ones")


def _first_changed(recorded: dict[str, str], fetched: Fetched) -> tuple[str, str, str] | None:
    """The first file of ``recorded`` (``{file: sha256}``) that ``fetched`` holds with other bytes:
    (name, recorded sha256, sha256 now); None when every common file is the same."""
    now = {f.name: f.sha256 for f in fetched.files}
    return next(((name, sha, now[name]) for name, sha in recorded.items() if name in now and now[name] != sha), None)


def pull(
    model: str | ModelCard,
    *,
    offline: bool | None = None,
    quiet: bool = False,
    force: bool = False,
    cache: Cache | None = None,
    registry_files: Sequence[str | Path] = (),
) -> Fetched:
    """Bring a model's files into the cache and return its pull record.

    ``offline`` (default: ``ZOO_OFFLINE``) never opens a socket: cached models return, uncached
    ones raise :class:`zoo.errors.OfflineError`. ``force`` pulls again even when cached.
    """
    cache = cache or Cache(offline=offline, quiet=quiet)
    card = resolve_card(model, registry_files, cache=cache)
    with hiding(*(v for v in card.source.options.values() if isinstance(v, str))):
        return _pull(card, cache, force)  # no credential of the card's source in any message, whoever wrote it


def _pull(card: ModelCard, cache: Cache, force: bool) -> Fetched:
    source = source_of(card)
    source.locator(card)  # a source checks its URL or repo id here: one it refuses leaves no lock or folder
    if not force:
        record, problems = _recorded(card, cache)  # records are written atomically: no lock needed to read one
        if record is not None and not problems:
            return record
    revision = source.revision(card)
    with cache.lock(cache.model_dir(card.name, revision) / "pull.json"):
        record, problems = _recorded(card, cache)  # another process may have pulled it while we waited
        if record is not None and not problems and not force:
            return record
        if problems:
            if cache.offline:
                raise IntegrityError(f"model {card.name!r}: the cached copy is damaged ({problems[0]}); with network "
                                     f"access, `zoo pull {card.name} --force` downloads it again")
            if not cache.quiet:
                import sys

                print(f"model {card.name!r}: the cached copy is damaged ({problems[0]}); pulling it again",
                      file=sys.stderr, flush=True)
        fetch_cache = Cache(cache.root, offline=cache.offline, quiet=cache.quiet, force=force or bool(problems))
        try:
            fetched = source.fetch(card, fetch_cache)
        except PullError as exc:
            if str(exc).startswith(f"model {card.name!r}"):
                raise
            raise type(exc)(f"model {card.name!r}: {exc}") from None
        fetched = dataclasses.replace(fetched, locator=redact(fetched.locator))  # on disk and in runs: no credentials
        check_against_card(card, fetched)
        changed = _first_changed({f.name: f.sha256 for f in record.files}, fetched) if record and not force else None
        if changed is not None:  # trust on first use: a re-pull brings the recorded bytes
            name, first, now = changed
            raise IntegrityError(
                f"model {card.name!r}: file {name!r} came back with sha256 {now}, but its first pull recorded "
                f"{first} (the source now serves other bytes); `zoo pull {card.name} --force` accepts the new file")
        cache.write_record(fetched)
    return fetched


def check_against_card(card: ModelCard, fetched: Fetched) -> None:
    """Every file the card pins must be there with the card's hash and size."""
    by_name = {f.name: f for f in fetched.files}
    for spec in card.files:
        got = by_name.get(spec.name)
        where = f"model {card.name!r}, file {spec.name!r} from {redact(fetched.locator)}"
        if got is None:
            raise IntegrityError(f"{where}: the source did not deliver it (got: {', '.join(by_name) or 'nothing'}). "
                                 "Check the card's files and the source's locator")
        if spec.sha256 and got.sha256 != spec.sha256:
            raise IntegrityError(f"{where}: sha256 is {got.sha256}, the card expects {spec.sha256}")
        if spec.sha256_prefix and not got.sha256.startswith(spec.sha256_prefix):
            raise IntegrityError(f"{where}: sha256 is {got.sha256}, the card expects it to start with "
                                 f"{spec.sha256_prefix}")
        if spec.size is not None and got.size != spec.size:
            raise IntegrityError(f"{where}: size is {got.size} bytes, the card expects {spec.size}")
