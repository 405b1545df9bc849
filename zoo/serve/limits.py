"""What keeps a server up under too much: a concurrency limit, a body size limit, a timeout.

- :class:`ConcurrencyLimit` (ASGI middleware, on the inference routes only: health, metrics and
  the page always answer): beyond ``limit`` requests at once, a 503 with Retry-After at once, so
  overload costs the refused clients a round trip and the admitted ones nothing;
- :func:`read_body`: a body over the limit is a 413, said from Content-Length before reading
  when the client sends one, else as soon as the streamed body passes the limit;
- :func:`within`: a request still unanswered after the timeout is a 504, and its waiting work
  is dropped from the batch queue.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from zoo.serve.errors import RequestError, timed_out, too_large, unavailable

__all__ = ["ConcurrencyLimit", "read_body", "within"]

T = TypeVar("T")
Scope = dict[str, Any]


class ConcurrencyLimit:
    """ASGI middleware: at most ``limit`` requests for which ``applies(scope)`` at once."""

    def __init__(self, app: Any, *, limit: int, applies: Callable[[Scope], bool],
                 refused: Callable[[Scope, RequestError], None] | None = None) -> None:
        self.app, self.limit, self.applies, self.refused = app, limit, applies, refused
        self.active = 0  # touched on the event loop only

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.applies(scope):
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            error = unavailable(f"the server is at its limit of {self.limit} requests at once (--max-concurrent); "
                                f"retry shortly", retry_after=1, reason="concurrency")
            if self.refused is not None:
                self.refused(scope, error)
            await send_error(send, error)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


async def send_error(send: Any, error: RequestError) -> None:
    """A JSON error answer through raw ASGI (the middleware has no Response objects)."""
    body = json.dumps({"error": str(error)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(request: Any, limit: int) -> bytes:
    """The request's body, at most ``limit`` bytes, else a 413 (from Content-Length when given)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_big(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_big(size, limit, partial=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(size: int, limit: int, partial: bool = False) -> RequestError:
    said = f"more than {size:,}" if partial else f"{size:,}"
    return too_large(f"the request body is {said} bytes, over this server's limit of {limit:,} (--max-body-mb "
                     f"{limit / 1024 / 1024:g}); send smaller files or fewer at once")


async def within(seconds: float, work: Awaitable[T]) -> T:
    """``work``'s result, or a 504 once ``seconds`` have passed (the work is cancelled)."""
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        raise timed_out(f"no answer within {seconds:g} s (--timeout); the server is busy or the batch is slow: "
                        f"retry, or send fewer inputs at once") from None
