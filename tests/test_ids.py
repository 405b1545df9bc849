"""Model ids are checked before anything is written: a refused `hf:` id (or any finder's) leaves no
lock, file or folder under $ZOO_HOME, in one line naming the id, whichever command or API took it.

huggingface_hub's client is pointed at the local Hub server (tests/hubserver.py), which counts
requests: a refused id asks it nothing.
"""

from __future__ import annotations

import types
from pathlib import Path

import hubserver
import pytest
from conftest import run_zoo

import zoo
from zoo import hookimpl
from zoo.errors import PullError, ZooError
from zoo.plugins import get_host

hub = hubserver.hub

HOSTILE = {
    "traversal": "../../etc",
    "dot dot inside": "acme/../x",
    "dot": ".",
    "three parts": "acme/x/y",
    "leading slash": "/x",
    "trailing slash": "acme/",
    "empty": "",
    "empty name": "acme//x",
    "backslash": "acme\\x",
    "space": "acme/tiny model",
    "newline": "acme/x\n",
    "NUL": "acme/x\x00",
    "escape sequence": "acme/x\x1b[2J",
    "5,000 characters": "a" * 5000,
    "a name over 96 characters": "acme/" + "b" * 97,
    "Cyrillic a": "\u0430cme/x",
    "fullwidth a": "\uff41cme/x",
    "right-to-left override": "acme/x\u202egnp",
    "double dash": "acme--x/y",
    ".git": "acme/x.git",
    "revision suffix": "acme/x@main",
    "PR revision suffix": "acme/x@refs/pr/1",
}


def everything(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_hf_id_is_refused_in_one_line_before_anything_is_written(hub, zoo_env, case):
    model = f"hf:{HOSTILE[case]}"
    for call in (zoo.pull, zoo.get_card, zoo.load):
        with pytest.raises(PullError) as caught:
            call(model)
        message = str(caught.value)
        assert "\n" not in message and "\x1b" not in message and "\x00" not in message, message
        assert len(message) < 500 and ("Hugging Face repository" in message or "revision after '@'" in message)
        assert "ZOO_HOME" not in message  # the id is to blame, not the cache
    assert everything(zoo_env) == []
    assert hub.count == 0


@pytest.mark.slow
def test_every_command_refuses_the_id_before_writing(hub, zoo_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where `zoo finetune` would make runs/ and `zoo export` its file
    model = "hf:" + "a" * 5000
    for args in (["show", model], ["pull", model], ["finetune", model, "--data", "digits"],
                 ["probe", model, "--data", "digits"], ["fewshot", model, "--labels", "a,b"],
                 ["embed", model, "digits", "--db", str(tmp_path / "db")], ["export", model], ["bench", model]):
        result = run_zoo(*args)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert result.returncode == 1 and len(lines) == 1, (args, result.stderr)
        assert "ZOO_HOME" not in lines[0]
        if args[0] not in ("embed", "export", "bench"):  # these first ask whether MODEL is a run folder
            assert "does not name a Hugging Face repository" in lines[0] and "5,003 characters" in lines[0]
            assert len(lines[0]) < 500
    assert everything(zoo_env) == [] and everything(tmp_path) == [] and hub.count == 0


def test_an_id_the_hub_does_not_know_leaves_no_file_named_after_it(hub, zoo_env):
    with pytest.raises(PullError, match="does not exist"):
        zoo.pull("hf:acme/no-such-model", quiet=True)
    assert not [name for name in everything(zoo_env) if "no-such-model" in name]


def test_a_finder_s_check_runs_before_anything_and_one_without_leaves_no_file_named_after_the_id(zoo_env):
    asked: list[str] = []

    class Strict:
        prefix = "strict"

        def check(self, ref):
            asked.append(ref)
            if not ref.isalnum():
                raise PullError(f"strict:{ref!r} is not a strict id")

        def find(self, ref, cache):
            raise AssertionError("find() after a refused check")

    class Lax:
        prefix = "lax"

        def find(self, ref, cache):
            raise PullError(f"lax: no model {ref!r}")

    module = types.ModuleType("idfinders")
    module.register_finders = hookimpl(lambda register: (register(Strict()), register(Lax())))
    get_host().register(module)
    try:
        with pytest.raises(PullError, match="is not a strict id"):
            zoo.get_card("strict:../x")
        assert asked == ["../x"] and everything(zoo_env) == []
        with pytest.raises(ZooError, match="lax: no model"):
            zoo.get_card("lax:../../evil")
        assert not [name for name in everything(zoo_env) if "evil" in name]
    finally:
        get_host().unregister("idfinders")


@pytest.mark.parametrize("repo", ["../../etc", "acme/x/y", "acme/x@main", "a" * 500])
def test_a_card_whose_hf_repo_is_no_repo_id_is_refused_before_its_pull_writes_anything(hub, zoo_env, tmp_path, repo):
    from conftest import MINIMAL_CARD, card_toml, write

    body = MINIMAL_CARD.replace('source = { type = "url", url = "http://127.0.0.1:1/tiny.pt" }',
                                f'source = {{ type = "hf", repo = "{repo}" }}')
    registry = write(tmp_path / "r.toml", card_toml("hostile", body))
    for force in (False, True):
        with pytest.raises(PullError, match=r"model 'hostile': source.repo .* does not name a Hugging Face repository"
                                            r"|revision after '@'") as caught:
            zoo.pull("hostile", registry_files=[registry], force=force)
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 500
    assert everything(zoo_env) == [] and hub.count == 0
