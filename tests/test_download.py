"""zoo.download against a real HTTP server on 127.0.0.1: resume, restarts, integrity, errors, locks."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from httpserver import FileServer, http_server, sha256  # noqa: F401  (http_server is a fixture)

from zoo.download import download, redact, sha256_file
from zoo.errors import IntegrityError, OfflineError, PullError, StorageError

BODY = os.urandom(96 * 1024 + 123)  # several chunks, an odd size
HALF = len(BODY) // 2


def leftovers(folder: Path) -> list[str]:
    """Anything but lock files: temps or files that should not be there."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_a_plain_download_lands_verified_with_its_hash_size_and_mtime(http_server, tmp_path):
    http_server.add("/w.bin", BODY)
    dest = tmp_path / "cache" / "w.bin"
    got = download(http_server.url("/w.bin"), dest, sha256=sha256(BODY), size=len(BODY), quiet=True)
    assert dest.read_bytes() == BODY
    assert (got.name, got.path, got.sha256, got.size) == ("w.bin", dest, sha256(BODY), len(BODY))
    assert got.mtime_ns == dest.stat().st_mtime_ns
    assert leftovers(dest.parent) == ["w.bin"]
    assert http_server.count("/w.bin") == 1
    assert http_server.requests("/w.bin")[0].range is None


def test_a_dropped_connection_resumes_with_a_range_request(http_server, tmp_path):
    http_server.add("/w.bin", BODY, cut_after=HALF, cut_times=1)
    dest = tmp_path / "w.bin"
    got = download(http_server.url("/w.bin"), dest, sha256=sha256(BODY), quiet=True)
    assert dest.read_bytes() == BODY and got.sha256 == sha256(BODY)
    first, second = http_server.requests("/w.bin")
    assert first.range is None
    assert second.range == f"bytes={HALF}-"


def test_a_connection_that_keeps_dropping_still_finishes_while_it_makes_progress(http_server, tmp_path):
    http_server.add("/w.bin", BODY, cut_after=len(BODY) // 8, cut_times=None)
    dest = tmp_path / "w.bin"
    download(http_server.url("/w.bin"), dest, quiet=True, retries=2)  # progress resets the retry budget
    assert dest.read_bytes() == BODY
    assert http_server.count("/w.bin") >= 8


def test_a_server_that_ignores_range_restarts_cleanly_without_doubled_bytes(http_server, tmp_path):
    http_server.add("/w.bin", BODY, ranges=False, cut_after=HALF, cut_times=1)
    dest = tmp_path / "w.bin"
    got = download(http_server.url("/w.bin"), dest, quiet=True)  # no hash given: size and hash must still be exact
    assert dest.read_bytes() == BODY
    assert (got.size, got.sha256) == (len(BODY), sha256(BODY))
    assert http_server.requests("/w.bin")[1].range == f"bytes={HALF}-"


def test_a_wrong_hash_keeps_nothing_and_names_url_expected_and_actual(http_server, tmp_path):
    http_server.add("/w.bin", BODY, wrong_bytes=True)
    url = http_server.url("/w.bin")
    with pytest.raises(IntegrityError) as caught:
        download(url, tmp_path / "w.bin", sha256=sha256(BODY), quiet=True)
    message = str(caught.value)
    served = bytearray(BODY)
    served[HALF] ^= 0xFF
    assert url in message and sha256(BODY) in message and sha256(bytes(served)) in message
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("check", [{"sha256_prefix": "00000000"}, {"size": len(BODY) + 1}])
def test_a_wrong_prefix_or_size_keeps_nothing(http_server, tmp_path, check):
    http_server.add("/w.bin", BODY)
    with pytest.raises(IntegrityError, match="expected"):
        download(http_server.url("/w.bin"), tmp_path / "w.bin", quiet=True, **check)
    assert leftovers(tmp_path) == []


def test_a_short_body_is_an_error_never_a_cached_file(http_server, tmp_path):
    http_server.add("/w.bin", BODY, ranges=False, declared_length=len(BODY) + 1000)
    url = http_server.url("/w.bin")
    with pytest.raises(PullError, match=f"{len(BODY)} of {len(BODY) + 1000} bytes") as caught:
        download(url, tmp_path / "w.bin", quiet=True, retries=2)
    assert url in str(caught.value)
    assert http_server.count("/w.bin") == 3
    assert leftovers(tmp_path) == []


def test_a_short_body_then_a_smaller_range_answer_is_still_an_error(http_server, tmp_path):
    # The server lies in Content-Length, then says 416 "bytes */N" to the resume: not a complete file.
    http_server.add("/w.bin", BODY, declared_length=len(BODY) + 1000)
    with pytest.raises(PullError, match="bytes"):
        download(http_server.url("/w.bin"), tmp_path / "w.bin", quiet=True, retries=2)
    assert leftovers(tmp_path) == []


def test_an_html_page_never_lands(http_server, tmp_path):
    http_server.add("/w.bin", content_type="text/html")
    with pytest.raises(PullError, match="HTML page instead of the file") as caught:
        download(http_server.url("/w.bin"), tmp_path / "w.bin", quiet=True)
    assert http_server.url("/w.bin") in str(caught.value)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 501])
