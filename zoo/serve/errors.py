"""What a request did wrong, or why the server cannot take it now, as an HTTP status and one line.

A :class:`RequestError` is an :class:`zoo.errors.InputError` (so the one root, ``ZooError``, holds)
that also carries the status the client gets and any headers (Retry-After). Every handler answers
``{"error": "<the line>"}`` with it: TF Serving's and KServe's error shape alike. Any other
exception in a handler is a bug: 500, logged with its traceback, and the server stays up.
"""

from __future__ import annotations

from collections.abc import Mapping

from zoo.errors import InputError

__all__ = ["RequestError", "bad_request", "not_found", "too_large", "unsupported_type", "unavailable", "timed_out"]


class RequestError(InputError):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None,
                 reason: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        self.reason = reason  # the metrics' label for refusals (concurrency, body_size, timeout, ...)


def bad_request(message: str, reason: str = "bad_input") -> RequestError:
    return RequestError(400, message, reason=reason)


def not_found(message: str) -> RequestError:
    return RequestError(404, message, reason="not_found")


def too_large(message: str, reason: str = "body_size") -> RequestError:
    return RequestError(413, message, reason=reason)


def unsupported_type(message: str) -> RequestError:
    return RequestError(415, message, reason="content_type")


def unavailable(message: str, retry_after: float | None = None, reason: str = "unavailable") -> RequestError:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return RequestError(503, message, headers, reason=reason)


def timed_out(message: str) -> RequestError:
    return RequestError(504, message, reason="timeout")
