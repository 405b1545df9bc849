"""The `hf` source against a real Hub-compatible server on 127.0.0.1 (tests/hubserver.py).

huggingface_hub's real client does the HTTP; the files land in the standard HF cache under a
per-test HF_HOME. In-process tests call the source directly; subprocess tests run `zoo pull`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import run_zoo, write
from hubserver import TELEMETRY, HubServer, git_blob_sha1, hub  # noqa: F401 - `hub` is a fixture

from zoo.cache import Cache
from zoo.catalog import load_registry
from zoo.card import ModelCard
from zoo.errors import IntegrityError, OfflineError, PullError
from zoo_hf.source import HubSource

REPO = "acme/tiny-bert"
FILES = {
    "config.json": b'{"model_type": "bert", "hidden_size": 8}',
    "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(256)) * 4,
    "tokenizer.json": b'{"version": "1.0", "model": {"type": "WordPiece"}}',
    "pytorch_model.bin": b"PK\x03\x04 not wanted: the card allows safetensors only",
    "README.md": b"# tiny-bert\n",
}
WANTED = ["config.json", "model.safetensors", "tokenizer.json"]

CARD = """
[models."acme/tiny-bert"]
description = "A tiny BERT served by the test Hub"
modality = "text"
task = "feature-extraction"
license = "Apache-2.0"
params = 1000
source = {{ type = "hf", repo = "{repo}", revision = "{revision}", allow = {allow} }}
adapter = {{ type = "transformers", arch = "BertModel" }}
input = {{ max_length = 32, tokenizer = "wordpiece" }}
embedding = {{ node = "last_hidden_state", dim = 8, pooling = "mean" }}
stages = ["embeddings", "encoder.layer.0"]
"""


def registry_file(tmp_path: Path, *, repo: str = REPO, revision: str = "main",
                  allow: list[str] | None = None) -> Path:
    allow_toml = json.dumps(allow if allow is not None else ["config.json", "*.safetensors", "tokenizer.json"])
    return write(tmp_path / "registry" / "hf.toml", CARD.format(repo=repo, revision=revision, allow=allow_toml))


def card(tmp_path: Path, **kwargs: object) -> ModelCard:
    return load_registry([registry_file(tmp_path, **kwargs)]).card("acme/tiny-bert")  # type: ignore[arg-type]


def fetch(tmp_path: Path, *, offline: bool = False, **kwargs: object):
    return HubSource().fetch(card(tmp_path, **kwargs), Cache(offline=offline, quiet=True))


def hf_home() -> Path:
    return Path(os.environ["HF_HOME"])


def resolve_paths(hub: HubServer) -> set[str]:
    return {r.path.rsplit("/", 1)[-1] for r in hub.requests if "/resolve/" in r.path}


# -- the source itself ----------------------------------------------------------------------------

def test_fetch_downloads_the_allowed_files_into_the_hf_cache(tmp_path, hub):
    sha = hub.add_repo(REPO, FILES)
    fetched = fetch(tmp_path)

    snapshot = hf_home() / "hub" / "models--acme--tiny-bert" / "snapshots" / sha
    assert fetched.root == snapshot and fetched.resolved == sha
    assert (fetched.model, fetched.source, fetched.locator, fetched.revision) == ("acme/tiny-bert", "hf", REPO, "main")
    assert [f.name for f in fetched.files] == WANTED
    for item in fetched.files:
        assert item.path == snapshot / item.name and item.path.read_bytes() == FILES[item.name]
        assert item.sha256 == hashlib.sha256(FILES[item.name]).hexdigest() and item.size == len(FILES[item.name])
    # the HF cache layout: snapshot files link to blobs named by their ETag (sha256 for LFS files)
    weights = fetched.path("model.safetensors").resolve()
    assert weights.parent.name == "blobs" and weights.name == fetched.files[1].sha256
    assert fetched.path("config.json").resolve().name == git_blob_sha1(FILES["config.json"])
    assert (hf_home() / "hub" / "models--acme--tiny-bert" / "refs" / "main").read_text() == sha
    # only the allowed files were asked for: this is what huggingface_hub 2.4 requests
    assert sorted(hub.paths()) == sorted([
        TELEMETRY,  # its User-Agent's agent detection, once per process, unless HF_HUB_DISABLE_TELEMETRY
        f"GET /api/models/{REPO}/revision/main",
        f"GET /api/models/{REPO}/tree/{sha}",
        *(f"{method} /{REPO}/resolve/{sha}/{name}" for name in WANTED for method in ("HEAD", "GET")),
    ])
    assert not (snapshot / "pytorch_model.bin").exists() and not (snapshot / "README.md").exists()


def test_fetch_follows_tree_pages_and_keeps_nested_names(tmp_path, hub):
    hub.page_size = 2
    files = {**FILES, "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}'}
    sha = hub.add_repo(REPO, files)
    fetched = fetch(tmp_path, allow=["*.json", "*.safetensors"])
    assert [f.name for f in fetched.files] == ["1_Pooling/config.json", "config.json", "model.safetensors",
                                               "tokenizer.json"]
    assert fetched.path("1_Pooling/config.json").read_bytes() == files["1_Pooling/config.json"]
    assert sum(p == f"GET /api/models/{REPO}/tree/{sha}" for p in hub.paths()) == 4  # 7 entries, 2 a page


def test_revision_and_locator_come_from_the_card(tmp_path):
    source = HubSource()
    pinned = card(tmp_path, revision="v1.0")
    assert (source.revision(pinned), source.locator(pinned)) == ("v1.0", REPO)
    assert {"repo", "revision", "allow", "ignore"} == set(source.fields)


def test_a_tag_or_a_commit_is_fetched_as_written(tmp_path, hub):
    first = hub.add_repo(REPO, FILES)
    second = hub.add_repo(REPO, {**FILES, "config.json": b'{"hidden_size": 16}'})  # main moves on
    by_commit = fetch(tmp_path, revision=first)
    assert by_commit.resolved == first and by_commit.revision == first
    assert by_commit.path("config.json").read_bytes() == FILES["config.json"]
    assert f"GET /api/models/{REPO}/revision/{first}" not in hub.paths()  # a commit needs no resolving
    assert fetch(tmp_path).resolved == second


def test_offline_fetch_finds_the_snapshot_without_any_request(tmp_path, hub):
    hub.add_repo(REPO, FILES)
    online = fetch(tmp_path)
    hub.clear()
    offline = fetch(tmp_path, offline=True)
    assert hub.count == 0
    assert offline.root == online.root and offline.resolved == online.resolved
    assert [(f.name, f.sha256) for f in offline.files] == [(f.name, f.sha256) for f in online.files]


def test_offline_fetch_of_an_uncached_model_makes_no_request(tmp_path, hub):
    hub.add_repo(REPO, FILES)
    with pytest.raises(OfflineError) as caught:
        fetch(tmp_path, offline=True)
    message = str(caught.value)
    assert "acme/tiny-bert" in message and "not in the Hugging Face cache" in message
    assert "ZOO_OFFLINE" in message and "zoo pull acme/tiny-bert" in message
    assert hub.count == 0


def test_offline_fetch_of_a_partly_cached_snapshot_fails(tmp_path, hub):
    hub.add_repo(REPO, FILES)
    fetch(tmp_path, allow=["config.json"])  # e.g. transformers fetched the config only
    hub.clear()
    with pytest.raises(OfflineError, match=r"or only partly.*zoo pull acme/tiny-bert"):
        fetch(tmp_path, offline=True)
    with pytest.raises(OfflineError, match=r"no file matching allow = \['\*\.onnx'\]"):
        fetch(tmp_path, offline=True, allow=["*.onnx"])
    assert hub.count == 0


def test_a_corrupted_hf_cache_file_is_caught_against_its_etag(tmp_path, hub):
    hub.add_repo(REPO, FILES)
    blob = fetch(tmp_path).path("model.safetensors").resolve()
    blob.chmod(0o644)
    blob.write_bytes(b"flipped" + FILES["model.safetensors"][7:])
    with pytest.raises(IntegrityError, match=r"model\.safetensors.*ETag.*corrupted.*pull again") as caught:
        fetch(tmp_path)
    assert str(blob) in str(caught.value)
    blob.unlink()  # what the message says to do
    assert fetch(tmp_path).path("model.safetensors").read_bytes() == FILES["model.safetensors"]


# -- errors say what to do ------------------------------------------------------------------------

def test_gated_repo_needs_hf_token(tmp_path, hub, monkeypatch):
    hub.add_repo(REPO, FILES, token="hf_test_secret")
    with pytest.raises(PullError, match=r"gated.*HF_TOKEN") as caught:
        fetch(tmp_path)
    assert "acme/tiny-bert" in str(caught.value) and "accept its terms" in str(caught.value).lower()

    hub.clear()
    monkeypatch.setenv("HF_TOKEN", "hf_test_secret")
    fetched = fetch(tmp_path)
    assert [f.name for f in fetched.files] == WANTED
    assert {r.authorization for r in hub.requests if str(r) != TELEMETRY} == {"Bearer hf_test_secret"}


def test_private_repo_without_token_reads_as_not_found(tmp_path, hub):
    hub.add_repo(REPO, FILES, token="hf_test_secret", private=True)
    with pytest.raises(PullError, match=r"does not exist.*or it is private.*HF_TOKEN"):
        fetch(tmp_path)


def test_unknown_repo(tmp_path, hub):
    with pytest.raises(PullError) as caught:
        fetch(tmp_path, repo="acme/no-such-model")
    message = str(caught.value)
    assert "'acme/no-such-model'" in message and "does not exist" in message and "source.repo" in message
    assert not isinstance(caught.value, OfflineError)


def test_unknown_revision(tmp_path, hub):
    hub.add_repo(REPO, FILES)
    with pytest.raises(PullError, match=r"revision 'v9'.*no branch, tag or commit 'v9'.*source\.revision"):
        fetch(tmp_path, revision="v9")


def test_no_file_matches_the_allow_patterns(tmp_path, hub):
    hub.add_repo(REPO, FILES)
    with pytest.raises(PullError, match=r"no file in the repository matches allow = \['\*\.onnx'\]"):
        fetch(tmp_path, allow=["*.onnx"])
    assert resolve_paths(hub) == set()


def test_a_listed_file_the_hub_cannot_serve(tmp_path, hub):
    hub.add_repo(REPO, FILES)
    hub.repos[REPO].withheld.add("tokenizer.json")
    with pytest.raises(PullError, match=r"listed but could not be downloaded"):
        fetch(tmp_path)


def test_unreachable_hub_names_the_endpoint(tmp_path, hub):
    hub.stop()
    with pytest.raises(PullError) as caught:
        fetch(tmp_path)
    message = str(caught.value)
    assert f"could not reach the Hugging Face Hub at {hub.url}" in message
    assert "HF_ENDPOINT" in message and "ZOO_OFFLINE" in message
    assert not isinstance(caught.value, OfflineError)


# -- the whole path: `zoo pull` in a subprocess -----------------------------------------------------

@pytest.mark.slow
def test_zoo_pull_then_cached_then_offline(tmp_path, hub):
    sha = hub.add_repo(REPO, FILES)
    registry = registry_file(tmp_path)

    first = run_zoo("--registry", str(registry), "pull", "--json", "acme/tiny-bert")
    assert first.returncode == 0, first.stderr
    [record] = json.loads(first.stdout)
    assert record["resolved"] == sha and record["revision"] == "main" and record["locator"] == REPO
    assert Path(record["root"]) == hf_home() / "hub" / "models--acme--tiny-bert" / "snapshots" / sha
    assert [f["name"] for f in record["files"]] == WANTED
    assert resolve_paths(hub) == set(WANTED)
    assert "Traceback" not in first.stderr and "Fetching" not in first.stderr  # no progress bar off a TTY

    hub.clear()  # a second pull is served by the pull record: not one request
    again = run_zoo("--registry", str(registry), "pull", "--json", "acme/tiny-bert")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["files"] == record["files"] and hub.count == 0

    offline = run_zoo("--offline", "--registry", str(registry), "pull", "--json", "acme/tiny-bert")
    assert offline.returncode == 0, offline.stderr
    # another zoo home sharing the HF cache: offline, the source finds the snapshot itself
    elsewhere = run_zoo("--registry", str(registry), "pull", "--json", "acme/tiny-bert",
                        env={"ZOO_HOME": str(tmp_path / "other_zoo_home"), "ZOO_OFFLINE": "1"})
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert json.loads(elsewhere.stdout)[0]["files"] == record["files"]
    assert hub.count == 0

    hub.stop()
    stopped = run_zoo("--offline", "--registry", str(registry), "pull", "acme/tiny-bert")
    assert stopped.returncode == 0, stopped.stderr
    assert sha in stopped.stdout


@pytest.mark.parametrize("switch", [("--offline",), ("ZOO_OFFLINE",), ("HF_HUB_OFFLINE",)])
def test_zoo_pull_offline_uncached_fails_cleanly(tmp_path, hub, switch):
    hub.add_repo(REPO, FILES)
    args, env = (("--offline",), {}) if switch == ("--offline",) else ((), {switch[0]: "1"})
    result = run_zoo(*args, "--registry", str(registry_file(tmp_path)), "pull", "acme/tiny-bert", env=env)
    assert result.returncode == 1
    assert "not in the Hugging Face cache" in result.stderr and "zoo pull acme/tiny-bert" in result.stderr
    assert ("HF_HUB_OFFLINE" if switch == ("HF_HUB_OFFLINE",) else "ZOO_OFFLINE") in result.stderr
    assert "Traceback" not in result.stderr
    assert hub.count == 0


@pytest.mark.slow
def test_zoo_pull_errors_are_one_clean_line(tmp_path, hub):
    hub.add_repo(REPO, FILES, token="hf_test_secret")
    registry = registry_file(tmp_path)
    gated = run_zoo("--registry", str(registry), "pull", "acme/tiny-bert")
    assert gated.returncode == 1 and "HF_TOKEN" in gated.stderr and "Traceback" not in gated.stderr

    with_token = run_zoo("--registry", str(registry), "pull", "--json", "acme/tiny-bert",
                         env={"HF_TOKEN": "hf_test_secret"})
    assert with_token.returncode == 0, with_token.stderr
    assert "Bearer hf_test_secret" in {r.authorization for r in hub.requests if "/resolve/" in r.path}

    hub.stop()
    down = run_zoo("--registry", str(registry_file(tmp_path, revision="v2")), "pull", "acme/tiny-bert")
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert "could not reach the Hugging Face Hub" in down.stderr and "HF_ENDPOINT" in down.stderr
