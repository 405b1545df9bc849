"""A Hugging Face Hub-compatible HTTP server on 127.0.0.1, for testing the `hf` source for real.

It answers what huggingface_hub's client asks when it downloads a snapshot (read from the
installed client's ``_snapshot_download.py``, ``file_download.py`` and ``hf_api.py``):

- ``GET  /api/models/{repo}[/revision/{rev}]``: repo info, ``sha`` is the commit the revision names
  (the default branch, ``main``, without one), with ``cardData`` and ``pipeline_tag`` when set;
- ``GET  /api/models/{repo}/tree/{rev}[/{path}]?recursive=..&expand=..``: the file listing,
  paginated with a ``Link: <...>; rel="next"`` header when longer than ``page_size``;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``: ``X-Repo-Commit``, ``ETag`` (sha256 for
  LFS-like files, the git blob sha1 otherwise), ``Content-Length``, and ``X-Linked-Etag`` /
  ``X-Linked-Size`` for LFS files; ``Range`` requests for resumed downloads.

Errors carry the headers the client maps to its exceptions (``X-Error-Code``: ``RepoNotFound``,
``GatedRepo``, ``RevisionNotFound``, ``EntryNotFound``). Every request is logged, unknown paths
get a 404 JSON body, and each response closes its connection (HTTP/1.0) so that a stopped
server is really unreachable, pooled connections included.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

__all__ = ["HubServer", "HubRepo", "Request", "TELEMETRY", "hub", "module_hub", "point_client_at", "git_blob_sha1"]

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".ckpt")

_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+|[^/]+)(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?P<sub>/.*)?)?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+|[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's bytes: what the Hub uses as ETag for non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubRepo:
    """One model repository: commits of files, refs naming them, and who may read it."""

    repo_id: str
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha
    token: str | None = None  # the bearer token that may read a gated or private repo
    private: bool = False  # every path answers 401 RepoNotFound without the token (as the Hub does)
    withheld: set[str] = field(default_factory=set)  # listed in the tree, but /resolve says 404
    card_data: dict[str, Any] | None = None  # the model info's ``cardData`` (the README's front matter on the Hub)
    pipeline_tag: str | None = None  # the model info's ``pipeline_tag``

    @property
    def gated(self) -> bool:
        """Gated: metadata and tree are public, file contents need the token."""
        return self.token is not None and not self.private

    def commit(self, revision: str) -> str | None:
        return self.refs.get(revision) or (revision if revision in self.commits else None)


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str  # percent-decoded, without the query string
    query: Mapping[str, list[str]]
    authorization: str | None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class HubServer:
    """In-memory Hub: ``add_repo`` to publish files, ``requests`` to see what the client asked."""

    def __init__(self, *, page_size: int = 1000) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.page_size = page_size
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- content ---------------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: Mapping[str, bytes], *, branch: str = "main",
                 token: str | None = None, private: bool = False, card_data: dict[str, Any] | None = None,
                 pipeline_tag: str | None = None) -> str:
        """Publish ``files`` as a new commit of ``repo_id`` on ``branch``; returns the commit sha.

        ``token`` makes the repo gated (files need ``Authorization: Bearer <token>``), or private
        with ``private=True`` (everything needs it). ``card_data`` and ``pipeline_tag`` are what the
        model info says (``cardData``, ``pipeline_tag``), as the Hub reads them from the README."""
        repo = self.repos.setdefault(repo_id, HubRepo(repo_id))
        repo.token, repo.private = token, private
        repo.card_data, repo.pipeline_tag = card_data, pipeline_tag
        digest = hashlib.sha1(f"{repo_id}@{branch}#{len(repo.commits)}".encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[branch] = sha
        return sha

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hubserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: later connections are refused."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- the request log ---------------------------------------------------------------------
    def log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def paths(self) -> list[str]:
        """``'METHOD /path'`` for each request, in arrival order."""
        with self._lock:
            return [str(r) for r in self.requests]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.0"  # one request per connection: nothing outlives stop()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    # -- dispatch ------------------------------------------------------------------------------
    def _serve(self, *, head: bool) -> None:
        split = urlsplit(self.path)
        self.hub.log(Request(self.command, unquote(split.path), parse_qs(split.query),
                             self.headers.get("Authorization")))
        if match := _API.match(split.path):
            if not head:
                return self._api(unquote(match["repo"]), match["kind"], unquote(match["rev"] or "main"),
                                 unquote((match["sub"] or "").strip("/")), parse_qs(split.query), split.path)
        elif match := _RESOLVE.match(split.path):
            return self._resolve(unquote(match["repo"]), unquote(match["rev"]), unquote(match["file"]), head)
        self._json(404, {"error": f"no such endpoint: {self.command} {split.path}"})

    def _access(self, repo: HubRepo | None, repo_id: str, *, files: bool) -> bool:
        """Answer the Hub's 401/403/404 when the caller may not read this; True when it may."""
        auth = self.headers.get("Authorization")
        allowed = repo is not None and (repo.token is None or auth == f"Bearer {repo.token}")
        if repo is None or (repo.private and not allowed):
            self._error(401 if auth is None else 404, "RepoNotFound", "Repository not found")
            return False
        if repo.gated and files and not allowed:
            self._error(401 if auth is None else 403, "GatedRepo",
                        f"Access to model {repo_id} is restricted. You must have access to it and be "
                        "authenticated to access it. Please log in.")
            return False
        return True

    def _commit(self, repo: HubRepo, revision: str) -> str | None:
        sha = repo.commit(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return sha

    # -- /api/models/... -----------------------------------------------------------------------
    def _api(self, repo_id: str, kind: str | None, revision: str, sub: str,
             query: Mapping[str, list[str]], raw_path: str) -> None:
        repo = self.hub.repos.get(repo_id)
        if not self._access(repo, repo_id, files=False):
            return
        assert repo is not None
        sha = self._commit(repo, revision)
        if sha is None:
            return
        files = repo.commits[sha]
        if kind != "tree":
            described = {"cardData": repo.card_data} if repo.card_data is not None else {}
            if repo.pipeline_tag is not None:
                described["pipeline_tag"] = repo.pipeline_tag
            return self._json(200, {
                "_id": sha[:24], "id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private,
                "gated": "manual" if repo.gated else False, "disabled": False,
                "lastModified": "2024-01-01T00:00:00.000Z", "tags": [], "library_name": "transformers",
                "siblings": [{"rfilename": name} for name in sorted(files)], **described,
            })
        entries = _tree(files, sub, recursive=_flag(query, "recursive"))
        start = int(query.get("cursor", ["0"])[0])
        page = entries[start:start + self.hub.page_size]
        headers = {}
        if start + self.hub.page_size < len(entries):
            params = "&".join(f"{k}={quote(v[0])}" for k, v in query.items() if k != "cursor")
            nxt = f"{self.hub.url}{raw_path}?{params}&cursor={start + self.hub.page_size}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._json(200, page, headers)

    # -- /{repo}/resolve/{rev}/{file} ----------------------------------------------------------
    def _resolve(self, repo_id: str, revision: str, name: str, head: bool) -> None:
        repo = self.hub.repos.get(repo_id)
        if not self._access(repo, repo_id, files=True):
            return
        assert repo is not None
        sha = self._commit(repo, revision)
        if sha is None:
            return
        data = repo.commits[sha].get(name)
        if data is None or name in repo.withheld:
            return self._error(404, "EntryNotFound", f"{name} does not exist on \"{revision}\"",
                               {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if _is_lfs(name):
            etag = hashlib.sha256(data).hexdigest()
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        else:
            etag = git_blob_sha1(data)
        headers["ETag"] = f'"{etag}"'
        status, body = 200, data
        ranged = _RANGE.match(self.headers.get("Range") or "")
        if ranged and not head:
            first = int(ranged[1])
            last = int(ranged[2]) if ranged[2] else len(data) - 1
            status, body = 206, data[first:last + 1]
            headers["Content-Range"] = f"bytes {first}-{first + len(body) - 1}/{len(data)}"
        self._send(status, body, headers, head=head)

    # -- writing -----------------------------------------------------------------------------
    def _error(self, status: int, code: str, message: str, extra: Mapping[str, str] | None = None) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message, **(extra or {})})

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})},
                   head=self.command == "HEAD")

    def _send(self, status: int, body: bytes, headers: Mapping[str, str], *, head: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _flag(query: Mapping[str, list[str]], key: str) -> bool:
    return query.get(key, ["false"])[0].lower() in ("1", "true")


def _is_lfs(name: str) -> bool:
    return name.endswith(LFS_SUFFIXES)


def _tree(files: Mapping[str, bytes], sub: str, *, recursive: bool) -> list[dict[str, Any]]:
    """The Hub's tree listing under ``sub``: folders and files, sorted, with LFS metadata."""
    prefix = f"{sub}/" if sub else ""
    folders: set[str] = set()
    entries: list[dict[str, Any]] = []
    for name in sorted(files):
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix):].split("/")
        for depth in range(1, len(parts)):
            folders.add(prefix + "/".join(parts[:depth]))
        if len(parts) > 1 and not recursive:
            continue
        data = files[name]
        entry: dict[str, Any] = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": name}
        if _is_lfs(name):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        entries.append(entry)
    if not recursive:
        folders = {f for f in folders if "/" not in f[len(prefix):]}
    entries += [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "path": f} for f in folders]
    return sorted(entries, key=lambda e: e["path"])


