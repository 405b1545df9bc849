"""Registry files: parsing, every validation error (with file, model and key), merging, queries."""

from __future__ import annotations

import pytest
from conftest import MINIMAL_CARD, card_toml, write

from zoo import RegistryError, UnknownModelError
from zoo.card import Origin
from zoo.catalog import load_registry
from zoo.plugins import PluginHost
from zoo.registries import Registry, merge_cards, parse_registry_file, parse_registry_text, parse_size

USER = Origin("user", "test")


def parse(text: str, label: str = "test.toml"):
    return parse_registry_text(text, USER, label)


def error_of(text: str) -> str:
    with pytest.raises(RegistryError) as info:
        parse(text)
    return str(info.value)


def test_a_good_card_becomes_a_frozen_card():
    (card,) = parse(card_toml("tiny", extra="""
        files = [{ name = "tiny.pt", sha256 = "%s", size = 12 }]
        features = { layer1 = 4 }
        metrics = { "cifar-10/acc@1" = 91.5 }
        tags = ["test"]
    """ % ("ab" * 32)))
    assert card.name == "tiny"
    assert card.input.size == (32, 32) and card.input.mean == (0.5, 0.5, 0.5)
    assert card.input.interpolation == "bilinear"  # the default
    assert card.embedding.node == "flatten" and card.embedding.dim == 8
    assert card.stages == ("conv1", "layer1") and card.head == "fc"
    assert card.source.type == "url" and card.source.get("url") == "http://127.0.0.1:1/tiny.pt"
    assert card.files[0].sha256 == "ab" * 32 and card.files[0].size == 12
    assert card.metric("acc@1") == 91.5 and card.metric("cifar-10/acc@1") == 91.5
    with pytest.raises(AttributeError):
        card.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        card.features["layer9"] = 1  # type: ignore[index]
    assert card.to_dict()["source"] == {"type": "url", "url": "http://127.0.0.1:1/tiny.pt"}


def test_unknown_key_names_file_model_key_and_suggests():
    message = error_of(card_toml("tiny", extra='descripton = "typo"'))
    assert "test.toml" in message and "'tiny'" in message and "'descripton'" in message
    assert "unknown key" in message and "Did you mean 'description'" in message


def test_unknown_nested_key_is_located():
    body = MINIMAL_CARD.replace('dim = 8 }', 'dim = 8, dims = 3 }')
    message = error_of(card_toml("tiny", body))
    assert "'embedding.dims'" in message and "unknown key" in message


def test_wrong_type_is_named():
    body = MINIMAL_CARD.replace("params = 1000", 'params = "1000"')
    message = error_of(card_toml("tiny", body))
    assert "'params'" in message and "expected an integer" in message and "'1000'" in message


def test_bool_is_not_an_integer():
    body = MINIMAL_CARD.replace("params = 1000", "params = true")
    assert "expected an integer" in error_of(card_toml("tiny", body))


def test_missing_required_field():
    body = MINIMAL_CARD.replace('license = "MIT"\n', "")
    message = error_of(card_toml("tiny", body))
    assert "'license'" in message and "required field is missing" in message


def test_repeated_stage_names():
    body = MINIMAL_CARD.replace('stages = ["conv1", "layer1"]', 'stages = ["conv1", "layer1", "conv1"]')
    message = error_of(card_toml("tiny", body))
    assert "'stages'" in message and "repeat" in message and "conv1" in message


def test_cut_point_without_dim():
    body = MINIMAL_CARD.replace('embedding = { node = "flatten", dim = 8 }', 'embedding = { node = "flatten" }')
    message = error_of(card_toml("tiny", body))
    assert "'embedding.dim'" in message and "no dim" in message


def test_text_cards_need_pooling_and_max_length():
    body = (MINIMAL_CARD.replace('modality = "image"', 'modality = "text"')
            .replace('input = { size = [32, 32], mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5] }',
                     'input = { max_length = 128, tokenizer = "wordpiece" }'))
    assert "'embedding.pooling'" in error_of(card_toml("tiny", body))
    good = body.replace('dim = 8 }', 'dim = 8, pooling = "mean" }')
    (card,) = parse(card_toml("tiny", good))
    assert card.input.max_length == 128 and card.embedding.pooling == "mean"
    image_keys = good.replace('max_length = 128', 'size = [1, 1], max_length = 128')
    assert "'input.size'" in error_of(card_toml("tiny", image_keys))


