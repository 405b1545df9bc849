"""The predict route fed without JSON: a multipart form (what a browser's file input and
``curl -F file=@x.png`` send), a URL-encoded form of texts (``curl -d text=...``), or the file
itself as the body (``curl --data-binary @x.png -H 'Content-Type: image/png'``; ``text/plain``
for a text).

In a form, each file part is one input, named by its file name; each other field is one text,
except ``top_k``. The body was read (and its size checked) before it reaches here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from zoo.serve.errors import bad_request, unsupported_type
from zoo.serve.inputs import Item

__all__ = ["parse_multipart", "parse_urlencoded", "parse_raw", "RAW_TYPES", "media_type"]

#: Content types read as one input's bytes (a file sent as the body).
RAW_TYPES = ("image/", "audio/", "application/octet-stream")
#: At most this many parts in a form: more is an error, not a slow parse.
MAX_PARTS = 1000


def media_type(value: str | None) -> str:
    """``image/png`` from ``image/png; charset=...``, lower-cased; "" when absent."""
    return (value or "").split(";")[0].strip().lower()


async def parse_multipart(headers: Mapping[str, str], body: bytes) -> tuple[list[Item], Any]:
    """The items of a multipart form, and its ``top_k`` field (or None)."""
    from starlette.datastructures import Headers, UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(Headers(headers), stream(), max_files=MAX_PARTS, max_fields=MAX_PARTS,
                                     max_part_size=len(body) + 1).parse()
    except MultiPartException as exc:
        raise bad_request(f"a malformed multipart form ({exc.message}); send files as form-data parts") from None
    items, top_k = [], None
    try:
        for field, value in form.multi_items():
            if isinstance(value, UploadFile):
                items.append(Item(value.filename or field, data=await value.read()))
            elif field == "top_k":
                top_k = value
            else:
                items.append(Item(value, text=value))
    finally:
        await form.close()
    return items, top_k


def parse_urlencoded(body: bytes) -> tuple[list[Item], Any]:
    """A URL-encoded form (``curl -d text=...``): each field a text, except ``top_k``."""
    from urllib.parse import parse_qsl

    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("a malformed URL-encoded form; send name=value pairs in UTF-8") from None
    top_k = next((value for field, value in fields if field == "top_k"), None)
    return [Item(value, text=value) for field, value in fields if field != "top_k"], top_k


def parse_raw(content_type: str, body: bytes, name: str | None) -> list[Item]:
    """One input from a body that is the file (or the text) itself."""
    kind = media_type(content_type)
    if kind == "text/plain":
        charset = _charset(content_type)
        try:
            text = body.decode(charset)
        except (LookupError, UnicodeDecodeError):
            raise bad_request(f"the text/plain body is not valid {charset} text") from None
        return [Item(text, text=text)]
    if kind.startswith(RAW_TYPES):
        return [Item(name or "body", data=body)]
    raise unsupported_type(f"content type {kind or '(none)'!r} is not one this route reads: send application/json "
                           f'({{"instances": [...]}}), multipart/form-data (file uploads), a file as image/*, audio/* '
                           f"or application/octet-stream, or text/plain (or a form of texts)")


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"
