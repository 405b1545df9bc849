"""Plugins: real distributions discovered through their entry points, broken ones, strictness, switches."""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path

import pytest
from conftest import MINIMAL_CARD, card_toml, make_distribution, run_zoo

from zoo import Field, PluginError, RegistryError, hookimpl
from zoo.catalog import load_registry
from zoo.plugins import PluginHost, PluginWarning

THIRD_PARTY = '''
from zoo import hookimpl, Field

class TarballSource:
    name = "tarball"
    fields = {"url": Field(str, required=True)}

@hookimpl
def register_sources(register):
    register(TarballSource())

@hookimpl
def register_models(register):
    register("""
[models.acme-net]
description = "ACME's in-house backbone"
modality = "image"
task = "image-classification"
license = "MIT"
params = 1234
source = { type = "tarball", url = "http://127.0.0.1:1/acme.tar" }
adapter = { type = "torchvision", arch = "resnet18" }
input = { size = [64, 64], mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5] }
embedding = { node = "flatten", dim = 16 }
stages = ["stem", "body"]
""")
'''


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where tests install real distributions."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_third_party_distribution_contributes_a_model_in_process(site):
    make_distribution(site, "zoo-acme", "zoo_acme", THIRD_PARTY)
    host = PluginHost()
    info = {p.name: p for p in host.plugins()}["zoo_acme"]
    assert (info.origin, info.version, info.distribution, info.status) == ("entry point", "1.0", "zoo-acme", "ok")
    assert info.hooks == ("register_models", "register_sources")
    registry = load_registry(host=host)
    card = registry.card("acme-net")
    assert card.origin.kind == "plugin" and card.origin.name == "zoo_acme"
    assert "acme-net" not in registry.unavailable  # its own source type is provided
    assert host.sources()["tarball"].plugin == "zoo_acme"
    assert host.sources()["torchvision"].plugin == "zoo_torchvision"


def test_third_party_distribution_through_the_real_cli(tmp_path):
    site = make_distribution(tmp_path / "site", "zoo-acme", "zoo_acme", THIRD_PARTY)
    listed = run_zoo("list", "--plugin", "zoo_acme", "--json", pythonpath=site)
    assert listed.returncode == 0, listed.stderr
    assert [m["name"] for m in json.loads(listed.stdout)] == ["acme-net"]
    shown = run_zoo("plugins", "--json", pythonpath=site)
    plugins = {p["name"]: p for p in json.loads(shown.stdout)}
    assert plugins["zoo_acme"]["origin"] == "entry point"
    assert plugins["zoo_torchvision"]["origin"] == "built-in"


def test_a_plugin_that_raises_on_import_is_reported_not_fatal(tmp_path):
    site = make_distribution(tmp_path / "site", "zoo-broken", "zoo_broken", "raise RuntimeError('boom at import')\n")
    result = run_zoo("list", pythonpath=site)
    assert result.returncode == 0
    assert "resnet50" in result.stdout
    warning_lines = [ln for ln in result.stderr.splitlines() if "zoo_broken" in ln]
    assert len(warning_lines) == 1, result.stderr
    assert "RuntimeError: boom at import" in warning_lines[0]
    assert "ZOO_DISABLE_PLUGINS=zoo_broken" in warning_lines[0]
    assert "Traceback" not in result.stderr
    listing = run_zoo("plugins", "--json", pythonpath=site)
    broken = {p["name"]: p for p in json.loads(listing.stdout)}["zoo_broken"]
    assert broken["status"] == "broken" and "boom at import" in broken["error"]
    quiet = run_zoo("list", pythonpath=site, env={"ZOO_DISABLE_PLUGINS": "zoo_broken"})
    assert quiet.returncode == 0 and "zoo_broken" not in quiet.stderr