@pytest.mark.parametrize("replacement, key", [
    ('modality = "video"', "modality"),
    ('metrics = { "acc@1" = 1.0 }', "metrics.acc@1"),
    ('files = [{ name = "a", sha256 = "xyz" }]', "files[0].sha256"),
    ('files = [{ name = "a" }, { name = "a" }]', "files"),
    ('head = "layer1"', "head"),
    ('replace = "yes"', "replace"),
])
def test_other_invalid_values_are_located(replacement, key):
    field = replacement.split(" =")[0]
    lines = [ln for ln in MINIMAL_CARD.strip().splitlines() if not ln.strip().startswith(field + " ")]
    message = error_of(card_toml("tiny", "\n".join(lines), extra=replacement))
    assert f"'{key}'" in message, message


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path / "broken.toml", "[models.x\n")
    with pytest.raises(RegistryError, match="broken.toml: invalid TOML"):
        parse_registry_file(path, USER)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(RegistryError, match="registry file not found"):
        parse_registry_file(tmp_path / "nope.toml", USER)


def test_unknown_top_level_key():
    assert "[models.NAME]" in error_of("[model.tiny]\nx = 1\n")


def test_replace_only_in_user_files():
    with pytest.raises(RegistryError, match="only user registry files may replace"):
        parse_registry_text(card_toml("tiny", extra="replace = true"), Origin("plugin", "p"), "p")


# ----------------------------------------------------------------- merging


def test_collision_names_both_origins():
    a = parse_registry_text(card_toml("tiny"), Origin("plugin", "alpha"), "alpha")
    b = parse_registry_text(card_toml("tiny"), Origin("plugin", "beta"), "beta")
    with pytest.raises(RegistryError) as info:
        merge_cards(a + b)
    assert "plugin 'alpha'" in str(info.value) and "plugin 'beta'" in str(info.value)
    assert "ZOO_DISABLE_PLUGINS" in str(info.value)


def test_user_file_overrides_builtin_only_when_it_says_so(tmp_path):
    path = write(tmp_path / "mine.toml", card_toml("efficientnet_lite0"))
    with pytest.raises(RegistryError) as info:
        load_registry([path])
    message = str(info.value)
    assert "built-in registry" in message and "mine.toml" in message and "replace = true" in message

    write(path, card_toml("efficientnet_lite0", extra="replace = true"))
    registry = load_registry([path])
    assert registry.card("efficientnet_lite0").params == 1000
    assert registry.card("efficientnet_lite0").origin.kind == "user"


def test_user_files_merge_in_order(zoo_env, tmp_path, monkeypatch):
    write(zoo_env / "registry.d" / "10-a.toml", card_toml("mine-a"))
    env_file = write(tmp_path / "env.toml", card_toml("mine-a", extra="replace = true\nnotes = 'from env'"))
    cli_file = write(tmp_path / "cli.toml", card_toml("mine-b"))
    monkeypatch.setenv("ZOO_REGISTRY", str(env_file))
    registry = load_registry([cli_file])
    assert registry.card("mine-a").notes == "from env"
    assert registry.card("mine-b").origin.path == cli_file
    assert "resnet50" in registry  # the built-in entries are still there


def test_plugin_owned_fields_are_checked_with_the_plugins_schema(tmp_path):
    body = MINIMAL_CARD.replace('url = "http://127.0.0.1:1/tiny.pt"', 'link = "http://x"')
    path = write(tmp_path / "mine.toml", card_toml("tiny", body))
    with pytest.raises(RegistryError) as info:
        load_registry([path])
    assert "'source.link'" in str(info.value) or "'source.url'" in str(info.value)
    assert "mine.toml" in str(info.value)


def test_unknown_source_type_makes_the_model_unavailable_not_fatal(tmp_path):
    body = MINIMAL_CARD.replace('type = "url"', 'type = "torchvison"')
    path = write(tmp_path / "mine.toml", card_toml("tiny", body))
    registry = load_registry([path], host=PluginHost())
    assert "tiny" in registry
    assert "source type 'torchvison'" in registry.unavailable["tiny"]
    assert "resnet50" not in registry.unavailable


