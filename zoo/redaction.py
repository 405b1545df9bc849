"""Credentials in URLs: sent where they belong, never shown.

A URL may carry secrets: a user and password (``https://user:password@host/...``), a bare token
as the user (``https://TOKEN@host/...``), or credential query parameters (``?token=...``,
``X-Amz-Signature=...``). Everything zoo prints or writes about a URL goes through this module:

- :func:`redact` spells a URL for a message or a record, its secrets replaced by ``***``;
- :func:`hide` takes any text (a message, an HTTP client's exception text) and replaces every
  secret of the URLs it concerns, as written and percent-decoded;
- :func:`hiding` applies :func:`hide` to the message of every :class:`~zoo.errors.ZooError` that
  leaves a block of code: the one place a download's or a pull's errors pass on their way out;
- :func:`credentials` splits a URL into what to request and the user and password to send.

Found on the raw text, not only through ``urllib.parse``: a password holding an unencoded ``/``,
``?`` or ``#`` makes the parser end the host part early (``user:pa`` with "port" ``pa``), and
the rest of the password lands in the path; such a URL is still hidden up to its last ``@``.

Stdlib only, no network: ``zoo show`` uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, unquote_plus

from zoo.errors import ZooError

__all__ = ["redact", "hide", "hiding", "secrets_of", "credentials", "MASK"]

MASK = "***"
#: Query parameters whose values are credentials (compared lower-case).
SECRET_PARAMETERS = frozenset({"token", "access_token", "auth", "key", "api_key", "apikey", "password", "secret",
                               "signature", "sig", "x-amz-signature", "x-amz-credential", "x-amz-security-token"})


def _authority(url: str) -> tuple[int, int] | None:
    """Where the host part of ``url`` is, as ``urllib.parse`` sees it: after ``//``, up to the
    first ``/``, ``?`` or ``#``. None when the URL has no ``//``."""
    start = url.find("//")
    if start < 0:
        return None
    start += 2
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    return start, min(ends, default=len(url))


def _userinfo(url: str) -> tuple[int, int] | None:
    """Where ``user[:password]`` is in ``url`` (start, end), as written; None when it has none."""
    authority = _authority(url)
    if authority is None:
        return None
    start, end = authority
    at = url.rfind("@", start, end)
    if at >= 0:
        return start, at
    host = url[start:end]
    port = host[host.rfind("]") + 1:].partition(":")
    if not port[1] or port[2].isdigit() or not port[2]:
        return None  # host or host:port: no credentials
    # 'user:pa' with a port that is not one: a password holding '/', '?' or '#' ended the host
    # part early; the password runs to the URL's last '@' (or is all there is)
    at = url.rfind("@", start)
    return start, at if at >= 0 else end


def _query_secrets(url: str) -> Iterator[tuple[int, int]]:
    """Spans of the values of credential parameters in the query and the fragment (after any
    user and password, which may hold a '?' or '#' of their own)."""
    info = _userinfo(url)
    after = info[1] if info is not None else 0
    marks = [i for i in (url.find("?", after), url.find("#", after)) if i >= 0]
    if not marks:
        return
    begin = min(marks)
    position = begin + 1
    for pair in _split_pairs(url[position:]):
        name, sep, value = pair.partition("=")
        if sep and value and unquote_plus(name).strip().lower() in SECRET_PARAMETERS:
            yield position + len(name) + 1, position + len(pair)
        position += len(pair) + 1


def _split_pairs(text: str) -> list[str]:
    """``a=1&b=2#c=3`` -> ``['a=1', 'b=2', 'c=3']``, keeping every character's position (one separator each)."""
    return text.replace("#", "&").split("&")


def redact(url: str) -> str:
    """``url`` for a message or a record: a password (``user:***@``), a bare token as the user
    (``***@``) and the values of credential parameters (``token=***``) replaced. A URL without
    secrets comes back unchanged, character for character."""
    url = str(url)
    spans: list[tuple[int, int, str]] = []
    info = _userinfo(url)
    if info is not None:
        start, end = info
        user, sep, _ = url[start:end].partition(":")
        spans.append((start, end, f"{user}:{MASK}" if sep else MASK))
    spans += [(start, end, MASK) for start, end in _query_secrets(url)]
    for start, end, text in sorted(spans, reverse=True):
        url = url[:start] + text + url[end:]
    return url


def secrets_of(*urls: str) -> tuple[str, ...]:
    """Every secret in ``urls`` as a text may hold it (as written and percent-decoded), longest first."""
    found: set[str] = set()
    for url in map(str, urls):
        info = _userinfo(url)
        if info is not None:
            user, sep, password = url[info[0]:info[1]].partition(":")
            secret = password if sep else user
            found.update((secret, unquote(secret)))
        for start, end in _query_secrets(url):
            found.update((url[start:end], unquote_plus(url[start:end])))
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def hide(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


@contextmanager
def hiding(*urls: str) -> Iterator[None]:
    """Any :class:`~zoo.errors.ZooError` raised inside leaves with the secrets of ``urls`` hidden
    from its message, whoever wrote it (zoo, a plugin, or an exception text passed through)."""
    secrets = secrets_of(*urls)
    try:
        yield
    except ZooError as exc:
        if secrets:
            exc.args = tuple(hide(a, secrets) if isinstance(a, str) else a for a in exc.args)
        raise


def credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without user and password, user, password)``, both percent-decoded (RFC 3986 lets
    a password hold ``@`` or ``:`` as ``%40``, ``%3A``); ``(url, None, None)`` without them."""
    authority = _authority(url)
    if authority is None:
        return url, None, None
    start, end = authority
    at = url.rfind("@", start, end)
    if at < 0:
        return url, None, None
    user, sep, password = url[start:at].partition(":")
    return url[:start] + url[at + 1:], unquote(user), unquote(password) if sep else None