def test_a_permanent_error_status_names_url_and_status_and_is_not_retried(http_server, tmp_path, status):
    http_server.add("/w.bin", status=status)
    url = http_server.url("/w.bin")
    with pytest.raises(PullError, match=f"HTTP {status}") as caught:
        download(url, tmp_path / "w.bin", quiet=True)
    assert url in str(caught.value) and "\n" not in str(caught.value)
    assert http_server.count("/w.bin") == 1
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_transient_status_is_retried(http_server, tmp_path, status):
    http_server.add("/w.bin", status=status)
    with pytest.raises(PullError, match=f"HTTP {status}"):
        download(http_server.url("/w.bin"), tmp_path / "w.bin", quiet=True, retries=1)
    assert http_server.count("/w.bin") == 2


def test_redirects_are_followed(http_server, tmp_path):
    http_server.add("/old.bin", redirect="/new.bin")
    http_server.add("/new.bin", BODY)
    got = download(http_server.url("/old.bin"), tmp_path / "w.bin", sha256=sha256(BODY), quiet=True)
    assert got.path.read_bytes() == BODY
    assert [r.path for r in http_server.requests()] == ["/old.bin", "/new.bin"]


def test_a_stalled_server_times_out_then_the_retry_resumes(http_server, tmp_path):
    http_server.add("/w.bin", BODY, stall_after=HALF, stall_seconds=5, stall_times=1)
    dest = tmp_path / "w.bin"
    download(http_server.url("/w.bin"), dest, sha256=sha256(BODY), quiet=True, timeout=0.3)
    assert dest.read_bytes() == BODY
    assert http_server.requests("/w.bin")[1].range == f"bytes={HALF}-"


def test_zoo_http_timeout_sets_the_default_timeout(http_server, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HTTP_TIMEOUT", "0.3")
    http_server.add("/w.bin", BODY, stall_after=0, stall_seconds=5, stall_times=None)
    with pytest.raises(PullError, match="timed out"):
        download(http_server.url("/w.bin"), tmp_path / "w.bin", quiet=True, retries=1)
    assert leftovers(tmp_path) == []


def test_offline_opens_no_socket_and_says_how_to_pull(http_server, tmp_path):
    http_server.add("/w.bin", BODY)
    url = http_server.url("/w.bin")
    with pytest.raises(OfflineError) as caught:
        download(url, tmp_path / "w.bin", offline=True)
    message = str(caught.value)
    assert url in message and "not cached" in message and "ZOO_OFFLINE" in message
    assert http_server.count() == 0
    assert not (tmp_path / "w.bin").exists()


def test_a_verified_file_already_there_is_reused_without_a_request_even_offline(http_server, tmp_path):
    http_server.add("/w.bin", BODY)
    dest = tmp_path / "w.bin"
    download(http_server.url("/w.bin"), dest, sha256=sha256(BODY), quiet=True)
    for offline in (False, True):
        got = download(http_server.url("/w.bin"), dest, sha256=sha256(BODY), offline=offline)
        assert got.sha256 == sha256(BODY)
    assert http_server.count() == 1


def test_a_damaged_file_or_one_with_nothing_to_verify_against_is_downloaded_again(http_server, tmp_path):
    http_server.add("/w.bin", BODY)
    dest = tmp_path / "w.bin"
    dest.write_bytes(b"damaged")
    download(http_server.url("/w.bin"), dest, sha256=sha256(BODY), quiet=True)
    assert dest.read_bytes() == BODY
    dest.write_bytes(b"damaged")
    download(http_server.url("/w.bin"), dest, quiet=True)  # no hash: never trust what is there
    assert dest.read_bytes() == BODY
    assert http_server.count() == 2


def test_temps_of_dead_processes_are_cleaned_and_live_ones_kept(http_server, tmp_path):
    http_server.add("/w.bin", BODY)
    dead = tmp_path / ".w.bin.999999999.abcd1234.part"
    alive = tmp_path / f".w.bin.{os.getppid()}.abcd1234.part"
    dead.write_bytes(b"x")
    alive.write_bytes(b"x")
    download(http_server.url("/w.bin"), tmp_path / "w.bin", quiet=True)
    assert not dead.exists() and alive.exists()


def test_two_threads_downloading_one_file_share_one_download(http_server, tmp_path):
    http_server.add("/w.bin", BODY, delay_per_chunk=0.02)
    dest = tmp_path / "w.bin"
    results, errors = [], []

    def pull() -> None:
        try:
            results.append(download(http_server.url("/w.bin"), dest, sha256=sha256(BODY), quiet=True))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert [r.sha256 for r in results] == [sha256(BODY)] * 2
    assert http_server.count("/w.bin") == 1
    assert leftovers(tmp_path) == ["w.bin"]


def test_an_unwritable_destination_is_a_storage_error_with_what_to_do(http_server, tmp_path):
    http_server.add("/w.bin", BODY)
    blocker = tmp_path / "home"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StorageError, match="a file stands where a folder must be.*ZOO_HOME") as caught:
        download(http_server.url("/w.bin"), blocker / "models" / "w.bin", quiet=True)
    assert str(blocker) in str(caught.value)
    assert http_server.count() == 0


