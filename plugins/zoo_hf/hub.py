"""How zoo talks to the Hugging Face Hub, for both the `hf` source and the ``hf:`` finder.

A repository id checked by the Hub's own rules before anything is written for it, the client's
errors a user can cause turned into one line saying what to do, and the client's progress bars
silenced per call. The source and the finder each use all three, so they live here, below both.

huggingface_hub is imported inside the functions, so ``zoo list`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from zoo import OfflineError, PullError, ZooError

__all__ = ["check_repo_id", "translate", "progress_class", "describe_patterns", "first_line"]


def check_repo_id(repo: str, where: str) -> None:
    """A :class:`PullError` when ``repo`` is not a Hub repository id by huggingface_hub's own rules
    (``validate_repo_id``: ORG/NAME or NAME, ASCII letters, digits, '-', '_', '.', no '--' or
    '..', at most 96 characters a part). ``where`` names it in the message, quoted (``zoo.shown_name``)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from zoo import shown_name

    if "@" in repo:
        raise PullError(f"{where}: a revision after '@' is not supported; zoo pins the commit the "
                        f"default branch is at. For another revision write a card by hand (source.revision)")
    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        reason = first_line(str(exc).replace(f"'{repo}'", shown_name(repo)))
        raise PullError(f"{where} does not name a Hugging Face repository ({reason}); write the id as "
                        f"ORG/NAME, as the Hub spells it") from None


def progress_class(quiet: bool) -> type[Any]:
    """huggingface_hub's tqdm, silenced when zoo is quiet or stderr is not a terminal.

    Passed per call rather than through ``disable_progress_bars()``, which would change the
    client's global state for everything else in the process (transformers included)."""
    from huggingface_hub.utils import tqdm

    if not quiet and sys.stderr is not None and sys.stderr.isatty():
        return tqdm

    class Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def describe_patterns(allow: Sequence[str] | None, ignore: Sequence[str] | None) -> str:
    parts = []
    if allow:
        parts.append(f"allow = {list(allow)}")
    if ignore:
        parts.append(f"ignore = {list(ignore)}")
    return " and ".join(parts) or "no pattern"


def translate(exc: Exception, where: str, *, name: str, repo: str, revision: str, offline: str | None,
              allow: list[str] | None = None, ignore: list[str] | None = None,
              repo_hint: str = "Check the card's source.repo",
              revision_hint: str = "Fix the card's source.revision") -> ZooError | None:
    """A zoo error saying what to do, for the huggingface_hub errors a user can cause; None for the rest.

    ``name`` is what `zoo pull` takes, ``offline`` names the switch that turned offline mode on (None
    when online); the hints say what to fix when the repo or the revision does not exist. The source
    and the finder (for ``hf:ORG/NAME``) share it."""
    from huggingface_hub import constants
    from huggingface_hub import errors as hf

    if isinstance(exc, ZooError):
        return None
    if offline and isinstance(exc, hf.LocalEntryNotFoundError):
        return OfflineError(
            f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
            + (" or only partly" if isinstance(exc, getattr(hf, "IncompleteSnapshotError", ())) else "")
            + f" and offline mode is on ({offline}). Run `zoo pull {name}` with network access first, "
            "or turn offline mode off"
        )
    if isinstance(exc, hf.GatedRepoError):
        return PullError(
            f"{where}: the repository is gated and your token does not grant access. Accept its terms at "
            f"{constants.ENDPOINT}/{repo} while logged in, then set HF_TOKEN to a token "
            "of that account (or run `hf auth login`) and pull again"
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return PullError(
            f"{where}: the repository does not exist on {constants.ENDPOINT}, or it is private. {repo_hint}; "
            "for a private or gated repository set HF_TOKEN to a token that can read it"
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return PullError(f"{where}: the repository has no branch, tag or commit {revision!r}. {revision_hint}")
    if isinstance(exc, hf.EntryNotFoundError) and not isinstance(exc, hf.LocalEntryNotFoundError):
        return PullError(
            f"{where}: a file that matches {describe_patterns(allow, ignore)} is listed but could not be downloaded "
            f"({first_line(exc, 2)}). Pull again later, or narrow the card's source.allow"
        )
    if _is_connection_error(exc):
        return PullError(
            f"{where}: could not reach the Hugging Face Hub at {constants.ENDPOINT} ({_root_cause(exc)}). "
            "Check your network connection and HF_ENDPOINT, or set ZOO_OFFLINE=1 (zoo --offline) to use "
            "only models already in the cache"
        )
    if isinstance(exc, (hf.HfHubHTTPError, hf.FileMetadataError, hf.LocalEntryNotFoundError)):
        return PullError(
            f"{where}: the Hub at {constants.ENDPOINT} answered with an error: {first_line(exc, 2)}. "
            "Pull again later; if HF_ENDPOINT is set, check that it points to a Hub-compatible server"
        )
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP stacks' "could not talk to the server" errors, for whichever stack this client uses."""
    from importlib import import_module

    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        try:
            loaded = import_module(module)
        except ImportError:
            continue
        found.extend(getattr(loaded, n) for n in names if isinstance(getattr(loaded, n, None), type))
    return tuple(found)


def _is_connection_error(exc: BaseException) -> bool:
    errors = _transport_errors()
    return any(isinstance(e, errors) for e in _chain(exc))


def _root_cause(exc: BaseException) -> str:
    last = _chain(exc)[-1]
    return f"{type(last).__name__}: {first_line(last, 2)}"


def first_line(exc: BaseException | str, count: int = 1) -> str:
    """The first ``count`` non-empty lines of an error's text, joined (its type's name when empty)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return " ".join(lines[:count]) if lines else (exc if isinstance(exc, str) else type(exc).__name__)