def test_a_misspelled_hook_fails_at_load_with_the_plugins_name(site):
    make_distribution(site, "zoo-typo", "zoo_typo", """
from zoo import hookimpl

@hookimpl
def register_modles(register):
    pass
""")
    with pytest.warns(PluginWarning) as caught:
        host = PluginHost()
    message = str(caught[0].message)
    assert "'zoo_typo'" in message and "register_modles" in message and "unknown hook" in message
    listed = message.split("zoo's hooks: ")[1]
    assert "register_models" in listed and "register_modles" not in listed  # the typo is not one of zoo's
    info = {p.name: p for p in host.plugins()}["zoo_typo"]
    assert info.status == "broken"


def test_a_hook_with_a_wrong_argument_is_rejected():
    host = PluginHost(load_entrypoints=False)

    class Wrong:
        @hookimpl
        def register_models(self, register, extra):
            pass

    with pytest.raises(PluginError, match="invalid hook"):
        host.register(Wrong(), name="wrong")


def test_a_plugin_that_raises_inside_a_hook_is_skipped():
    host = PluginHost(load_entrypoints=False)
    module = types.ModuleType("exploding")

    @hookimpl
    def register_models(register):
        register(card_toml("half-registered"))
        raise KeyError("oops")

    module.register_models = register_models
    host.register(module)
    with pytest.warns(PluginWarning, match="raised in register_models: KeyError"):
        assert host.model_contributions() == []  # nothing of a failing hook call is kept
    assert {p.name: p.status for p in host.plugins()}["exploding"] == "broken"


def test_invalid_model_entries_mark_the_plugin_broken():
    host = PluginHost()
    module = types.ModuleType("badentries")
    module.register_models = hookimpl(lambda register: register(card_toml("bad", extra="colour = 1")))
    host.register(module)
    with pytest.warns(PluginWarning, match="badentries.*unknown key"):
        registry = load_registry(host=host)
    assert "bad" not in registry and "resnet50" in registry


def test_a_plugin_card_with_a_bad_component_field_marks_only_that_plugin_broken():
    host = PluginHost()
    module = types.ModuleType("badfield")
    bad = card_toml("badfield-net", MINIMAL_CARD.replace('arch = "resnet18"', 'arch = "resnet18", colour = 1'))
    module.register_models = hookimpl(lambda register: register(bad))
    host.register(module)
    with pytest.warns(PluginWarning, match="badfield.*invalid model entry"):
        registry = load_registry(host=host)  # zoo list, show, pull... all go on
    assert "badfield-net" not in registry and "resnet50" in registry
    record = {p.name: p for p in host.plugins()}["badfield"]
    assert record.status == "broken" and "colour" in record.error


def test_register_and_unregister_an_in_process_plugin():
    host = PluginHost(load_entrypoints=False)
    module = types.ModuleType("inproc")
    module.register_models = hookimpl(lambda register: register({"inproc-net": _table()}))
    try:
        host.register(module)
        assert load_registry(host=host).card("inproc-net").origin.name == "inproc"
    finally:
        host.unregister("inproc")
    assert "inproc-net" not in load_registry(host=host)


def _table() -> dict:
    import tomllib
    return tomllib.loads(MINIMAL_CARD)


def test_two_plugins_with_the_same_model_name_name_both(site):
    for dist in ("one", "two"):
        make_distribution(site, f"zoo-{dist}", f"zoo_{dist}", f"""
from zoo import hookimpl
@hookimpl
def register_models(register):
    register({{"shared-net": {_table()!r}}})
""")
    with pytest.raises(RegistryError) as info:
        load_registry(host=PluginHost())
    assert "plugin 'zoo_one'" in str(info.value) and "plugin 'zoo_two'" in str(info.value)


def test_a_plugin_model_colliding_with_a_builtin_names_both():
    host = PluginHost()
    module = types.ModuleType("copycat")
    module.register_models = hookimpl(lambda register: register({"efficientnet_lite0": _table()}))
    host.register(module)
    with pytest.raises(RegistryError, match=r"built-in registry.*plugin 'copycat'"):
        load_registry(host=host)


