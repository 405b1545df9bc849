"""Shared fixtures: every test gets its own ZOO_HOME, a fresh plugin host and an empty registry cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zoo import catalog, plugins

REPO = Path(__file__).resolve().parent.parent

_ZOO_ENV = ("ZOO_HOME", "ZOO_REGISTRY", "ZOO_DISABLE_PLUGINS", "ZOO_TRACE_PLUGINS", "ZOO_OFFLINE")


@pytest.fixture(autouse=True)
def zoo_env(tmp_path_factory, monkeypatch):
    """Isolate each test from the user's cache, registry files and plugin state."""
    for name in _ZOO_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("zoo_home")
    monkeypatch.setenv("ZOO_HOME", str(home))
    previous = plugins.reset_host(None)
    catalog.clear_cache()
    yield home
    plugins.reset_host(previous)
    catalog.clear_cache()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def make_distribution(site: Path, dist: str, module: str, source: str, *,
                      entry_name: str | None = None, version: str = "1.0") -> Path:
    """A real installed distribution on a sys.path folder: its module, METADATA and entry point."""
    write(site / f"{module}.py", source)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    write(info / "entry_points.txt", f"[zoo]\n{entry_name or module} = {module}\n")
    (info / "RECORD").write_text("", encoding="utf-8")
    return site


def run_zoo(*args: str, env: dict[str, str] | None = None, pythonpath: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real `zoo` console script in a subprocess."""
    full_env = {k: v for k, v in os.environ.items()}
    full_env.update(env or {})
    if pythonpath is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), full_env.get("PYTHONPATH")]))
    exe = Path(sys.executable).with_name("zoo")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


MINIMAL_CARD = """
    description = "A tiny test network"
    modality = "image"
    task = "image-classification"
    license = "MIT"
    params = 1000
    source = { type = "url", url = "http://127.0.0.1:1/tiny.pt" }
    adapter = { type = "torchvision", arch = "resnet18" }
    input = { size = [32, 32], mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5] }
    embedding = { node = "flatten", dim = 8 }
    head = "fc"
    stages = ["conv1", "layer1"]
"""


def card_toml(name: str, body: str = MINIMAL_CARD, extra: str = "") -> str:
    """A registry file with one model table."""
    quoted = name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
    return f"[models.{quoted}]\n" + textwrap.dedent(body).strip() + "\n" + textwrap.dedent(extra).strip() + "\n"
