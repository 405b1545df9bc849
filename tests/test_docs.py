"""The docs stay true: every hook is documented with its signature; CI runs what the README says."""

from __future__ import annotations

import inspect
import re

import pytest
from conftest import REPO

from zoo import hookspecs

README = (REPO / "README.md").read_text(encoding="utf-8")
HOOKS = [(name, fn) for name, fn in vars(hookspecs).items()
         if callable(fn) and hasattr(fn, "zoo_spec")]


def test_there_are_hooks():
    assert {name for name, _ in HOOKS} >= {"register_sources", "register_adapters", "register_models"}


@pytest.mark.parametrize("name, fn", HOOKS, ids=[n for n, _ in HOOKS])
def test_every_hook_is_documented_with_its_signature(name, fn):
    args = ", ".join(inspect.signature(fn).parameters)
    assert f"`{name}({args})`" in README, f"document `{name}({args})` in README.md's Hooks section"
    assert fn.__doc__ and fn.__doc__.strip(), f"hookspec {name} needs a docstring"


def test_ci_runs_the_readme_commands():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    install = next(b for b in blocks if "install.sh" in b).strip()
    test = next(b for b in blocks if "pytest" in b).strip()
    assert install in ci and test in ci
    script = (REPO / "install.sh").read_text(encoding="utf-8")
    assert 'pip install -e ".[dev]"' in script and "espeak-ng" in script  # the one command installs it all
