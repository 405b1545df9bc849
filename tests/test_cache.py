"""zoo.cache on real files: layout, locks, pull records, quick checks, verify, listing, removal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from httpserver import http_server, sha256  # noqa: F401  (http_server is a fixture)

from zoo.cache import RECORD_NAME, Cache, CacheEntry, VerifyReport
from zoo.errors import CacheError, OfflineError, StorageError
from zoo.fetched import Fetched, FetchedFile


def put(cache: Cache, model: str, revision: str, files: dict[str, bytes], *, source: str = "url",
        root: Path | None = None) -> Fetched:
    """Files on disk plus their pull record, as a source and pull() would leave them."""
    root = root or cache.model_dir(model, revision)
    items = []
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        items.append(FetchedFile(name, path, sha256(data), len(data), path.stat().st_mtime_ns))
    fetched = Fetched(model=model, source=source, locator=f"http://example.invalid/{model}", revision=revision,
                      root=root, files=tuple(items))
    cache.write_record(fetched)
    return fetched


def test_defaults_come_from_the_environment(zoo_env, monkeypatch):
    assert Cache().root == zoo_env and Cache().offline is False
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert Cache().offline is True
    assert Cache(offline=False).offline is False


def test_model_dir_is_readable_and_never_leaves_the_root(tmp_path):
    cache = Cache(tmp_path)
    assert cache.model_dir("google-bert/bert-base-uncased", "main") == \
        tmp_path / "models" / "google-bert--bert-base-uncased" / "main"
    assert cache.model_dir("resnet50", "refs/pr/1").name == "refs--pr--1"
    for bad in ("..", "a/../b", "/etc", "a//b", "", "a\\b"):
        with pytest.raises(CacheError, match="cannot name a cache folder"):
            cache.model_dir(bad, "main")
    with pytest.raises(CacheError):
        cache.model_dir("ok", "..")
    with pytest.raises(CacheError, match="would leave"):
        cache.file_path("ok", "main", "../../x.pt")
    assert cache.file_path("ok", "main", "w/model.pt") == cache.model_dir("ok", "main") / "w" / "model.pt"


def test_lock_creates_its_folders_and_excludes_a_second_holder(tmp_path):
    cache = Cache(tmp_path)
    target = cache.model_dir("m", "r") / RECORD_NAME
    first = cache.lock(target)
    with first:
        assert Path(first.lock_file) == Path(str(target) + ".lock") and target.parent.is_dir()
        import filelock

        with pytest.raises(filelock.Timeout):
            cache.lock(target).acquire(timeout=0.05)


def test_an_unwritable_cache_gives_a_storage_error_with_a_hint(tmp_path):
    home = tmp_path / "home"
    home.write_text("not a folder")
    cache = Cache(home)
    with pytest.raises(StorageError, match="set ZOO_HOME to a writable folder") as caught:
        cache.lock(cache.model_dir("m", "r") / RECORD_NAME)
    assert str(home) in str(caught.value)
    fetched = Fetched("m", "url", "x", "r", home, ())
    with pytest.raises(StorageError, match=str(home)):
        cache.write_record(fetched)


def test_records_round_trip_atomically_with_a_format_version(tmp_path):
    cache = Cache(tmp_path)
    fetched = put(cache, "org/m", "main", {"a.bin": b"aaa", "sub/b.bin": b"bb"})
    path = cache.model_dir("org/m", "main") / RECORD_NAME
    data = json.loads(path.read_text())
    assert data["format"] == 1 and data["model"] == "org/m"
    assert cache.read_record("org/m", "main") == fetched
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.bin", RECORD_NAME, "sub"]  # no temp left
    assert cache.read_record("org/m", "other") is None


@pytest.mark.parametrize("text", ["", "{not json", "[]", '{"format": 1}', '{"format": 99, "model": "m"}'])
def test_a_damaged_record_reads_as_absent(tmp_path, text):
    cache = Cache(tmp_path)
    path = cache.model_dir("m", "r") / RECORD_NAME
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert cache.read_record("m", "r") is None
    assert cache.entries() == []


def test_a_record_of_another_name_in_the_same_folder_is_not_taken_for_this_one(tmp_path):
    cache = Cache(tmp_path)
    put(cache, "a--b", "main", {"f": b"x"})
    assert cache.read_record("a/b", "main") is None


def test_check_is_quick_and_rehashes_only_changed_files(tmp_path):
    cache = Cache(tmp_path)
    fetched = put(cache, "m", "r", {"a.bin": b"0123456789"})
    path = fetched.files[0].path
    assert cache.check(fetched) == []
    os.utime(path, ns=(1, 1))  # touched, same bytes: re-hashed, still intact
    assert cache.check(fetched) == []
    path.write_bytes(b"0123456780")  # same size, other bytes
    assert any("sha256" in p and str(path) in p for p in cache.check(fetched))
    path.write_bytes(b"short")
    assert any("5 bytes" in p for p in cache.check(fetched))
    path.unlink()
    assert any("missing" in p for p in cache.check(fetched))


def test_verify_rehashes_everything_and_reports_per_revision(tmp_path):
    cache = Cache(tmp_path)
    put(cache, "m", "r1", {"a": b"aaaa", "b": b"bbbb"})
    bad = put(cache, "m", "r2", {"a": b"aaaa"})
    put(cache, "n", "r", {"a": b"n"})
    path = bad.files[0].path
    path.write_bytes(b"aaab")
    os.utime(path, ns=(bad.files[0].mtime_ns, bad.files[0].mtime_ns))  # even an unchanged mtime is caught
    reports = cache.verify()
    assert [(r.model, r.revision, r.ok, r.checked) for r in reports] == [
        ("m", "r1", True, 2), ("m", "r2", False, 1), ("n", "r", True, 1)]
    assert str(path) in reports[1].problems[0]
    assert json.loads(json.dumps(reports[1].to_dict()))["problems"] == list(reports[1].problems)
    assert [r.revision for r in cache.verify("m")] == ["r1", "r2"]
    assert isinstance(reports[0], VerifyReport)
    with pytest.raises(CacheError, match="nothing is cached for model 'zzz'"):
        cache.verify("zzz")


def test_entries_list_every_revision_sorted_with_sizes(tmp_path):
    cache = Cache(tmp_path)
    put(cache, "zeta", "r", {"a": b"12345"})
    put(cache, "alpha/one", "v2", {"a": b"1", "b": b"22"})
    put(cache, "alpha/one", "v1", {"a": b"1"})
    entries = cache.entries()
    assert [(e.model, e.revision, e.files, e.size) for e in entries] == [
        ("alpha/one", "v1", 1, 1), ("alpha/one", "v2", 2, 3), ("zeta", "r", 1, 5)]
    assert isinstance(entries[0], CacheEntry)
    data = json.loads(json.dumps(entries[0].to_dict()))
    assert data["folder"] == str(cache.model_dir("alpha/one", "v1")) and data["source"] == "url"


def test_remove_deletes_only_zoos_folders(tmp_path):
    cache = Cache(tmp_path / "home")
    put(cache, "m", "r1", {"a": b"1"})
    put(cache, "m", "r2", {"a": b"2"})
    elsewhere = tmp_path / "site-packages" / "pkg"
    outside = put(cache, "pkg-model", "1.0", {"w.pt": b"weights"}, source="package", root=elsewhere)
    put(cache, "keep", "r", {"a": b"k"})
    removed = cache.remove("m")
    assert removed == [cache.model_dir("m", "r1"), cache.model_dir("m", "r2")]
    assert not (cache.models_dir / "m").exists()
    cache.remove("pkg-model")
    assert outside.files[0].path.read_bytes() == b"weights"  # the package's own file stays
    assert [e.model for e in cache.entries()] == ["keep"]
    with pytest.raises(CacheError, match="nothing is cached for model 'm'"):
        cache.remove("m")


def test_cache_download_honours_offline_and_writes_into_the_cache(http_server, tmp_path):
    http_server.add("/f.bin", b"payload")
    online = Cache(tmp_path, offline=False, quiet=True)
    got = online.download(http_server.url("/f.bin"), online.file_path("m", "r", "f.bin"), sha256=sha256(b"payload"))
    assert got.path.read_bytes() == b"payload"
    offline = Cache(tmp_path, offline=True)
    with pytest.raises(OfflineError):
        offline.download(http_server.url("/f.bin"), offline.file_path("m", "r", "other.bin"))
    assert http_server.count() == 1