# ----------------------------------------------------------------- queries


@pytest.fixture
def small_registry():
    cards = parse(
        card_toml("alpha-net", extra='metrics = { "imagenet-1k/acc@1" = 70.0 }\ntags = ["cnn"]\nfamily = "ResNet"\n'
                                     'gflops = 1.8')
        + card_toml("beta-net", MINIMAL_CARD.replace("params = 1000", "params = 50000000").replace(
                        'license = "MIT"', 'license = "Apache-2.0"'),
                    extra='metrics = { "imagenet-1k/acc@1" = 80.0 }\nfamily = "resnet"\ngflops = 4.1')
        + card_toml("org/gamma-transformer", MINIMAL_CARD.replace("A tiny test network", "A vision transformer"))
    )
    return Registry({c.name: c for c in cards})


def test_select_by_wildcard_and_substring(small_registry):
    assert [c.name for c in small_registry.select("*-net")] == ["alpha-net", "beta-net"]
    assert [c.name for c in small_registry.select("transformer")] == ["org/gamma-transformer"]
    assert [c.name for c in small_registry.select("VISION")] == ["org/gamma-transformer"]


def test_select_filters(small_registry):
    assert [c.name for c in small_registry.select(tag="cnn")] == ["alpha-net"]
    assert [c.name for c in small_registry.select(max_params="30M")] == ["alpha-net", "org/gamma-transformer"]
    assert small_registry.select(modality="text") == []
    assert [c.name for c in small_registry.select(source="url", plugin="user")] == [
        "alpha-net", "beta-net", "org/gamma-transformer"]


def test_finding_a_backbone_by_property(small_registry):
    names = lambda **kw: [c.name for c in small_registry.select(**kw)]  # noqa: E731
    assert names(family="RESNET") == ["alpha-net", "beta-net"]  # any case
    assert names(license="apache-2.0") == ["beta-net"]
    assert names(min_acc=75) == ["beta-net"] and names(min_acc=60) == ["alpha-net", "beta-net"]
    assert names(max_gflops=2.0) == ["alpha-net"]  # a card without gflops is left out
    assert names(search="vision TRANSFORMER") == ["org/gamma-transformer"] and names(search="cnn resnet") == [
        "alpha-net"]
    assert names(sort="gflops") == ["alpha-net", "beta-net", "org/gamma-transformer"]  # unknown last
    assert names(family="resnet", min_acc=75, sort="gflops") == ["beta-net"]
    assert small_registry.values_of("family") == ["ResNet", "resnet"]


def test_sorting(small_registry):
    assert [c.name for c in small_registry.select(sort="params")][-1] == "beta-net"
    by_metric = [c.name for c in small_registry.select(sort="acc@1")]
    assert by_metric == ["beta-net", "alpha-net", "org/gamma-transformer"]  # best first, missing last
    with pytest.raises(RegistryError, match="imagenet-1k/acc@1"):
        small_registry.select(sort="f1")


def test_parse_size():
    assert parse_size("30M") == 30_000_000
    assert parse_size("1.5b") == 1_500_000_000
    assert parse_size("250k") == 250_000
    assert parse_size("1234") == 1234
    with pytest.raises(RegistryError, match="30M"):
        parse_size("thirty")


def test_unknown_name_suggests(small_registry):
    with pytest.raises(UnknownModelError) as info:
        small_registry.card("alpha-nett")
    assert info.value.suggestions[0] == "alpha-net"
    assert "Did you mean: alpha-net" in str(info.value)
    with pytest.raises(UnknownModelError) as info:
        small_registry.card("gamma-transformer")
    assert "org/gamma-transformer" in info.value.suggestions


def test_builtin_registry_suggests_namespaced_names():
    registry = load_registry()
    assert "google-bert/bert-base-uncased" in registry.suggest("bert-base-uncased")
    assert "resnet50" in registry.suggest("resnet5")


def test_zoo_registry_stays_callable_whatever_is_imported():
    import subprocess
    import sys

    code = "import zoo, zoo.registries, zoo.catalog, zoo.card; assert callable(zoo.registry); print(len(zoo.registry()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 10
