"""The page's building blocks, below every part that writes HTML: a :class:`Section`, a number
carrying its ``report/metrics.json`` key, a table whose cells are escaped. The task sections
(:mod:`zoo.report.sections`, :mod:`zoo.report.wiseft`) and the page (:mod:`zoo.report.page`) all
build with them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

__all__ = ["Section", "number", "html_table"]


@dataclass(frozen=True)
class Section:
    """One part of the page: ``<section id=ID><h2>TITLE</h2>BODY</section>``."""

    id: str
    title: str
    body: Markup


def number(value: Any, key: str, digits: int = 3) -> Markup:
    """A number as the page shows it, with its exact value and its key in metrics.json as data
    attributes (the browser test reads them back)."""
    if value is None:
        return Markup('<span class="num missing">-</span>')
    shown = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return Markup('<span class="num" data-key="{}" data-value="{}">{}</span>').format(key, repr(value), shown)


def html_table(headers: list[str], rows: list[list[Any]], css: str = "") -> Markup:
    """An HTML table; cells are escaped unless they already are Markup."""
    head = Markup("").join(Markup("<th>{}</th>").format(h) for h in headers)
    body = Markup("").join(Markup("<tr>{}</tr>").format(Markup("").join(Markup("<td>{}</td>").format(c) for c in row))
                           for row in rows)
    return Markup('<table class="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>').format(css, head, body)
