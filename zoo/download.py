"""Downloading one file over HTTP(S): resumable, hashed while streaming, verified, atomic.

Stdlib HTTP (urllib) and filelock only: no torch, no requests. What a caller can rely on:

- A file at its final path is always complete and verified. Bytes stream into a temp file with a
  unique name in the destination's folder (``.{name}.{pid}.{random}.part``), are fsynced, checked
  against the expected sha256 / prefix / size, and only then renamed over the destination with
  ``os.replace``. Any failure removes the temp; a previous file at the destination stays untouched.
- Resume: a dropped connection, a timeout, a short body or a transient status (408, 429, 500,
  502, 503, 504) is retried (``retries`` times, backoff 0.25, 0.5, 1, 2, 4 s) with
  ``Range: bytes=N-``, continuing the running hash. A 429 or 503 with ``Retry-After`` waits what
  the server asks, as long as all such waits stay within :data:`RETRY_AFTER_BUDGET`. What a retry
  cannot mend fails at once: a malformed URL (checked by :func:`check_url` before anything is
  written or sent), a host name that does not resolve, a certificate that is not trusted, any
  other 4xx status (400, 401, 403, 404, 410...). A server that answers 200 to a
  range request (it ignores Range, or the file changed: ``If-Range``) restarts the temp from zero.
  A retry that made progress past everything received before does not count against ``retries``.
- One download per file at a time: a lock at ``dest + ".lock"`` makes a second process wait. When
  it gets the lock it reuses the file already at ``dest`` only if the caller gave a full sha256 and
  a fresh re-hash matches it; with nothing to verify against it downloads again, because that file
  may be the corrupted one a ``--force`` pull is meant to replace. (Pulls take their own lock and
  find the pull record first, so concurrent pulls of one model download it once.) Correctness does
  not rest on the lock: the unique temp and the atomic rename are enough.
- Credentials in the URL (``https://USER:PASSWORD@host/...``, percent-encoded where they hold
  ``@ : / ? #``) are sent as HTTP Basic authentication, to that scheme, host and port only (a
  redirect elsewhere drops them); the URL requested carries none. No password or token reaches a
  terminal, a log or an error: every error leaving :func:`download` and every note passes through
  :func:`zoo.redaction.hide`, the HTTP client's own exception texts included.
- ``offline=True`` never opens a socket: a verified file already at ``dest`` (full sha256 given)
  is returned, anything else raises :class:`zoo.errors.OfflineError`.

``ZOO_HTTP_TIMEOUT`` (seconds, default 30) sets the connect and read timeout when the caller
passes none.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.client import HTTPException, HTTPResponse, InvalidURL
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from zoo.__about__ import __version__
from zoo.atomic import ensure_folder
from zoo.errors import CACHE_FIX, IntegrityError, OfflineError, PullError, storage_error
from zoo.fetched import FetchedFile
from zoo.redaction import credentials, hide, hiding, redact, secrets_of

__all__ = ["download", "check_url", "sha256_file", "http_timeout", "redact", "RETRY_AFTER_BUDGET"]

CHUNK = 1 << 16
DEFAULT_TIMEOUT = 30.0
# Transient by definition (a timeout, too many requests, a server error or overload); every other
# 4xx is the request's fault and 501/505 the server's for good: asking again gets the same answer.
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")
#: Seconds a download waits in all for servers that answer 429/503 with ``Retry-After``.
RETRY_AFTER_BUDGET = 120.0
#: What a user can change when the cache cannot hold a download (for :func:`zoo.errors.storage_error`).
_FIX = f"{CACHE_FIX} (nothing was cached)"
#: What http.client refuses in a request line (spaces and control characters).
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")
_ENCODING_HINT = ("a password goes as https://USER:PASSWORD@HOST/..., with any '/', '?', '#' or '@' in it "
                  "written as %2F, %3F, %23, %40")


def check_url(url: str) -> str:
    """``url`` when zoo can request it; else a :class:`PullError` saying what is wrong with it,
    its secrets hidden. Called before anything is written or sent: no retry mends a malformed URL."""
    shown = redact(url)

    def malformed(why: str) -> PullError:
        return PullError(f"malformed URL {shown!r}: {why}. Fix the URL; nothing was downloaded")

    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed '[' of an IPv6 address
        raise malformed(f"it cannot be parsed ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise PullError(f"cannot download {shown!r}: only http(s) URLs are supported. "
                        "For a file on disk use the `local` source")
    bad = _UNSENDABLE.search(url)
    if bad is not None:
        what = "a space" if bad.group() == " " else f"the control character {bad.group()!r}"
        raise malformed(f"it holds {what} at character {bad.start() + 1}; write a space as %20")
    try:
        port = parts.port
    except ValueError:  # 'host:abc', 'host:99999', or the 'user:pa' of a password holding '/', '?' or '#'
        port = 0
    if port == 0:
        raise malformed(f"its host part is not HOST[:PORT] with a port from 1 to 65535; {_ENCODING_HINT}")
    host = parts.hostname
    if not host:
        raise malformed("it names no host")
    if ":" not in host:  # an IPv6 address has no labels to check
        try:
            host.encode("idna")
        except UnicodeError:
            raise malformed(f"{host!r} is not a host name (a part between dots is empty or over 63 characters)") \
                from None
    return url


def http_timeout() -> float:
    """``$ZOO_HTTP_TIMEOUT`` in seconds (connect and each read), else 30."""
    value = os.environ.get("ZOO_HTTP_TIMEOUT", "").strip()
    try:
        return float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        raise PullError(f"ZOO_HTTP_TIMEOUT={value!r} is not a number of seconds; set it to e.g. 30") from None


def sha256_file(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    size: int | None = None,
    name: str | None = None,
    offline: bool = False,
    quiet: bool = False,
    timeout: float | None = None,
    retries: int = 5,
    reuse: bool = True,
) -> FetchedFile:
    """Download ``url`` to ``dest``, verified, and describe the file (see the module docstring).
    ``reuse=False`` downloads again even over a file whose full sha256 matches (``zoo pull --force``).

    Raises :class:`OfflineError` (offline and not there), :class:`PullError` (HTTP error status,
    an HTML page, the connection kept failing), :class:`IntegrityError` (hash or size mismatch)
    or :class:`zoo.errors.StorageError` (the folder cannot be written: disk full, read-only, not a folder).
    """
    with hiding(url):  # the one exit of every error: no secret of the URL leaves in its message
        return _download(url, Path(dest), sha256=sha256, sha256_prefix=sha256_prefix, size=size, name=name,
                         offline=offline, quiet=quiet, timeout=timeout, retries=retries, reuse=reuse)


def _download(url: str, dest: Path, *, sha256: str | None, sha256_prefix: str | None, size: int | None,
              name: str | None, offline: bool, quiet: bool, timeout: float | None, retries: int,
              reuse: bool) -> FetchedFile:
    label = name or dest.name
    check_url(url)
    if offline:
        reused = _reuse(dest, label, sha256, sha256_prefix, size)
        if reused is not None:
            return reused
        raise OfflineError(
            f"{label} is not cached ({dest}) and offline mode forbids downloading it from {redact(url)}. "
            "Pull it once with network access (drop ZOO_OFFLINE / --offline), then it loads offline"
        )
    ensure_folder(dest.parent, _FIX)
    import filelock

    lock = filelock.FileLock(str(dest) + ".lock")
    try:
        lock.acquire()
    except OSError as exc:  # the lock file itself could not be created or locked
        raise storage_error(exc, Path(lock.lock_file), _FIX) from None
    try:
        reused = _reuse(dest, label, sha256, sha256_prefix, size) if reuse else None
        if reused is not None:
            return reused
        _remove_stale_temps(dest)
        transfer = _Transfer(url, dest, quiet=quiet, retries=retries,
                             timeout=http_timeout() if timeout is None else timeout)
        digest, got = transfer.run(sha256=sha256, sha256_prefix=sha256_prefix, size=size)
    finally:
        lock.release()
    return FetchedFile(name=label, path=dest, sha256=digest, size=got, mtime_ns=dest.stat().st_mtime_ns)


def _reuse(dest: Path, label: str, sha256: str | None, prefix: str | None, size: int | None) -> FetchedFile | None:
    """The file already at ``dest`` when a full sha256 vouches for it (re-hashed now), else None."""
    if not sha256 or not dest.is_file():
        return None
    try:
        stat = dest.stat()
        digest, got = sha256_file(dest)
    except OSError:
        return None
    if digest != sha256.lower() or (prefix and not digest.startswith(prefix.lower())) \
            or (size is not None and got != size):
        return None
    return FetchedFile(name=label, path=dest, sha256=digest, size=got, mtime_ns=stat.st_mtime_ns)


def _remove_stale_temps(dest: Path) -> None:
    """Temps of this file left by processes that died (kill -9, power loss); called under the lock."""
    for temp in dest.parent.glob(f".{_glob_escape(dest.name)}.*.part"):
        pid = temp.name[len(dest.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                temp.unlink()
            except OSError:
                pass


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class _Retry(Exception):
    """A transient failure: retry (with Range when something was received), after ``wait``
    seconds when the server said how long (Retry-After)."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


