"""`zoo pull` and `zoo cache` end to end: real subprocesses, a real HTTP server on 127.0.0.1, real files.

Cards come from user registry files (``--registry FILE``) whose ``url`` source points at the
test server; nothing gets built, so the adapter is irrelevant here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MINIMAL_CARD, card_toml, run_zoo, write
from httpserver import FileServer, http_server, sha256  # noqa: F401  (http_server is a fixture)

from zoo.errors import IntegrityError
from zoo import pull

BODY = os.urandom(80 * 1024 + 7)
FAST = {"ZOO_HTTP_TIMEOUT": "2"}


def url_card(name: str, url: str, extra: str = "") -> str:
    body = MINIMAL_CARD.replace('source = { type = "url", url = "http://127.0.0.1:1/tiny.pt" }',
                                f'source = {{ type = "url", url = "{url}" }}')
    return card_toml(name, body, extra)


def registry(tmp_path: Path, server: FileServer, **models: str) -> Path:
    """A registry file with one url card per model name -> server path."""
    text = "\n".join(url_card(name, server.url(path)) for name, path in models.items())
    return write(tmp_path / "registry.toml", text)


def zoo_command() -> list[str]:
    exe = Path(sys.executable).with_name("zoo")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo.cli"]


def the_file(home: Path, model: str) -> Path:
    (folder,) = (home / "models" / model).iterdir()
    return folder / "tiny.bin"


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_pull_downloads_the_file_verified_with_a_record(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    result = run_zoo("--registry", str(reg), "pull", "tiny", env=FAST)
    assert result.returncode == 0, result.stderr
    path = the_file(zoo_env, "tiny")
    assert path.read_bytes() == BODY
    assert path.parent.name.startswith("url-")
    assert f"sha256 {sha256(BODY)}" in result.stdout and str(path.parent) in result.stdout
    record = json.loads((path.parent / "pull.json").read_text())
    assert record["files"][0]["sha256"] == sha256(BODY)  # trust on first use: the record keeps the hash
    assert parts(path.parent) == []


def test_pull_json_prints_the_records(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    result = run_zoo("--registry", str(reg), "pull", "tiny", "--json", env=FAST)
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert (record["model"], record["source"], record["locator"]) == ("tiny", "url", http_server.url("/tiny.bin"))
    (item,) = record["files"]
    assert (item["name"], item["sha256"], item["size"]) == ("tiny.bin", sha256(BODY), len(BODY))
    assert Path(item["path"]).read_bytes() == BODY


def test_a_second_pull_makes_no_request(http_server, tmp_path):
    http_server.add("/tiny.bin", BODY)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    assert run_zoo("--registry", str(reg), "pull", "tiny", env=FAST).returncode == 0
    again = run_zoo("--registry", str(reg), "pull", "tiny", env=FAST)
    assert again.returncode == 0, again.stderr
    assert http_server.count() == 1  # speed is bench/'s business (timings in tests only flake)


def test_a_damaged_cached_file_is_pulled_again_and_force_pulls_anyway(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    pull("tiny", registry_files=[reg], quiet=True)
    path = the_file(zoo_env, "tiny")
    path.write_bytes(b"x" * len(BODY))
    pull("tiny", registry_files=[reg], quiet=True)
    assert path.read_bytes() == BODY and http_server.count() == 2
    pull("tiny", registry_files=[reg], quiet=True, force=True)
    assert http_server.count() == 3


def test_offline_pull_serves_the_cache_without_a_socket_and_explains_the_rest(http_server, tmp_path):
    http_server.add("/tiny.bin", BODY)
    http_server.add("/other.bin", BODY)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin", other="/other.bin")
    assert run_zoo("--registry", str(reg), "pull", "tiny", env=FAST).returncode == 0
    before = http_server.count()
    http_server.stop()
    hit = run_zoo("--offline", "--registry", str(reg), "pull", "tiny")
    assert hit.returncode == 0, hit.stderr
    miss = run_zoo("--registry", str(reg), "pull", "other", env={"ZOO_OFFLINE": "1"})
    assert miss.returncode == 1
    assert "not cached" in miss.stderr and "--offline" in miss.stderr and http_server.url("/other.bin") in miss.stderr
    assert "Traceback" not in miss.stderr
    assert http_server.count() == before == 1


def test_a_pull_killed_mid_download_leaves_nothing_that_matters(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY, stall_after=len(BODY) // 2, stall_seconds=60, stall_times=1)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    proc = subprocess.Popen([*zoo_command(), "--registry", str(reg), "pull", "tiny"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **FAST})
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until half the file sits in the temp
            temps = list((zoo_env / "models").glob("tiny/*/.tiny.bin.*.part"))
            if temps and temps[0].stat().st_size >= len(BODY) // 2:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the pull never got half way")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    folder = temps[0].parent
    assert not (folder / "tiny.bin").exists() and not (folder / "pull.json").exists()
    again = run_zoo("--registry", str(reg), "pull", "tiny", env=FAST)
    assert again.returncode == 0, again.stderr
    assert (folder / "tiny.bin").read_bytes() == BODY
    assert parts(folder) == []  # the dead process's temp was cleaned up under the lock


def test_three_processes_pulling_one_model_download_it_once(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY, chunk_size=4096, delay_per_chunk=0.03)  # about 0.6 s of body
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    procs = [subprocess.Popen([*zoo_command(), "--registry", str(reg), "pull", "tiny", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **FAST}) for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outputs]
    hashes = {json.loads(out)[0]["files"][0]["sha256"] for out, _ in outputs}
    assert hashes == {sha256(BODY)}
    assert the_file(zoo_env, "tiny").read_bytes() == BODY
    assert http_server.count("/tiny.bin") == 1  # the others waited on the pull lock, then found the record


def test_a_zoo_home_that_is_a_file_fails_cleanly(http_server, tmp_path):
    http_server.add("/tiny.bin", BODY)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    home = write(tmp_path / "home", "I am a file")
    result = run_zoo("--registry", str(reg), "pull", "tiny", env={**FAST, "ZOO_HOME": str(home)})
    assert result.returncode == 1
    assert str(home) in result.stderr and "set ZOO_HOME to a writable folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert http_server.count() == 0


def test_a_full_disk_keeps_the_previous_version_and_no_partial_file(http_server, tmp_path, zoo_env):
    old = os.urandom(8 * 1024)
    route = http_server.add("/tiny.bin", old)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    assert run_zoo("--registry", str(reg), "pull", "tiny", env=FAST).returncode == 0
    path = the_file(zoo_env, "tiny")
    record = (path.parent / "pull.json").read_bytes()
    route.body = os.urandom(256 * 1024)  # a new, bigger version that does not fit
    # RLIMIT_FSIZE is the disk-full that works as root: writes past 64 KiB fail with EFBIG.
    command = zoo_command()
    if len(command) != 1:  # pragma: no cover - `python -m zoo.cli` fallback
        pytest.skip("needs the zoo console script")
    limited = [sys.executable, "-c",
               "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); os.execv(sys.argv[1], sys.argv[1:])",
               *command, "--registry", str(reg), "pull", "--force", "tiny"]
    result = subprocess.run(limited, capture_output=True, text=True, env={**os.environ, **FAST}, timeout=60)
    assert result.returncode == 1
    assert "file size limit" in result.stderr and str(path.parent) in result.stderr
    assert "Traceback" not in result.stderr
    assert path.read_bytes() == old
    assert (path.parent / "pull.json").read_bytes() == record
    assert parts(path.parent) == []


def test_cache_verify_catches_a_flipped_byte(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    assert run_zoo("--registry", str(reg), "pull", "tiny", env=FAST).returncode == 0
    intact = run_zoo("cache", "verify")
    assert intact.returncode == 0 and "tiny" in intact.stdout and "ok" in intact.stdout
    path = the_file(zoo_env, "tiny")
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x01
    path.write_bytes(bytes(data))
    broken = run_zoo("cache", "verify")
    assert broken.returncode == 1
    assert "CORRUPTED" in broken.stdout and str(path) in broken.stdout
    assert "zoo pull --force" in broken.stderr
    as_json = run_zoo("cache", "verify", "tiny", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)[0]["ok"] is False


def test_cache_list_and_rm(http_server, tmp_path, zoo_env):
    http_server.add("/a.bin", BODY)
    http_server.add("/b.bin", BODY[:1000])
    reg = registry(tmp_path, http_server, alpha="/a.bin", beta="/b.bin")
    assert run_zoo("--registry", str(reg), "pull", "alpha", "beta", env=FAST).returncode == 0
    listed = run_zoo("cache", "list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[2:4]] == ["alpha", "beta"]
    assert lines[-1].startswith("2 cached,") and str(zoo_env) in lines[-1]
    data = json.loads(run_zoo("cache", "list", "--json").stdout)
    assert [(e["model"], e["files"], e["size"]) for e in data] == [("alpha", 1, len(BODY)), ("beta", 1, 1000)]
    removed = run_zoo("cache", "rm", "alpha")
    assert removed.returncode == 0 and "removed 1" in removed.stdout
    assert not (zoo_env / "models" / "alpha").exists()
    assert [e["model"] for e in json.loads(run_zoo("cache", "list", "--json").stdout)] == ["beta"]
    missing = run_zoo("cache", "rm", "alpha")
    assert missing.returncode == 1 and "nothing is cached" in missing.stderr and "Traceback" not in missing.stderr


def test_a_url_card_with_a_sha256_gets_a_hash_revision_and_refuses_other_bytes(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY)
    files = f'files = [{{ name = "weights.bin", sha256 = "{sha256(BODY)}", size = {len(BODY)} }}]'
    bad = f'files = [{{ name = "weights.bin", sha256 = "{sha256(b"other")}" }}]'
    reg = write(tmp_path / "r.toml", url_card("good", http_server.url("/tiny.bin"), files)
                + url_card("bad", http_server.url("/tiny.bin"), bad))
    fetched = pull("good", registry_files=[reg], quiet=True)
    assert fetched.revision == "sha256-" + sha256(BODY)[:12]
    assert fetched.path("weights.bin").read_bytes() == BODY
    with pytest.raises(IntegrityError, match=sha256(b"other")):
        pull("bad", registry_files=[reg], quiet=True)
    folder = zoo_env / "models" / "bad" / ("sha256-" + sha256(b"other")[:12])
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []


def tv_card(name: str, url: str, extra: str = "") -> str:
    body = MINIMAL_CARD.replace(
        'source = { type = "url", url = "http://127.0.0.1:1/tiny.pt" }',
        f'source = {{ type = "torchvision", weights = "Tiny_Weights.IMAGENET1K_V1", url = "{url}" }}')
    return card_toml(name, body, extra)


def test_the_torchvision_source_checks_the_prefix_in_the_file_name(http_server, tmp_path, zoo_env):
    good = f"/tiny-{sha256(BODY)[:8]}.pth"
    http_server.add(good, BODY)
    http_server.add("/tiny-00000000.pth", BODY)
    reg = write(tmp_path / "r.toml", tv_card("tv-good", http_server.url(good))
                + tv_card("tv-bad", http_server.url("/tiny-00000000.pth"))
                + tv_card("tv-full", http_server.url("/tiny-00000000.pth"),
                          f'files = [{{ name = "tiny-00000000.pth", sha256 = "{sha256(BODY)}" }}]'))
    fetched = pull("tv-good", registry_files=[reg], quiet=True)
    assert (fetched.source, fetched.revision) == ("torchvision", "IMAGENET1K_V1")
    assert fetched.files[0].path == zoo_env / "models" / "tv-good" / "IMAGENET1K_V1" / good[1:]
    assert fetched.files[0].path.read_bytes() == BODY
    with pytest.raises(IntegrityError, match="starting with 00000000"):
        pull("tv-bad", registry_files=[reg], quiet=True)
    assert pull("tv-full", registry_files=[reg], quiet=True).files[0].sha256 == sha256(BODY)  # full hash wins


def test_pulling_never_imports_torch(http_server, tmp_path):
    http_server.add(f"/tiny-{sha256(BODY)[:8]}.pth", BODY)
    reg = write(tmp_path / "r.toml", tv_card("tv", http_server.url(f"/tiny-{sha256(BODY)[:8]}.pth")))
    code = ("import sys; from zoo import pull; pull('tv', registry_files=[sys.argv[1]], quiet=True); "
            "heavy = [m for m in ('torch', 'torchvision') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    result = subprocess.run([sys.executable, "-c", code, str(reg)], capture_output=True, text=True,
                            env={**os.environ, **FAST}, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def flip_keeping_stamp(path: Path) -> None:
    """One flipped byte with the size and mtime left as they were (bit rot, or `cp -p` of a bad copy)."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_bit_rot_under_an_unchanged_size_and_mtime_is_caught_before_a_load(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    assert run_zoo("--registry", str(reg), "pull", "tiny", env=FAST).returncode == 0
    path = the_file(zoo_env, "tiny")
    flip_keeping_stamp(path)
    offline = run_zoo("--offline", "--registry", str(reg), "pull", "tiny")
    assert offline.returncode == 1 and "Traceback" not in offline.stderr
    assert "the cached copy is damaged" in offline.stderr and "sha256 is" in offline.stderr
    assert "not cached" not in offline.stderr and "zoo pull tiny --force" in offline.stderr
    online = run_zoo("--registry", str(reg), "pull", "tiny", env=FAST)  # trusted on first use: same bytes back
    assert online.returncode == 0, online.stderr
    assert "damaged" in online.stderr and path.read_bytes() == BODY and http_server.count("/tiny.bin") == 2


