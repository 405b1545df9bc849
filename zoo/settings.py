"""Where zoo keeps things, read from the environment each time (tests and users change it)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["zoo_home", "user_registry_paths", "offline"]


def zoo_home() -> Path:
    """``$ZOO_HOME``, else the platform's user cache folder for zoo."""
    configured = os.environ.get("ZOO_HOME")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zoo", appauthor=False))


def user_registry_paths() -> list[Path]:
    """User registry files in merge order: ``$ZOO_HOME/registry.d/*.toml`` (sorted), then ``$ZOO_REGISTRY``.

    ``ZOO_REGISTRY`` holds one or more paths separated by the platform's path separator.
    """
    paths = sorted((zoo_home() / "registry.d").glob("*.toml"))
    for item in os.environ.get("ZOO_REGISTRY", "").split(os.pathsep):
        if item.strip():
            paths.append(Path(item.strip()).expanduser())
    return paths


def offline() -> bool:
    """``ZOO_OFFLINE=1``: never open a socket; cached models load, uncached ones fail clearly."""
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")