def _retry_after(value: str | None) -> float | None:
    """``Retry-After``: seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _permanent(exc: BaseException, host: str | None) -> str | None:
    """Why a failure to reach the server will not mend by asking again (a host name that does not
    resolve, a certificate that is not trusted, a request urllib refuses), or None: transient."""
    import socket
    import ssl

    inner = getattr(exc, "reason", exc)
    if isinstance(inner, socket.gaierror) and inner.errno != socket.EAI_AGAIN:
        return (f"the host name {host!r} does not resolve ({_reason(exc)}); check the URL and the network (or DNS), "
                f"then pull again")
    if isinstance(inner, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted ({_reason(exc)}); check the URL, or the system's certificates"
    if isinstance(exc, urllib.error.URLError) and not isinstance(inner, BaseException):
        return f"urllib refused the request ({inner}); check the URL"  # 'no host given', 'unknown url type'
    return None


def _basic(user: str, password: str | None) -> str:
    """The ``Authorization`` value of HTTP Basic authentication (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password or ''}".encode("utf-8")).decode("ascii")


class _SameOriginAuthorization(urllib.request.HTTPRedirectHandler):
    """Follows redirects, keeping the ``Authorization`` header when the new URL has the same
    scheme, host and port, dropping it otherwise (as requests does), so credentials never reach
    another server.

    Hand-written around the stdlib's handler because urllib's ``HTTPBasicAuthHandler`` does not do
    this job: it sends credentials only after a 401 challenge (an extra request, and nothing at
    all to servers that answer 404 to strangers), its prior-auth mode forgets them after any
    non-2xx answer (a redirect, a 503 before a retry), and it raises ValueError on a Digest challenge.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201 (urllib's signature)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        value = req.unredirected_hdrs.get("Authorization")
        if new is not None and value is not None and _origin(req.full_url) == _origin(new.full_url):
            new.add_unredirected_header("Authorization", value)
        return new


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), parts.hostname, parts.port or default


class _Transfer:
    """One download: the temp file, the running hash, and the request loop."""

    def __init__(self, url: str, dest: Path, *, quiet: bool, retries: int, timeout: float) -> None:
        # urllib would take a URL's user and password for part of the host: they go as a header
        self.url, user, password = credentials(url)
        self.authorization = _basic(user, password) if user is not None else None
        self.opener = urllib.request.build_opener(_SameOriginAuthorization())
        self.shown = redact(url)  # what messages say
        self.secrets = secrets_of(url)  # what notes never say
        self.dest = dest
        self.quiet = quiet
        self.retries = retries
        self.timeout = timeout
        self.temp = dest.parent / f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
        self.hash = hashlib.sha256()
        self.received = 0
        self.total: int | None = None
        self.validator: str | None = None  # ETag / Last-Modified of the first answer, for If-Range
        self.bar: Any = None

    def run(self, *, sha256: str | None, sha256_prefix: str | None, size: int | None) -> tuple[str, int]:
        try:
            # Unbuffered: a write error (EFBIG, ENOSPC) surfaces at write, never again at close.
            out = self._local(lambda: open(self.temp, "xb", buffering=0), temp=True)
            with out:
                self._loop(out)
                self._local(lambda: os.fsync(out.fileno()), temp=True)
            digest = self.hash.hexdigest()
            self._verify(digest, sha256, sha256_prefix, size)
            self._local(lambda: os.replace(self.temp, self.dest), temp=False)
            _fsync_folder(self.dest.parent)
            return digest, self.received
        finally:
            if self.bar is not None:
                self.bar.close()
            try:
                self.temp.unlink()
            except OSError:  # renamed already, or the folder went away
                pass

    def _loop(self, out: IO[bytes]) -> None:
        attempt = 0
        best = 0
        waited = 0.0  # on Retry-After
        while True:
            try:
                self._request(out)
                return
            except _Retry as exc:
                if self.received > best:  # real progress: this failure is not one of the allowed ones
                    best = self.received
                    attempt = 0
                attempt += 1
                if attempt > self.retries:
                    got = f"{self.received} of {self.total} bytes" if self.total else f"{self.received} bytes"
                    raise PullError(
                        f"could not download {self.shown}: {exc.reason} (gave up after {self.retries} retries, "
                        f"had {got}; nothing was cached). Check the network or the server, then pull again"
                    ) from None
                delay = min(0.25 * 2 ** (attempt - 1), 4.0)  # 0.25, 0.5, 1, 2, 4 seconds
                if exc.wait is not None:
                    if waited + exc.wait > RETRY_AFTER_BUDGET:
                        raise PullError(
                            f"could not download {self.shown}: {exc.reason} and asks to retry after {exc.wait:.0f} s "
                            f"(Retry-After), beyond the {RETRY_AFTER_BUDGET:.0f} s zoo waits; nothing was cached. "
                            f"Pull again later") from None
                    delay = exc.wait
                    waited += delay
                where = f" from byte {self.received} (if the server allows)" if self.received else ""
                self._note(f"{exc.reason}; retrying{where} in {delay:.2g} s (retry {attempt} of {self.retries})")
                time.sleep(delay)

    def _request(self, out: IO[bytes]) -> None:
        headers = {"User-Agent": f"zoo/{__version__}", "Accept-Encoding": "identity"}
        if self.received:
            headers["Range"] = f"bytes={self.received}-"
            if self.validator:
                headers["If-Range"] = self.validator
        request = urllib.request.Request(self.url, headers=headers)
        if self.authorization is not None:
            request.add_unredirected_header("Authorization", self.authorization)
        try:
            response = self.opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            self._http_error(exc.code, exc.reason, exc.headers, out)
            return
        except (InvalidURL, ValueError, OverflowError) as exc:  # a redirect's Location too: no retry mends it
            raise PullError(f"could not download {self.shown}: the URL (or one it redirects to) cannot be "
                            f"requested ({_reason(exc)}); fix the URL; nothing was cached") from None
        except (OSError, HTTPException) as exc:  # urllib.error.URLError is an OSError
            permanent = _permanent(exc, urlsplit(self.url).hostname)
            if permanent is not None:
                raise PullError(f"could not download {self.shown}: {permanent}; nothing was cached") from None
            raise _Retry(f"cannot reach the server ({_reason(exc)})") from None
        with response:
            self._receive(response, out)

    def _http_error(self, code: int, reason: str, headers: Any, out: IO[bytes]) -> None:
        content_range = headers.get("Content-Range") if headers is not None else None
        if code == 416 and self.received:
            match = _UNSATISFIED_RANGE.match(content_range or "")
            size = int(match.group(1)) if match else None
            if size == self.received and self.total in (None, size):
                self.total = size  # everything was there already
                return
            self._restart(out)  # the file changed or our part is bogus: start over
            raise _Retry("the server refused to resume (HTTP 416)")
        if code in _RETRY_STATUSES:
            wait = _retry_after(headers.get("Retry-After")) if code in (429, 503) and headers is not None else None
            raise _Retry(f"the server answered HTTP {code} {reason}", wait=wait)
        answer = f"the server answered HTTP {code} {reason}".rstrip()
        if code == 401:
            why = (f"{answer}: it refused the user and password in the URL. Check them" if self.authorization
                   else f"{answer}: it asks for credentials. Put them in the URL (https://USER:PASSWORD@host/...)")
        elif code == 403:
            why = f"{answer}: access is forbidden. Check that the URL is right and that you may read it"
        elif code in (404, 410):
            why = f"{answer}: there is no such file. Check the URL"
        else:
            why = f"{answer}. Check that the URL is right and that you may access it"
        raise PullError(f"download of {self.shown} failed: {why}; nothing was cached")

    def _receive(self, response: HTTPResponse, out: IO[bytes]) -> None:
        status = response.status
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "text/html" and not self.dest.name.lower().endswith((".html", ".htm")):
            raise PullError(
                f"download of {self.shown}: the server returned an HTML page instead of the file "
                f"(HTTP {status}, Content-Type text/html); it is probably a login, error or mirror page. "
                "Check the URL in a browser; nothing was cached"
            )
        if status == 206 and self.received:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
            whole = int(match.group(3)) if match and match.group(3) != "*" else None
            if not match or int(match.group(1)) != self.received or self.total not in (None, whole):
                self._restart(out)  # a wrong offset, or the file changed size under us
                raise _Retry("the server resumed at the wrong offset or with a different file")
            self.total = whole
        else:
            if self.received:  # a 200 to a range request: the server ignores Range (or the file changed)
                self._note(f"the server sent the whole file again instead of the rest from byte {self.received}: "
                           f"downloading from the start")
                self._restart(out)
            length = response.headers.get("Content-Length")
            self.total = int(length) if length and length.isdigit() else None
            self.validator = _validator(response.headers)
        self._start_bar()
        # read1: whatever arrived, at most one recv; read(n) would block for n bytes and lose
        # what it had buffered when the timeout strikes.
        read = getattr(response, "read1", response.read)
        while True:
            try:
                chunk = read(CHUNK)
            except (OSError, HTTPException) as exc:  # timeouts, resets, IncompleteRead (chunked)
                raise _Retry(f"the connection broke ({_reason(exc)})") from None
            if not chunk:
                break
            self._local(lambda: _write_all(out, chunk), temp=True)
            self.hash.update(chunk)
            self.received += len(chunk)
            if self.bar is not None:
                self.bar.update(len(chunk))
        if self.total is not None and self.received < self.total:
            raise _Retry(f"the server sent {self.received} of {self.total} bytes and closed the connection")

    def _restart(self, out: IO[bytes]) -> None:
        """Back to zero: empty temp, fresh hash (so no byte is counted twice)."""
        self._local(lambda: (out.seek(0), out.truncate()), temp=True)
        self.hash = hashlib.sha256()
        self.received = 0
        if self.bar is not None:
            self.bar.reset(total=self.total)

    def _verify(self, digest: str, sha256: str | None, prefix: str | None, size: int | None) -> None:
        where = f"download of {self.shown} to {self.dest}"
        after = "; the file was not kept. Check the card's hash, or the server sends a different file"
        if self.total is not None and self.received != self.total:
            raise IntegrityError(f"{where}: the server announced {self.total} bytes and sent {self.received}{after}")
        if size is not None and self.received != size:
            raise IntegrityError(f"{where}: expected {size} bytes, got {self.received} (sha256 {digest}){after}")
        if sha256 and digest != sha256.lower():
            raise IntegrityError(f"{where}: expected sha256 {sha256.lower()}, got sha256 {digest}{after}")
        if prefix and not digest.startswith(prefix.lower()):
            raise IntegrityError(f"{where}: expected a sha256 starting with {prefix.lower()}, "
                                 f"got sha256 {digest}{after}")

    def _local(self, action: Callable[[], Any], *, temp: bool) -> Any:
        """Run a local file operation; its OSError (disk full, EFBIG, read-only) is a StorageError
        naming the temp file (``temp``) or the destination."""
        try:
            return action()
        except OSError as exc:
            raise storage_error(exc, self.temp if temp else self.dest, _FIX) from None

    def _start_bar(self) -> None:
        if self.quiet or not sys.stderr.isatty():
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.received, unit="B", unit_scale=True,
                            unit_divisor=1024, desc=self.dest.name, file=sys.stderr, leave=False)
        elif self.bar.total != self.total:
            self.bar.total = self.total
            self.bar.refresh()

    def _note(self, message: str) -> None:
        if self.quiet:
            return
        text = hide(f"zoo: {self.dest.name}: {message}", self.secrets)
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)


def _write_all(out: IO[bytes], data: bytes) -> None:
    """Raw writes may be partial (e.g. right at a file size limit); the next one then raises."""
    view = memoryview(data)
    while view:
        written = out.write(view)
        view = view[written or 0 :]
        if not written:
            raise OSError(errno.EIO, "write returned 0 bytes")


def _validator(headers: Any) -> str | None:
    """A strong ETag or a Last-Modified date, so a resume of a changed file restarts (If-Range)."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    if isinstance(inner, BaseException):
        exc = inner
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