def test_a_re_pull_must_bring_the_recorded_bytes_unless_forced(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY)
    reg = registry(tmp_path, http_server, tiny="/tiny.bin")
    pull("tiny", registry_files=[reg], quiet=True)
    the_file(zoo_env, "tiny").write_bytes(b"y" * len(BODY))  # damaged in the cache ...
    http_server.add("/tiny.bin", BODY[::-1])  # ... and the server now sends other bytes
    with pytest.raises(IntegrityError, match=r"came back with sha256 .* but its first pull recorded"):
        pull("tiny", registry_files=[reg], quiet=True)
    fetched = pull("tiny", registry_files=[reg], quiet=True, force=True)
    assert fetched.files[0].sha256 == sha256(BODY[::-1])


def test_force_downloads_again_even_when_the_card_pins_the_hash(http_server, tmp_path, zoo_env):
    http_server.add("/tiny.bin", BODY)
    files = f'files = [{{ name = "weights.bin", sha256 = "{sha256(BODY)}", size = {len(BODY)} }}]'
    reg = write(tmp_path / "registry.toml", url_card("pinned", http_server.url("/tiny.bin"), files))
    pull("pinned", registry_files=[reg], quiet=True)
    pull("pinned", registry_files=[reg], quiet=True, force=True)
    assert http_server.count("/tiny.bin") == 2