def test_a_stopped_server_is_a_pull_error_after_retries(tmp_path):
    server = FileServer()
    url = server.url("/w.bin")
    server.stop()
    with pytest.raises(PullError, match="cannot reach the server") as caught:
        download(url, tmp_path / "w.bin", quiet=True, retries=1, timeout=1)
    assert url in str(caught.value)
    assert leftovers(tmp_path) == []


def test_sha256_file_hashes_in_chunks(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(3 * 1024 * 1024 + 5)
    path.write_bytes(data)
    assert sha256_file(path) == (sha256(data), len(data))


def test_only_http_urls_are_downloaded(tmp_path):
    source = tmp_path / "w.bin"
    source.write_bytes(b"x")
    with pytest.raises(PullError, match="only http"):
        download(source.as_uri(), tmp_path / "copy.bin")


def run_in_terminal(code: str) -> str:
    """Run Python code with stderr on a pseudo-terminal (100 columns); return what it showed."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert proc.wait(30) == 0, shown
    return shown.decode("utf-8", "replace")


@pytest.mark.parametrize("quiet", [False, True])
def test_a_progress_bar_shows_on_a_terminal_unless_quiet(http_server, tmp_path, quiet):
    http_server.add("/w.bin", BODY, chunk_size=4096, delay_per_chunk=0.005)
    code = (f"from pathlib import Path; from zoo.download import download; "
            f"download({http_server.url('/w.bin')!r}, Path({str(tmp_path / 'w.bin')!r}), quiet={quiet})")
    shown = run_in_terminal(code)
    if quiet:
        assert shown.strip() == ""
    else:
        assert "w.bin:" in shown and "%|" in shown and "B/s" in shown


def test_retry_after_is_honoured_and_a_long_one_is_refused(http_server, tmp_path, capsys):
    import time

    http_server.add("/w.bin", BODY, busy_status=503, busy_times=1, retry_after="1")
    started = time.perf_counter()
    download(http_server.url("/w.bin"), tmp_path / "w.bin", sha256=sha256(BODY), quiet=True)
    assert time.perf_counter() - started >= 1.0  # waited what the server asked, not the 0.25 s backoff
    assert http_server.count("/w.bin") == 2
    http_server.add("/later.bin", BODY, busy_status=429, busy_times=None, retry_after="3600")
    with pytest.raises(PullError, match=r"asks to retry after 3600 s \(Retry-After\), beyond the 120 s zoo waits"):
        download(http_server.url("/later.bin"), tmp_path / "later.bin", quiet=True)
    assert http_server.count("/later.bin") == 1  # no point asking again before then
    assert leftovers(tmp_path) == ["w.bin"]


def test_a_host_that_does_not_resolve_is_not_retried(tmp_path, capsys):
    with pytest.raises(PullError, match="the host name 'no-such-host.invalid' does not resolve") as caught:
        download("http://no-such-host.invalid/w.bin", tmp_path / "w.bin", quiet=False)
    assert "retries" not in str(caught.value) and "retrying" not in capsys.readouterr().err


def test_passwords_and_tokens_in_urls_never_reach_a_message(http_server, tmp_path):
    from zoo.download import redact

    assert redact("https://alice:s3cret@host/f.bin?token=abc&x=1") == "https://alice:***@host/f.bin?token=***&x=1"
    assert redact("https://s3cret@host/f.bin") == "https://***@host/f.bin"
    assert redact("https://host/f.bin?X-Amz-Signature=abc") == "https://host/f.bin?X-Amz-Signature=***"
    url = http_server.url("/missing.bin").replace("http://", "http://alice:s3cret@") + "?access_token=t0ken"
    with pytest.raises(PullError) as caught:
        download(url, tmp_path / "w.bin", quiet=True)
    assert "s3cret" not in str(caught.value) and "t0ken" not in str(caught.value)
    assert "alice:***@" in str(caught.value)


def test_a_restart_after_an_ignored_range_says_so(http_server, tmp_path, capsys):
    http_server.add("/w.bin", BODY, ranges=False, cut_after=HALF, cut_times=1)
    download(http_server.url("/w.bin"), tmp_path / "w.bin", quiet=False)
    err = capsys.readouterr().err
    assert "downloading from the start" in err and "(if the server allows)" in err


# -- credentials in URLs: sent as Basic authentication, never shown; malformed URLs fail at once ----------

SECRET = "s3cr#t/p@ss:w?rd"  # every character a password may hold that a URL must percent-encode
ENCODED = "s3cr%23t%2Fp%40ss%3Aw%3Frd"


def with_credentials(url: str, user: str = "alice", password: str = ENCODED) -> str:
    return url.replace("http://", f"http://{user}:{password}@", 1)


def assert_hidden(text: str) -> None:
    for secret in (SECRET, ENCODED, "s3cret", "s3cr"):
        assert secret not in text, text


def test_credentials_in_the_url_are_sent_as_basic_authentication(http_server, tmp_path, capsys):
    http_server.add("/w.bin", BODY, auth=f"alice:{SECRET}", cut_after=HALF)  # a resumed request sends them too
    got = download(with_credentials(http_server.url("/w.bin")), tmp_path / "w.bin", sha256=sha256(BODY))
    assert got.path.read_bytes() == BODY
    sent = http_server.requests("/w.bin")
    assert len(sent) == 2 and sent[1].range == f"bytes={HALF}-"
    assert all(r.headers.get("Authorization", "").startswith("Basic ") for r in sent)
    assert_hidden(capsys.readouterr().err)  # the retry's note


def test_a_wrong_password_is_refused_once_in_one_line_without_the_password(http_server, tmp_path):
    http_server.add("/w.bin", BODY, auth="alice:right")
    with pytest.raises(PullError, match="HTTP 401.*refused the user and password") as caught:
        download(with_credentials(http_server.url("/w.bin")), tmp_path / "w.bin", quiet=True)
    assert_hidden(str(caught.value))
    assert "alice:***@127.0.0.1" in str(caught.value) and "\n" not in str(caught.value)
    assert http_server.count("/w.bin") == 1 and leftovers(tmp_path) == []
    with pytest.raises(PullError, match="HTTP 401.*asks for credentials.*USER:PASSWORD@"):
        download(http_server.url("/w.bin"), tmp_path / "w.bin", quiet=True)
    assert http_server.requests("/w.bin")[-1].headers.get("Authorization") is None


def test_credentials_follow_a_redirect_on_the_same_server_only(http_server, tmp_path):
    other = FileServer()
    try:
        http_server.add("/old.bin", redirect="/new.bin")
        http_server.add("/new.bin", BODY, auth=f"alice:{SECRET}")
        http_server.add("/away.bin", redirect=other.url("/w.bin"))
        other.add("/w.bin", BODY)
        download(with_credentials(http_server.url("/old.bin")), tmp_path / "a.bin", sha256=sha256(BODY), quiet=True)
        assert [r.path for r in http_server.requests()] == ["/old.bin", "/new.bin"]
        download(with_credentials(http_server.url("/away.bin")), tmp_path / "b.bin", sha256=sha256(BODY), quiet=True)
        assert http_server.requests("/away.bin")[0].headers.get("Authorization") is not None
        assert other.requests("/w.bin")[0].headers.get("Authorization") is None  # never to another server
    finally:
        other.stop()


MALFORMED = {
    "a password with an unencoded '/'": "http://alice:s3cr/et@{host}/w.bin",
    "a password with an unencoded '#'": "http://alice:s3cr#et@{host}/w.bin",
    "a password with an unencoded '?'": "http://alice:s3cr?et@{host}/w.bin",
    "a password and no host": "http://alice:s3cret/w.bin",
    "a port that is no number": "http://alice:s3cret@{ip}:port/w.bin",
    "a port out of range": "http://alice:s3cret@{ip}:99999/w.bin",
    "a port zero": "http://alice:s3cret@{ip}:0/w.bin",
    "a space": "http://alice:s3cret@{host}/w 1.bin",
    "a newline": "http://alice:s3cret@{host}/w\n.bin",
    "a control character": "http://alice:s3cret@{host}/w\x1b.bin",
    "no host": "http://alice:s3cret@/w.bin",
    "an unclosed IPv6 address": "http://alice:s3cret@[::1/w.bin",
    "a host label over 63 characters": "http://alice:s3cret@" + "a" * 64 + ".example/w.bin",
    "an empty host label": "http://alice:s3cret@a..example/w.bin",
    "not http": "ftp://alice:s3cret@{host}/w.bin",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_url_fails_at_once_in_one_line_without_the_password(http_server, tmp_path, capsys, case):
    host = f"127.0.0.1:{http_server.port}"
    url = MALFORMED[case].format(host=host, ip="127.0.0.1")
    http_server.add("/w.bin", BODY)
    with pytest.raises(PullError) as caught:
        download(url, tmp_path / "cache" / "w.bin", quiet=False)
    message = str(caught.value)
    assert "\n" not in message and ("malformed URL" in message or "only http(s)" in message), message
    assert_hidden(message + capsys.readouterr().err)
    assert http_server.count() == 0  # no request, no retry
    assert not (tmp_path / "cache").exists()  # nothing written, not even the folder


def test_exception_texts_passed_through_from_the_http_client_are_hidden_too(http_server, tmp_path, capsys):
    # The redirect's Location carries the credentials where urllib takes them for the host and port:
    # its own InvalidURL text repeats them, and that text reaches the message.
    http_server.add("/w.bin", redirect=with_credentials("http://127.0.0.1/x.bin"))  # "nonnumeric port: '...'"
    with pytest.raises(PullError, match="cannot be requested") as caught:
        download(with_credentials(http_server.url("/w.bin")), tmp_path / "w.bin", quiet=False)
    assert_hidden(str(caught.value) + capsys.readouterr().err)
    assert http_server.count() == 1  # not retried
    stopped = FileServer()
    url = with_credentials(stopped.url("/w.bin"))
    stopped.stop()
    with pytest.raises(PullError, match="cannot reach the server"):
        download(url, tmp_path / "w.bin", quiet=False, retries=1, timeout=1)
    assert_hidden(capsys.readouterr().err)


def test_redact_hides_every_kind_of_secret_and_leaves_other_urls_alone():
    from zoo.redaction import hide, secrets_of

    assert redact(with_credentials("http://h/w.bin")) == "http://alice:***@h/w.bin"
    assert redact("http://alice:s3cr/et@h/w.bin") == "http://alice:***@h/w.bin"  # a '/' in the password
    assert redact("http://alice:s3cr#et@h/w.bin?token=t0k") == "http://alice:***@h/w.bin?token=***"
    assert redact("http://h/w.bin#access_token=t0k&x=1") == "http://h/w.bin#access_token=***&x=1"
    for plain in ("http://h/w.bin?", "http://h:8/a@b/w.bin", "https://h/w.bin?x=1&y=%20", "ResNet50_Weights.V1"):
        assert redact(plain) == plain
    assert hide(f"port: '{SECRET}@h'", secrets_of(with_credentials("http://h/w.bin"))) == "port: '***@h'"