def test_two_plugins_with_the_same_source_type_name_both():
    host = PluginHost()

    class Url:
        name = "url"
        fields: dict = {}

    module = types.ModuleType("urls_again")
    module.register_sources = hookimpl(lambda register: register(Url()))
    host.register(module)
    with pytest.raises(PluginError, match=r"'zoo_files'.*'urls_again'|'urls_again'.*'zoo_files'"):
        host.sources()


def test_invalid_components_are_refused():
    host = PluginHost(load_entrypoints=False)

    class NoName:
        fields = {"x": Field(str)}

    class BadFields:
        name = "bad"
        fields = {"x": str}

    for i, component in enumerate((NoName(), BadFields())):
        module = types.ModuleType(f"bad{i}")
        module.register_adapters = hookimpl(lambda register, c=component: register(c))
        host.register(module)
    with pytest.warns(PluginWarning) as caught:
        assert host.adapters() == {}
    messages = " ".join(str(w.message) for w in caught)
    assert "needs a `name`" in messages and "must be a dict of name -> zoo.Field" in messages


def test_disable_all_plugins(monkeypatch):
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "1")
    host = PluginHost()
    status = {p.name: p.status for p in host.plugins()}
    assert status.pop("zoo.data.formats") == "ok"  # zoo's own default plugins are part of the core
    assert status.pop("zoo.tasks.builtin") == "ok"
    assert set(status.values()) == {"disabled"} and "zoo_hf" in status
    registry = load_registry(host=host)
    assert not any(name.startswith("timm/") for name in registry)
    assert "resnet50" not in registry  # the torchvision plugin's catalogue
    assert "no loaded plugin provides source type 'hf'" in registry.unavailable["google-bert/bert-base-uncased"]


def test_disable_some_plugins(monkeypatch):
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "zoo_timm, zoo_hf")
    host = PluginHost()
    status = {p.name: p.status for p in host.plugins()}
    assert status["zoo_timm"] == status["zoo_hf"] == "disabled" and status["zoo_torchvision"] == "ok"
    registry = load_registry(host=host)
    assert "timm/resnet50.a1_in1k" not in registry
    assert "resnet50" not in registry.unavailable


def test_timm_models_are_listed_when_timm_is_importable():
    registry = load_registry(host=PluginHost())
    timm_models = [c for c in registry.values() if c.origin.name == "zoo_timm"]
    assert {c.name for c in timm_models} >= {"timm/resnet50.a1_in1k", "timm/convnext_tiny.fb_in1k",
                                              "timm/efficientnet_b0.ra_in1k",
                                              "timm/vit_small_patch16_224.augreg_in21k_ft_in1k"}


def test_trace_switch_prints_hook_calls(tmp_path):
    result = run_zoo("list", env={"ZOO_TRACE_PLUGINS": "1"})
    assert result.returncode == 0
    assert "zoo trace: plugin 'zoo_timm' register_models -> 1 registered" in result.stderr


def test_no_warnings_from_a_clean_install():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PluginHost().plugins()


def test_built_in_plugins_use_only_the_public_api():
    """The plugins in plugins/ are written as a third party's would be: every zoo name they use is
    imported from the top-level ``zoo`` package and listed in ``zoo.__all__``."""
    import ast

    import zoo

    root = Path(__file__).resolve().parents[1] / "plugins"
    used: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo":
                assert node.module == "zoo", f"{path.relative_to(root)} imports {node.module}: not public"
                for alias in node.names:
                    used.setdefault(alias.name, []).append(path.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] != "zoo" or alias.name == "zoo", f"{path}: import {alias.name}"
    assert set(used) <= set(zoo.__all__), sorted(set(used) - set(zoo.__all__))
    for name in used:  # each resolves (lazily) to a real object
        assert getattr(zoo, name) is not None


def _catalogue(path: Path, models: dict) -> Path:
    path.write_text(json.dumps({"catalogue": 1, "models": models}), encoding="utf-8")
    return path