# -- pointing huggingface_hub at the server ---------------------------------------------------------

# Cleared so that the client behaves the same on every machine, telemetry included: huggingface_hub
# 2.4 builds its User-Agent with `GET /api/agent-harnesses` (once per process, cached a day in
# HF_HOME) unless HF_HUB_DISABLE_TELEMETRY is set, and the tests want to see that request too.
_CLIENT_ENV_CLEARED = ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN",
                       "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "HF_HUB_DISABLE_PROGRESS_BARS",
                       "HF_ASSETS_CACHE", "HF_XET_CACHE", "HUGGINGFACE_CO_STAGING", "HF_HUB_DISABLE_TELEMETRY",
                       "DISABLE_TELEMETRY", "DO_NOT_TRACK", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")
TELEMETRY = "GET /api/agent-harnesses"


def point_client_at(server: HubServer, hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Send huggingface_hub (here and in subprocesses) to ``server``, with its cache in ``hf_home``.

    Subprocesses read the environment. This process's client read it at import, so its constants
    are patched too, the way huggingface_hub's own tests do; the HTTP stays real.
    """
    for name in _CLIENT_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_DISABLE_UPDATE_CHECK", "1")

    from huggingface_hub import constants
    from huggingface_hub.utils import _detect_agent

    patched = {
        "ENDPOINT": server.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": False,
        "AGENT_HARNESSES_PATH": str(hf_home / ".agent_harnesses.json"),
    }
    for name, value in patched.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    if hasattr(_detect_agent, "_registry"):  # its once-per-process cache: each test starts fresh
        monkeypatch.setattr(_detect_agent, "_registry", None)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A running Hub server, with huggingface_hub pointed at it and an empty HF_HOME of its own."""
    server = HubServer().start()
    point_client_at(server, tmp_path / "hf_home", monkeypatch)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """One Hub server for a whole test module (its repositories are made once: tiny models cost
    seconds each), huggingface_hub pointed at it with an HF_HOME of the module's own."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        server = HubServer().start()
        point_client_at(server, tmp_path_factory.mktemp("hf_home"), monkeypatch)
        try:
            yield server
        finally:
            server.stop()