def test_credentials_in_a_url_card_are_sent_and_never_shown_or_kept(http_server, tmp_path, zoo_env):
    """user:password in a card's URL: sent as Basic authentication, hidden from every output and
    every file zoo writes; a wrong password and a malformed URL fail at once, in one line."""
    http_server.add("/tiny.bin", BODY, auth="alice:s3cr#t")
    url = http_server.url("/tiny.bin").replace("http://", "http://alice:s3cr%23t@")
    broken = http_server.url("/tiny.bin").replace("http://", "http://alice:s3cr#t@")  # '#' not encoded
    reg = write(tmp_path / "r.toml", url_card("private", url) + url_card("wrong", url.replace("s3cr%23t", "n0p3"))
                + url_card("broken", broken))
    said = []
    for args in (["pull", "private"], ["pull", "private", "--json"], ["show", "private"], ["show", "private", "--json"],
                 ["list", "--json", "private"], ["cache", "list"], ["cache", "list", "--json"], ["cache", "verify"]):
        result = run_zoo("--registry", str(reg), *args, env=FAST)
        assert result.returncode == 0, (args, result.stderr)
        said.append(result.stdout + result.stderr)
    assert the_file(zoo_env, "private").read_bytes() == BODY
    assert all(r.headers["Authorization"].startswith("Basic ") for r in http_server.requests("/tiny.bin"))
    assert "alice:***@127.0.0.1" in said[2] and "alice:***@127.0.0.1" in said[3]  # zoo show says where, not how
    for name, path in (("wrong", "/tiny.bin"), ("broken", None)):
        before = http_server.count()
        result = run_zoo("--registry", str(reg), "pull", name, env=FAST)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert ("HTTP 401" if path else "malformed URL") in lines[0]
        assert http_server.count() - before == (1 if path else 0)  # a permanent error: asked once, or never
        said.append(result.stdout + result.stderr)
    assert not (zoo_env / "models" / "broken").exists()  # refused before any lock or folder
    written = "".join(p.read_text(errors="replace") for p in zoo_env.rglob("*") if p.is_file() and p.suffix != ".bin")
    for secret in ("s3cr%23t", "s3cr#t", "n0p3"):
        assert all(secret not in text for text in said), secret
        assert secret not in written, secret