def test_a_json_catalogue_is_listed_unchecked_and_checked_when_used(tmp_path):
    """A generated catalogue's cards are built without checks (listing thousands stays fast); a
    card is checked when first used, and a bad one then names the plugin, the file and the field."""
    good = {**_table(), "family": "resnet", "gflops": 1.8, "weights_mb": 44.7}
    bad = {**_table(), "params": "many"}
    path = _catalogue(tmp_path / "catalog.json", {"cat-good": good, "cat-bad": bad})
    host = PluginHost()
    module = types.ModuleType("cataloguer")
    module.register_models = hookimpl(lambda register: register(path))
    host.register(module)
    registry = load_registry(host=host)
    assert {"cat-good", "cat-bad"} <= set(registry)  # listed
    card = registry.card("cat-good")
    assert (card.family, card.gflops, card.weights_mb, card.origin.name) == ("resnet", 1.8, 44.7, "cataloguer")
    with pytest.raises(RegistryError, match=r"plugin 'cataloguer' \(.*catalog.json\).*cat-bad.*params.*expected an integer"):
        registry.card("cat-bad")


def test_an_unreadable_catalogue_marks_its_plugin_broken(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text('{"catalogue": 1, "models": ', encoding="utf-8")
    host = PluginHost()
    module = types.ModuleType("brokencat")
    module.register_models = hookimpl(lambda register: register(path))
    host.register(module)
    with pytest.warns(PluginWarning, match="brokencat.*cannot read the model catalogue"):
        registry = load_registry(host=host)
    assert "efficientnet_lite0" in registry
    assert {p.name: p.status for p in host.plugins()}["brokencat"] == "broken"


def test_the_fast_builder_and_the_checking_parser_make_equal_cards():
    """card_from_table (catalogues) and parse_card (every other file) must agree: checked over the
    hand-written registry, which has every kind of card (image, text, package files, pooling)."""
    import tomllib

    from zoo.card import Origin
    from zoo.registries import builtin_registry_path, card_from_table, parse_card
    from zoo.schema import Location

    origin = Origin("plugin", "x")
    tables = tomllib.loads(builtin_registry_path().read_text(encoding="utf-8"))["models"]
    for name, table in tables.items():
        assert card_from_table(name, table, origin) == parse_card(name, table, origin, Location("x", name)), name


DROPPED = {  # what the entry gets wrong: (text replaced in MINIMAL_CARD, by what, the key the error names)
    "unknown key": ("params = 1000", "params = 1000\n    colour = 1", "colour"),
    "wrong type": ("params = 1000", 'params = "many"', "params"),
    "adapter field": ('arch = "resnet18"', 'arch = "resnet18", colour = 1', "adapter.colour"),
}


@pytest.mark.parametrize("case", list(DROPPED))
def test_zoo_plugins_shows_a_plugin_whose_entry_was_dropped_as_broken_with_why(tmp_path, case):
    """The entry is dropped when the registry loads; `zoo plugins` loads it too, so it never says `ok`
    for a plugin that every other command warns about."""
    old, new, key = DROPPED[case]
    body = MINIMAL_CARD.replace(old, new)
    source = f"from zoo import hookimpl\n\n@hookimpl\ndef register_models(register):\n    register({card_toml('dropped-net', body)!r})\n"
    site = make_distribution(tmp_path / "site", "zoo-dropper", "zoo_dropper", source)
    shown = run_zoo("plugins", pythonpath=site)
    assert shown.returncode == 0, shown.stderr
    row = next(ln for ln in shown.stdout.splitlines() if ln.startswith("zoo_dropper"))
    assert row.split()[-2:] == ["broken", "-"]  # name, version, origin, status, hooks
    assert any(ln.startswith("zoo_dropper: ") and "dropped-net" in ln for ln in shown.stderr.splitlines())
    listed = {p["name"]: p for p in json.loads(run_zoo("plugins", "--json", pythonpath=site).stdout)}
    assert listed["zoo_dropper"]["status"] == "broken"
    assert "dropped-net" in listed["zoo_dropper"]["error"] and repr(key) in listed["zoo_dropper"]["error"]
    assert listed["zoo_torchvision"]["status"] == "ok"
