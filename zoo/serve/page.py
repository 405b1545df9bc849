"""``GET /``: one self-contained HTML page (no script or style from elsewhere: the server may
have no internet) to try a model: pick it, drop an image or a clip or type a text, see the answer.

The page is ``page.html`` beside this module; it lists the models from ``GET /v2/models`` and
sends what it is given to ``POST /v1/models/NAME:predict`` as a multipart form, as a person's
browser would.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["page_html"]


@functools.lru_cache(maxsize=1)
def page_html() -> str:
    return resources.files("zoo.serve").joinpath("page.html").read_text(encoding="utf-8")
